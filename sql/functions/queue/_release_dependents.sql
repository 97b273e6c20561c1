CREATE FUNCTION autopilot._release_dependents(p_completed bigint[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The waiting jobs that depend on a job of p_completed (just completed) and
    -- on nothing unfinished any more become available (scheduled, when their
    -- scheduled_at is later); the notify trigger wakes the runners. A dependency
    -- deleted since (old-job-cleanup keeps those of waiting jobs) counts as met.
    -- Returns how many were released. jobs_waiting_idx finds the candidates: with
    -- no job waiting, one probe of an empty index.
    WITH released AS (
        UPDATE autopilot.jobs AS w
        SET state = CASE WHEN w.scheduled_at > now() THEN 'scheduled' ELSE 'available' END
        WHERE
            w.state = 'waiting'
            AND w.depends_on && p_completed
            AND NOT EXISTS (
                SELECT FROM autopilot.jobs AS d
                WHERE d.id = ANY(w.depends_on) AND d.state <> 'completed'
            )
        RETURNING 1
    )

    SELECT count(*) FROM released
$$;

COMMENT ON FUNCTION autopilot._release_dependents(bigint[]) IS
'Private: makes the waiting jobs whose dependencies have all completed (one of them among p_completed) available; returns how many.';
