-- autopilot._run_job_step: one step of a job. cron-history-cleanup prunes pg_cron's history itself where
-- pg_cron is in this database, and enqueues its runner worker where it is not (pg_cron elsewhere, or on a
-- server without pg_cron); tests/py/test_cron_history_elsewhere.py runs the worker in that layout.
BEGIN;
SELECT plan(4);

SELECT is(
    (SELECT (autopilot._run_job_step('table-statistics', NULL)).done),
    true,
    'a function job is done in one step'
);
SELECT throws_ok(
    $$SELECT autopilot._run_job_step('vacuum-analyze', NULL)$$,
    '0A000', NULL,
    'a statement job cannot run in a function'
);
CREATE TEMPORARY TABLE tap_step ON COMMIT DROP AS
SELECT
    s.*,
    exists(
        SELECT FROM pg_catalog.pg_class AS c
        INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
        WHERE n.nspname = 'cron' AND c.relname = 'job_run_details'
    ) AS local_pg_cron
FROM autopilot._run_job_step('cron-history-cleanup', '{}') AS s;
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE worker = 'cron_history_cleanup'
    ),
    (SELECT CASE WHEN local_pg_cron THEN 0 ELSE 1 END::bigint FROM tap_step),
    'cron-history-cleanup enqueues its runner worker only where pg_cron is not in this database'
);
SELECT ok(
    (SELECT CASE
        WHEN local_pg_cron THEN details IS NULL OR NOT details ? 'job_id'
        ELSE message LIKE 'enqueued job % (cron_history_cleanup)'
    END FROM tap_step),
    'its step is a batch of the function there, the enqueue here'
);

SELECT * FROM finish();
ROLLBACK;
