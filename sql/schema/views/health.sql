CREATE VIEW autopilot.health AS
SELECT
    h.severity,
    h.check_name,
    h.subject,
    h.message,
    h.since
FROM autopilot._health(autopilot._health_cron_jobs()) AS h;

COMMENT ON VIEW autopilot.health IS
'One row per problem a DBA should act on, critical or warning: jobs overdue (no success for twice their schedule''s interval, health.overdue_factor), failed or timed out; pg_cron jobs missing, inactive, out of sync or never run (when pg_cron lives in this database; autopilot check adds them from elsewhere); backups overdue, unverified or whose file is gone; no runner while jobs wait; a stalled queue; discarded jobs in the last 24 hours. Empty when all is well. autopilot check and autopilot status read it.';
