CREATE VIEW autopilot.job_definitions AS
SELECT
    c.name,
    c.side,
    c.kind,
    coalesce(o.schedule, c.schedule) AS schedule,
    c.schedule AS default_schedule,
    coalesce(o.enabled, true) AS enabled,
    c.only_on_dow,
    c.target,
    c.args,
    c.queue,
    c.run_at_startup,
    c.description,
    autopilot._job_unavailable_reason(c.kind, c.target, c.requires_local_pg_cron)
        AS unavailable_reason,
    'autopilot:' || c.name AS cron_jobname,
    CASE
        WHEN c.kind = 'statement' THEN c.target
        ELSE format('CALL autopilot.run_scheduled_job(%L)', c.name)
    END AS cron_command
FROM autopilot.job_catalog AS c
LEFT JOIN autopilot.job_overrides AS o ON c.name = o.job_name;

COMMENT ON VIEW autopilot.job_definitions IS
'The catalog with the DBA''s overrides applied: the schedule and state each job should have in pg_cron, the pg_cron job name and command, and why a job cannot run here (unavailable_reason).';
