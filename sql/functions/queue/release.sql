CREATE FUNCTION autopilot.release(p_ids bigint[], p_attempts integer[])
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Gives back jobs a runner claimed but never started (it claims a few ahead
-- of its free slots, and is stopping): each, while still executing the given
-- attempt, is available again at once, and max_attempts grows by one so that
-- the attempt is not used up. The attempt number never goes back down: the
-- next claim is a new attempt, which a repeated release() (a retry after a
-- lost reply) or a stale complete() cannot touch. Nothing goes to job_runs:
-- no attempt ran. Returns how many were released.
DECLARE
    v_count bigint;
BEGIN
    IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_attempts) THEN
        RAISE EXCEPTION 'release: % job ids but % attempts', cardinality(p_ids), cardinality(p_attempts)
        USING ERRCODE = 'array_subscript_error';
    END IF;
    UPDATE autopilot.jobs AS j
    SET state = 'available',
        max_attempts = j.max_attempts + 1,
        scheduled_at = least(j.scheduled_at, now())
    WHERE j.id = ANY(p_ids)
      AND j.state = 'executing'
      AND (j.id, j.attempt) IN (SELECT u.id, u.attempt FROM unnest(p_ids, p_attempts) AS u (id, attempt));
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END;
$$;

COMMENT ON FUNCTION autopilot.release(bigint[], integer[]) IS
'Gives back claimed jobs that never started (each while still executing the given attempt): available at once, the attempt not used up (max_attempts + 1), nothing in job_runs; returns how many.';
