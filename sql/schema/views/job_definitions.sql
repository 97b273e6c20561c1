CREATE VIEW autopilot.job_definitions AS
SELECT
    c.name,
    c.side,
    c.kind,
    coalesce(a.schedule, o.schedule, c.schedule) AS schedule,
    c.schedule AS default_schedule,
    coalesce(o.enabled, c.disabled_reason IS NULL) AS enabled,
    c.only_on_dow,
    c.target,
    c.args,
    c.queue,
    c.run_at_startup,
    c.description,
    autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron)
        AS unavailable_reason,
    -- autopilot._cron_jobname(c.name), written out: a view's functions need EXECUTE of every
    -- role that reads it, and these built-ins have it (tests/sql/_cron_jobname.sql compares them);
    -- current_database() is a name, whose collation ("C") the column must not take (RF02: sqlfluff
    -- reads "default" as a column)
    CASE
        WHEN octet_length(format('autopilot:%s:%s', current_database(), c.name)) <= 63
            THEN format('autopilot:%s:%s', current_database(), c.name)
        ELSE format(
            'autopilot:%s~%s:%s',
            CASE WHEN octet_length(left(current_database(), 16)) = 16 THEN left(current_database(), 16) ELSE '' END,
            left(md5(current_database()), 8), c.name
        )
    END COLLATE "default" AS cron_jobname, -- noqa: RF02
    CASE
        WHEN c.kind = 'statement' THEN coalesce(a.command, c.target)
        ELSE format('CALL autopilot.run_scheduled_job(%L)', c.name)
    END AS cron_command,
    c.only_when_armed,
    a.armed_at,
    -- what pg_cron's entry should say: enabled, runnable here, and armed when it must be
    coalesce(o.enabled, c.disabled_reason IS NULL)
    AND autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron) IS NULL
    AND (NOT c.only_when_armed OR a.job_name IS NOT NULL) AS active,
    -- why it ships disabled, while the DBA has not enabled or disabled it
    CASE WHEN o.enabled IS NULL THEN c.disabled_reason END AS disabled_reason,
    coalesce(o.timeout, c.timeout) AS timeout,
    c.timeout AS default_timeout,
    coalesce(o.max_attempts, c.max_attempts) AS max_attempts,
    coalesce(o.retry_backoff, c.retry_backoff) AS retry_backoff
FROM autopilot.job_catalog AS c
LEFT JOIN autopilot.job_overrides AS o ON c.name = o.job_name
LEFT JOIN autopilot.job_arming AS a ON c.name = a.job_name;

COMMENT ON VIEW autopilot.job_definitions IS
'The catalog with the DBA''s overrides applied: the schedule and state each job should have in pg_cron, the pg_cron job name and command, why a job cannot run here (unavailable_reason), whether pg_cron should run it (active), and the timeout and retry policy of its runs. A job''s own arming (autopilot.job_arming) wins over overrides while it lasts.';
