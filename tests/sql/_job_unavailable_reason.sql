-- autopilot._job_unavailable_reason(): NULL when a catalog job can run here, else why not; it answers
-- for any role, one without USAGE on schema cron too (the read-only role reading job_status).
BEGIN;
SELECT plan(4);

SELECT is(
    autopilot._job_unavailable_reason('function', 'autopilot.no_such_function', false),
    format('autopilot.no_such_function() is not part of autopilot %s', autopilot.version()),
    'a function job whose function is not in this version: the reason names it'
);
SELECT is(
    autopilot._job_unavailable_reason('function', 'autopilot.version', false), NULL,
    'a function job whose function is here can run'
);
-- the suite runs in pg_cron's database where pg_cron is loaded, and on a server without pg_cron
SELECT is(
    autopilot._job_unavailable_reason('statement', 'VACUUM', true),
    CASE
        WHEN EXISTS (
            SELECT FROM pg_catalog.pg_extension
            WHERE extname = 'pg_cron'
        ) THEN NULL
        ELSE 'pg_cron is not installed in this database'
    END,
    'a job that needs pg_cron in this database: NULL where it is, else the reason'
);

CREATE ROLE ap_test_no_cron_usage;
GRANT USAGE ON SCHEMA autopilot TO ap_test_no_cron_usage;
GRANT EXECUTE ON FUNCTION autopilot._job_unavailable_reason(text, text, boolean), autopilot.version()
TO ap_test_no_cron_usage;
CREATE TEMPORARY TABLE superuser_answer AS
SELECT autopilot._job_unavailable_reason('statement', 'VACUUM', true) AS reason;
GRANT SELECT ON superuser_answer TO ap_test_no_cron_usage;
SET LOCAL ROLE ap_test_no_cron_usage;
SELECT is(
    autopilot._job_unavailable_reason('statement', 'VACUUM', true),
    (SELECT reason FROM superuser_answer),
    'a role without USAGE on schema cron gets the same answer (no "permission denied for schema cron")'
);
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
