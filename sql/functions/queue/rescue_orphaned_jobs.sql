CREATE FUNCTION autopilot.rescue_orphaned_jobs()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- rescue-orphaned-jobs. A job executing whose runner has not heartbeaten for
-- jobs.rescue_after (killed, its host gone, its connection lost) is taken
-- back: retryable at once, or discarded when it has used max_attempts. The
-- reason is appended to jobs.errors and the lost attempt recorded in job_runs
-- as abandoned. SKIP LOCKED: a job a runner is finishing right now is left for
-- the next run. A runner that comes back too late finds (heartbeat) that the
-- job is no longer its own, and its completion changes nothing.
DECLARE
    v_after interval := autopilot.get_setting('jobs.rescue_after')::interval;
    v_ids bigint [];
    v_jobs autopilot.jobs [];
    v_messages text [];
    v_retried bigint;
    v_discarded bigint;
BEGIN
    -- The ids are picked once into an array, then the update finds them by primary key
    -- (as claim does): whatever the statistics say about how many jobs are executing, the
    -- plan stays bounded by the orphans. claim() always sets heartbeat_at, so the scan is a
    -- range of jobs_executing_idx; attempted_at is the fallback for a row without one.
    v_ids := ARRAY(
        SELECT o.id
        FROM autopilot.jobs AS o
        WHERE o.state = 'executing'
          AND (
              o.heartbeat_at < now() - v_after
              OR (o.heartbeat_at IS NULL AND o.attempted_at < now() - v_after)
          )
        FOR UPDATE SKIP LOCKED
    );
    WITH rescued AS (
        UPDATE autopilot.jobs AS j
        SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END,
            discarded_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
            scheduled_at = CASE WHEN j.attempt >= j.max_attempts THEN j.scheduled_at ELSE now() END,
            errors = j.errors || jsonb_build_array(jsonb_build_object(
                'attempt', j.attempt, 'at', now(), 'node', j.attempted_by,
                'error', format(
                    'orphaned: runner %s stopped heartbeating (last at %s)', j.attempted_by,
                    coalesce(j.heartbeat_at, j.attempted_at)
                )
            ))
        WHERE j.id = ANY(v_ids)
        RETURNING j.*
    )

    SELECT
        coalesce(array_agg(r::autopilot.jobs), '{}'),
        coalesce(array_agg(format(
            'job %s (%s), attempt %s: runner %s stopped heartbeating; %s', r.id, r.worker, r.attempt,
            r.attempted_by, CASE WHEN r.state = 'discarded' THEN 'discarded' ELSE 'retrying now' END
        )), '{}'),
        count(*) FILTER (WHERE r.state = 'retryable'),
        count(*) FILTER (WHERE r.state = 'discarded')
    INTO v_jobs, v_messages, v_retried, v_discarded
    FROM rescued AS r;
    PERFORM autopilot._record_runner_attempts(v_jobs, 'abandoned', v_messages);

    RETURN jsonb_build_object(
        'rows_affected', v_retried + v_discarded,
        'message', format(
            'rescued %s orphaned %s: %s to retry, %s discarded (no heartbeat for %s)',
            v_retried + v_discarded, CASE WHEN v_retried + v_discarded = 1 THEN 'job' ELSE 'jobs' END,
            v_retried, v_discarded, v_after
        ),
        'retried', v_retried,
        'discarded', v_discarded
    );
END;
$$;

COMMENT ON FUNCTION autopilot.rescue_orphaned_jobs() IS
'rescue-orphaned-jobs: executing jobs whose runner stopped heartbeating for jobs.rescue_after go back to retryable (or discarded past max_attempts), the reason in jobs.errors and the attempt in job_runs as abandoned. Returns the job summary.';
