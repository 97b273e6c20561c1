-- autopilot.run_job(): runs a job now, in the caller's transaction, and returns
-- its ledger row.
BEGIN;
SELECT plan(33);

-- a catalog job whose function comes in a later version (every shipped job's is installed)
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
VALUES ('tap-future', 'database', 'function', '0 4 * * *', 'autopilot.tap_future_job', 'arrives later');

-- a failing job reports a WARNING; keep the TAP output clean
SET LOCAL client_min_messages = error;

SELECT has_function('autopilot', 'run_job', ARRAY['text'], 'autopilot.run_job(text) exists');
SELECT function_returns('autopilot', 'run_job', ARRAY['text'], 'autopilot.job_runs', 'run_job returns a job_runs row');

DELETE FROM autopilot.jobs;
-- pg_cron runs the active catalog jobs in this database meanwhile (task-assignment every 2 minutes):
-- their ledger rows wait until this test is over
LOCK TABLE autopilot.job_runs IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM autopilot.job_runs;

-- refused before anything is recorded
SELECT throws_ok(
    $$SELECT autopilot.run_job('vacuum-analyze')$$,
    '0A000', NULL, 'a statement job (VACUUM) cannot run in a function: feature_not_supported'
);
SELECT throws_ok(
    $$SELECT autopilot.run_job('tap-future')$$,
    '0A000', NULL, 'a job whose function is not in this version raises feature_not_supported'
);
SELECT throws_ok(
    $$SELECT autopilot.run_job('no-such-job')$$,
    '42704', NULL, 'an unknown job raises undefined_object'
);
SELECT is_empty($$SELECT * FROM autopilot.job_runs$$, 'refused runs record nothing in the ledger');

-- a runner job: enqueued once, deduplicated after
CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('backup-hourly');

SELECT results_eq(
    $$SELECT job_name, side, trigger, status, rows_affected FROM tap_run$$,
    $$VALUES ('backup-hourly'::text, 'runner'::text, 'manual'::text, 'succeeded'::text, 1::bigint)$$,
    'the first run of backup-hourly succeeds, one row affected, side runner, trigger manual'
);
SELECT ok(
    (SELECT finished_at IS NOT NULL AND finished_at >= started_at FROM tap_run),
    'the ledger row has a start, a finish and a duration'
);
SELECT results_eq(
    $$SELECT r.id, r.status, r.rows_affected, r.message FROM autopilot.job_runs AS r$$,
    $$SELECT t.id, t.status, t.rows_affected, t.message FROM tap_run AS t$$,
    'the returned row is the one in autopilot.job_runs'
);
SELECT results_eq(
    $$SELECT queue, worker, args, state, unique_key, meta FROM autopilot.jobs$$,
    $$VALUES ('backups'::text, 'backup'::text, '{"kind": "hourly"}'::jsonb, 'available'::text,
              'catalog:backup-hourly'::text, '{"catalog": "backup-hourly"}'::jsonb)$$,
    'one runner job is enqueued, with the catalog''s queue, worker and arguments'
);
SELECT is(
    (SELECT (details ->> 'job_id')::bigint FROM tap_run), (SELECT id FROM autopilot.jobs),
    'the run''s details name the enqueued job'
);

SELECT results_eq(
    $$SELECT status, rows_affected, (details ->> 'deduplicated')::boolean FROM autopilot.run_job('backup-hourly')$$,
    $$VALUES ('succeeded'::text, 0::bigint, true)$$,
    'a second run succeeds without enqueueing: deduplicated'
);
SELECT is((SELECT count(*)::integer FROM autopilot.jobs), 1, 'still one runner job');
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.job_runs
        WHERE job_name = 'backup-hourly'
    ),
    2,
    'both runs are in the ledger'
);

UPDATE autopilot.jobs SET state = 'completed', completed_at = now();
SELECT is(
    (SELECT rows_affected FROM autopilot.run_job('backup-hourly')), 1::bigint,
    'once the job has completed, the next run enqueues again'
);
SELECT is((SELECT count(*)::integer FROM autopilot.jobs), 2, 'two runner jobs: one completed, one available');

SELECT is(
    (SELECT rows_affected FROM autopilot.run_job('backup-daily')), 1::bigint,
    'another runner entry has its own unique key'
);

-- a function job
SELECT results_eq(
    $$SELECT status, rows_affected, message ~ '^analyzed database' FROM autopilot.run_job('table-statistics')$$,
    $$VALUES ('succeeded'::text, 0::bigint, true)$$,
    'a function job runs its function; the summary becomes the ledger message and rows'
);

