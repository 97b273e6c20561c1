-- autopilot.job_definitions and autopilot.job_status: a runner-side job whose worker does not ship
-- with the runner is disabled by default, with its reason; a runner job's last success is the last
-- attempt its worker completed (the run that enqueued it is no success of it).
BEGIN;
SELECT plan(8);

LOCK TABLE autopilot.job_runs IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM autopilot.job_runs;
DELETE FROM autopilot.job_overrides;

SELECT is_empty(
    $$SELECT name FROM autopilot.job_definitions WHERE side = 'runner' AND disabled_reason IS NOT NULL$$,
    'every runner-side job ships enabled: its worker ships with the runner'
);
-- a version that ships a catalog job without its worker gives it the reason (as 0.3.0 did for template-sync)
UPDATE autopilot.job_catalog
SET disabled_reason = 'no rag_setup worker ships with the runner: enable the job when yours loads one (--worker-module)'
WHERE name = 'rag-setup';
SELECT results_eq(
    $$SELECT enabled, active, disabled_reason FROM autopilot.job_definitions WHERE name = 'rag-setup'$$,
    $$VALUES (
        false, false,
        'no rag_setup worker ships with the runner: enable the job when yours loads one (--worker-module)'
    )$$,
    'a job without a worker in the runner ships disabled, inactive, with the reason'
);
SELECT autopilot.set_job_enabled('rag-setup', true);
SELECT results_eq(
    $$SELECT enabled, disabled_reason FROM autopilot.job_status WHERE name = 'rag-setup'$$,
    $$VALUES (true, NULL::text)$$,
    'enabled by the DBA, it has no reason to show'
);
SELECT autopilot.set_job_enabled('rag-setup', false);
SELECT is(
    (
        SELECT disabled_reason FROM autopilot.job_status
        WHERE name = 'rag-setup'
    ), NULL,
    'disabled by the DBA, neither: it is the DBA''s choice'
);

INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES ('cache-cleanup', 'runner', 'pg_cron', 'succeeded', now() - interval '2 hours', now() - interval '2 hours');
SELECT results_eq(
    $$SELECT last_status, last_success_at FROM autopilot.job_status WHERE name = 'cache-cleanup'$$,
    $$VALUES ('succeeded', NULL::timestamptz)$$,
    'a runner job only enqueued has run, but not succeeded'
);
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES ('cache-cleanup', 'runner', 'runner', 'failed', now() - interval '1 hour', now() - interval '1 hour');
SELECT results_eq(
    $$SELECT last_status, last_success_at FROM autopilot.job_status WHERE name = 'cache-cleanup'$$,
    $$VALUES ('failed', NULL::timestamptz)$$,
    'nor when its worker failed (or was missing, and it was discarded)'
);
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES ('cache-cleanup', 'runner', 'runner', 'succeeded', now() - interval '30 minutes', now());
SELECT is(
    (
        SELECT last_success_at FROM autopilot.job_status
        WHERE name = 'cache-cleanup'
    ),
    now() - interval '30 minutes',
    'its success is the attempt its worker completed'
);

INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES ('table-statistics', 'database', 'pg_cron', 'succeeded', now() - interval '5 minutes', now());
SELECT is(
    (
        SELECT last_success_at FROM autopilot.job_status
        WHERE name = 'table-statistics'
    ),
    now() - interval '5 minutes',
    'a database-side job succeeds with its pg_cron run'
);

SELECT * FROM finish();
ROLLBACK;
