-- autopilot.run_scheduled_job(): the procedure pg_cron CALLs. It COMMITs between
-- batches, so inside a transaction block (as here) it must refuse at once,
-- before it takes a lock or records anything.
BEGIN;
SELECT plan(9);

SELECT is(
    (
        SELECT p.prokind::text FROM pg_proc AS p
        WHERE p.oid = to_regprocedure('autopilot.run_scheduled_job(text, boolean)')
    ),
    'p',
    'autopilot.run_scheduled_job(text, boolean) is a procedure'
);
SELECT is(
    (
        SELECT pg_get_expr(p.proargdefaults, 0) FROM pg_proc AS p
        WHERE p.oid = 'autopilot.run_scheduled_job(text, boolean)'::regprocedure
    ),
    'false',
    'p_manual defaults to false (a scheduled run)'
);

DELETE FROM autopilot.jobs;
-- pg_cron runs the active catalog jobs in this database meanwhile (task-assignment every 2 minutes):
-- their ledger rows wait until this test is over
LOCK TABLE autopilot.job_runs IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM autopilot.job_runs;

SELECT throws_ok(
    $$CALL autopilot.run_scheduled_job('backup-hourly')$$,
    '2D000', NULL, 'inside a transaction block it raises invalid_transaction_termination'
);
SELECT throws_ok(
    $$CALL autopilot.run_scheduled_job('old-job-cleanup', p_manual => true)$$,
    '2D000', NULL, 'a manual run inside a transaction block is refused the same way'
);
SELECT throws_ok(
    $$CALL autopilot.run_scheduled_job('no-such-job')$$,
    '2D000', NULL, 'the refusal comes first, even for an unknown job'
);
SELECT is_empty($$SELECT * FROM autopilot.job_runs$$, 'the refused runs recorded nothing');
SELECT is_empty($$SELECT * FROM autopilot.jobs$$, 'the refused runner job enqueued nothing');
SELECT is_empty(
    $$SELECT FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()$$,
    'and holds no advisory lock'
);

SELECT is_empty(
    $$SELECT d.name FROM autopilot.job_definitions AS d
      WHERE d.kind <> 'statement'
        AND d.cron_command IS DISTINCT FROM format('CALL autopilot.run_scheduled_job(%L)', d.name)$$,
    'pg_cron runs every job but the statement jobs through CALL autopilot.run_scheduled_job(name)'
);

SELECT * FROM finish();
ROLLBACK;
