CREATE VIEW autopilot.job_status AS
SELECT
    d.name,
    d.side,
    d.kind,
    d.schedule,
    d.enabled,
    d.only_on_dow,
    d.run_at_startup,
    d.unavailable_reason,
    d.cron_jobname,
    last_run.id AS last_run_id,
    last_run.trigger AS last_trigger,
    last_run.status AS last_status,
    last_run.started_at AS last_started_at,
    last_run.finished_at AS last_finished_at,
    last_run.finished_at - last_run.started_at AS last_duration,
    last_run.rows_affected AS last_rows_affected,
    last_run.message AS last_message,
    -- a runner job succeeds when its worker does: the run that enqueued it is not a success of it.
    -- Each side reads the newest entry of its own partial index (one query over both would read
    -- every enqueue of a runner job that never completed)
    CASE
        WHEN d.side = 'database'
            THEN (
                SELECT max(r.started_at) FROM autopilot.job_runs AS r
                WHERE r.job_name = d.name AND r.status = 'succeeded'
            )
        ELSE (
            SELECT max(r.started_at) FROM autopilot.job_runs AS r
            WHERE r.job_name = d.name AND r.status = 'succeeded' AND r.trigger = 'runner'
        )
    END AS last_success_at,
    d.disabled_reason
FROM autopilot.job_definitions AS d
LEFT JOIN LATERAL (
    SELECT
        r.id,
        r.trigger,
        r.status,
        r.started_at,
        r.finished_at,
        r.rows_affected,
        r.message
    FROM autopilot.job_runs AS r
    WHERE r.job_name = d.name
    ORDER BY r.started_at DESC
    LIMIT 1
) AS last_run ON true;

COMMENT ON VIEW autopilot.job_status IS
'Every catalog job with its effective schedule and state, its last run and its last successful run from the ledger (for a runner-side job, the last attempt its worker completed: enqueueing it is no success), and why it ships disabled (autopilot status adds pg_cron''s view and the next run time).';