-- a batched job with nothing to do
DELETE FROM autopilot.code_chunks;
SELECT results_eq(
    $$SELECT status, rows_affected, (details ->> 'batches')::integer FROM autopilot.run_job('code-chunk-cleanup')$$,
    $$VALUES ('succeeded'::text, 0::bigint, 1)$$,
    'a batched job with nothing to do: one batch, no rows'
);

-- a run cut short: the next run marks it abandoned
INSERT INTO autopilot.job_runs (job_name, side, trigger, started_at)
VALUES ('code-chunk-cleanup', 'database', 'pg_cron', now() - interval '1 hour');
SELECT is(
    (SELECT status FROM autopilot.run_job('code-chunk-cleanup')), 'succeeded', 'a run after a crashed one succeeds'
);
SELECT results_eq(
    $$SELECT status, finished_at IS NOT NULL FROM autopilot.job_runs
      WHERE job_name = 'code-chunk-cleanup' AND trigger = 'pg_cron'$$,
    $$VALUES ('abandoned'::text, true)$$,
    'and marks the run left running as abandoned'
);
SELECT is_empty(
    $$SELECT FROM autopilot.job_runs WHERE status = 'running'$$,
    'no run is left running'
);

-- a failing job: recorded as failed with its SQLSTATE, its work rolled back
CREATE FUNCTION autopilot.tap_failing_job()
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO autopilot.agents (name) VALUES ('tap-agent-of-a-failed-run');
    RAISE EXCEPTION 'tap job failed on purpose' USING ERRCODE = 'check_violation', DETAIL = 'tap detail';
END;
$$;
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
VALUES ('tap-failing-job', 'database', 'function', '0 0 1 1 *', 'autopilot.tap_failing_job', 'fails');

CREATE TEMPORARY TABLE tap_failed ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('tap-failing-job');
SELECT results_eq(
    $$SELECT status, error_sqlstate, message, details ->> 'detail', rows_affected FROM tap_failed$$,
    $$VALUES ('failed'::text, '23514'::text, 'tap job failed on purpose'::text, 'tap detail'::text, NULL::bigint)$$,
    'a failing job is recorded as failed, with its SQLSTATE, message and detail'
);
SELECT ok((SELECT finished_at IS NOT NULL FROM tap_failed), 'the failed run is finished');
SELECT is_empty(
    $$SELECT FROM autopilot.agents WHERE name = 'tap-agent-of-a-failed-run'$$,
    'the failed job''s work is rolled back'
);
SELECT is(
    (
        SELECT r.status FROM autopilot.job_runs AS r
        WHERE r.id = (SELECT f.id FROM tap_failed AS f)
    ),
    'failed',
    'the failed run stays in the ledger'
);

-- job_status reads the ledger
SELECT results_eq(
    $$SELECT last_status, last_rows_affected, last_duration IS NOT NULL FROM autopilot.job_status
      WHERE name = 'backup-daily'$$,
    $$VALUES ('succeeded'::text, 1::bigint, true)$$,
    'job_status shows the last run'
);
SELECT results_eq(
    $$SELECT last_status, last_success_at IS NULL FROM autopilot.job_status WHERE name = 'tap-failing-job'$$,
    $$VALUES ('failed'::text, true)$$,
    'job_status shows a failed last run and no success'
);

-- the weekday restriction of scheduled runs does not apply to run_job
SELECT is(
    (SELECT status FROM autopilot.run_job('backup-archival')), 'succeeded',
    'backup-archival runs on demand whatever the weekday'
);

-- one advisory lock per job makes two runs of it exclusive
SELECT is(
    (
        SELECT count(*)::integer FROM pg_locks
        WHERE
            locktype = 'advisory' AND pid = pg_backend_pid()
            AND ((classid::bigint << 32) | objid::bigint) = autopilot._job_lock_key('backup-hourly')
    ),
    1,
    'run_job holds the job''s advisory lock until the transaction ends'
);
SELECT isnt(
    autopilot._job_lock_key('backup-hourly'), autopilot._job_lock_key('backup-daily'),
    'two jobs have different lock keys'
);
SELECT is(
    autopilot._job_lock_key('backup-hourly') >> 32, x'61757470'::bigint,
    'the high half of the lock key marks it as autopilot''s'
);
SELECT is_empty(
    $$SELECT FROM autopilot.job_runs WHERE job_name = 'vacuum-analyze'$$,
    'vacuum-analyze never reached the ledger'
);

SELECT * FROM finish();
ROLLBACK;
