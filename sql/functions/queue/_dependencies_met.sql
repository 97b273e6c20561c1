CREATE FUNCTION autopilot._dependencies_met(p_depends_on bigint[])
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Whether every job of p_depends_on has completed (true for none). The jobs are
-- locked FOR SHARE, in id order, until the caller's transaction ends: a
-- dependency completing meanwhile (complete_many locks it FOR NO KEY UPDATE)
-- either finished before, and is seen completed here, or waits for this
-- transaction, and then finds the caller's waiting job to release. A job that
-- does not exist is an error: a dependency is always a job enqueued before.
DECLARE
    v_found integer;
    v_completed integer;
    v_missing bigint;
BEGIN
    IF coalesce(cardinality(p_depends_on), 0) = 0 THEN
        RETURN true;
    END IF;
    SELECT count(*)::integer, count(*) FILTER (WHERE d.state = 'completed')::integer
    INTO v_found, v_completed
    FROM (
        SELECT j.state
        FROM autopilot.jobs AS j
        WHERE j.id = ANY(p_depends_on)
        ORDER BY j.id
        FOR SHARE OF j
    ) AS d;
    IF v_found < (SELECT count(DISTINCT u.id) FROM unnest(p_depends_on) AS u (id)) THEN
        SELECT u.id INTO v_missing
        FROM unnest(p_depends_on) AS u (id)
        WHERE NOT EXISTS (SELECT FROM autopilot.jobs AS j WHERE j.id = u.id)
        ORDER BY u.id
        LIMIT 1;
        RAISE EXCEPTION 'job % named as a dependency does not exist', coalesce(v_missing::text, 'NULL')
        USING
            ERRCODE = 'foreign_key_violation',
            HINT = 'A job can depend only on jobs enqueued before it (their ids, as enqueue() returned them).';
    END IF;
    RETURN v_completed = v_found;
END;
$$;

COMMENT ON FUNCTION autopilot._dependencies_met(bigint[]) IS
'Private: whether all the jobs of a depends_on list have completed, locking them FOR SHARE (no race with their completion); an unknown job id is an error.';
