CREATE FUNCTION autopilot._record_runner_attempts(p_jobs autopilot.jobs[], p_status text, p_messages text[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- How an ended runner attempt lands in the ledger, whoever ends it (complete, fail, snooze,
    -- cancel, rescue): one job_runs row per job of p_jobs (as the job stands after the change),
    -- named after its catalog entry or else its worker, with p_messages[i] for p_jobs[i].
    WITH recorded AS (
        INSERT INTO autopilot.job_runs (
            job_name, side, trigger, status, started_at, finished_at, message, details, backend_pid
        )
        SELECT
            coalesce(j.meta ->> 'catalog', j.worker),
            'runner',
            'runner',
            p_status,
            j.attempted_at,
            -- the transaction's time, as jobs.completed_at: the runner records completions in the
            -- transaction of its next claim, whose attempted_at (now()) must not precede them
            greatest(now(), j.attempted_at),
            p_messages[j.ordinality],
            jsonb_build_object(
                'job_id', j.id, 'worker', j.worker, 'queue', j.queue, 'attempt', j.attempt,
                'node', j.attempted_by, 'state', j.state
            ),
            NULL
        FROM unnest(p_jobs) WITH ORDINALITY AS j
        RETURNING 1
    )

    SELECT count(*) FROM recorded
$$;

COMMENT ON FUNCTION autopilot._record_runner_attempts(autopilot.jobs[], text, text[]) IS
'Private: records ended runner attempts in autopilot.job_runs (side runner), one row per job with its message; returns how many.';
