CREATE FUNCTION autopilot._record_cron_runs(p_runs jsonb)
RETURNS bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pg_cron runs a statement job's statement itself (VACUUM cannot run in a function or a
    -- procedure), so nothing of autopilot records it while it runs: its runs are brought into the
    -- ledger from pg_cron's history, by cron-history-cleanup before it prunes (here, or where pg_cron
    -- lives in another database by the runner, which reads them there and passes them in). p_runs:
    -- cron.job_run_details rows with their cron.job jobname; only the finished runs of this
    -- database's statement jobs are recorded, each once (its runid); returns how many were new.
    WITH recorded AS (
        INSERT INTO autopilot.job_runs AS r (
            job_name, side, trigger, status, started_at, finished_at, message, backend_pid, cron_runid
        )
        SELECT
            d.name,
            'database',
            'pg_cron',
            x.status,
            x.start_time,
            greatest(x.start_time, coalesce(x.end_time, x.start_time)),
            'pg_cron: ' || coalesce(x.return_message, x.status),
            x.job_pid,
            x.runid
        FROM jsonb_to_recordset(p_runs) AS x (
            runid bigint, jobname text, job_pid integer, status text, return_message text,
            start_time timestamptz, end_time timestamptz
        )
        INNER JOIN autopilot.job_definitions AS d ON x.jobname = d.cron_jobname AND d.kind = 'statement'
        WHERE x.status IN ('succeeded', 'failed') AND x.start_time IS NOT NULL AND x.runid IS NOT NULL
        ON CONFLICT (cron_runid) WHERE cron_runid IS NOT NULL DO NOTHING
        RETURNING 1
    )

    SELECT count(*) FROM recorded
$$;

COMMENT ON FUNCTION autopilot._record_cron_runs(jsonb) IS
'Private: records in autopilot.job_runs the finished runs of this database''s statement jobs from pg_cron''s history (cron.job_run_details rows with their jobname), each once (job_runs.cron_runid); returns how many were new. cron-history-cleanup calls it before it prunes (the runner where pg_cron lives in another database).';
