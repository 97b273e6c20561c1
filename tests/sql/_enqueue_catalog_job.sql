-- autopilot._enqueue_catalog_job: the runner job of a runner-side catalog entry, or the runner worker of a
-- database-side entry that has one (job_catalog.cron_elsewhere_worker: cron-history-cleanup where pg_cron
-- lives in another database), deduplicated while unfinished; any other database-side entry is refused.
BEGIN;
SELECT plan(8);

CREATE TEMPORARY TABLE tap_step ON COMMIT DROP AS
SELECT * FROM autopilot._enqueue_catalog_job('cron-history-cleanup');
SELECT is(
    (SELECT message FROM tap_step),
    (
        SELECT format('enqueued job %s (cron_history_cleanup)', id) FROM autopilot.jobs
        WHERE unique_key = 'catalog:cron-history-cleanup'
    ),
    'a database-side job with a runner worker enqueues that worker'
);
SELECT results_eq(
    $$SELECT queue, worker, args, meta FROM autopilot.jobs WHERE unique_key = 'catalog:cron-history-cleanup'$$,
    $$VALUES ('default'::text, 'cron_history_cleanup'::text, '{}'::jsonb,
              '{"catalog": "cron-history-cleanup"}'::jsonb)$$,
    'into queue default, without arguments, named after its catalog entry (the runner''s ledger rows are)'
);
SELECT is(
    (SELECT (autopilot._enqueue_catalog_job('cron-history-cleanup')).rows_affected),
    0::bigint,
    'while it is unfinished, a second enqueue adds nothing'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE unique_key = 'catalog:cron-history-cleanup'
    ),
    1::bigint,
    'one job in the queue'
);
SELECT throws_ok(
    $$SELECT autopilot._enqueue_catalog_job('table-statistics')$$,
    '0A000', 'autopilot job table-statistics runs in the database, not on the runner',
    'a database-side job without a runner worker is refused'
);
SELECT is(
    (SELECT (autopilot._enqueue_catalog_job('cache-cleanup')).rows_affected),
    1::bigint,
    'a runner-side job enqueues'
);
SELECT results_eq(
    $$SELECT queue, worker FROM autopilot.jobs WHERE unique_key = 'catalog:cache-cleanup'$$,
    $$VALUES ('default'::text, 'cache_cleanup'::text)$$,
    'its own worker (the target) into its own queue'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description, cron_elsewhere_worker)
      VALUES ('tap-statement', 'database', 'statement', '0 1 * * *', 'VACUUM', 'x', 'tap_worker')$$,
    '23514', NULL,
    'job_catalog: only a function or batched job of the database side has a runner worker'
);

SELECT * FROM finish();
ROLLBACK;
