-- The catch-up rule of autopilot._run_start(): pg_cron 1.4 queues the ticks that pass
-- while a run overruns and starts them back to back afterwards. A pg_cron run that starts
-- more than one interval after the tick it was fired for is recorded as skipped and does
-- nothing; the last queued one, still within an interval of its tick, runs.
-- (tests/py/test_overrun.py shows the same with a real pg_cron overrun.)
BEGIN;
SELECT plan(14);

-- pg_cron runs the active catalog jobs in this database meanwhile: their ledger rows wait
LOCK TABLE autopilot.job_runs IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM autopilot.job_runs;
INSERT INTO autopilot.job_overrides (job_name, schedule) VALUES ('table-statistics', '* * * * *');

CREATE TEMPORARY TABLE tap_now AS SELECT date_trunc('minute', now()) AS n;

-- a run fired for the tick three minutes ago that ended just now: pg_cron queued three ticks
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, scheduled_for)
VALUES (
    'table-statistics',
    'database',
    'pg_cron',
    'succeeded',
    (SELECT n FROM tap_now) - interval '3 minutes',
    now(),
    (SELECT n FROM tap_now) - interval '3 minutes'
);

SET LOCAL application_name = 'pg_cron';

SELECT is(
    autopilot._run_start('table-statistics', false, false), NULL,
    'the first queued run (two minutes late, a later tick has passed) does not start'
);
SELECT results_eq(
    $$SELECT status, scheduled_for, message ~ '^skipped: caught up after an overrun'
      FROM autopilot.job_runs ORDER BY id DESC LIMIT 1$$,
    $$SELECT 'skipped', n - interval '2 minutes', true FROM tap_now$$,
    'it is recorded as skipped, with the tick it was fired for and why'
);
SELECT is(
    autopilot._run_start('table-statistics', false, false), NULL,
    'the second queued run (one minute late, the next tick has passed) does not start either'
);
SELECT is(
    (
        SELECT scheduled_for FROM autopilot.job_runs
        ORDER BY id DESC LIMIT 1
    ),
    (SELECT n - interval '1 minute' FROM tap_now),
    'it was fired for the next tick'
);

CREATE TEMPORARY TABLE tap_run AS
SELECT autopilot._run_start('table-statistics', false, false) AS id;
SELECT isnt((SELECT id FROM tap_run), NULL, 'the last queued run, within an interval of its tick, runs');
SELECT results_eq(
    $$SELECT status, scheduled_for FROM autopilot.job_runs WHERE id = (SELECT id FROM tap_run)$$,
    $$SELECT 'running', n FROM tap_now$$,
    'its ledger row names the current tick'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.job_runs
        WHERE status = 'skipped'
    ), 2::bigint,
    'an overrun over three ticks: two skipped runs, one catch-up run'
);

SELECT lives_ok(
    $$SELECT autopilot._run_finish((SELECT id FROM tap_run), 'succeeded', 0, 'done', NULL, '{}')$$,
    'the catch-up run finishes'
);
CREATE TEMPORARY TABLE tap_next AS
SELECT autopilot._run_start('table-statistics', false, false) AS id;
SELECT results_eq(
    $$SELECT status, scheduled_for FROM autopilot.job_runs WHERE id = (SELECT id FROM tap_next)$$,
    $$SELECT 'running', n FROM tap_now$$,
    'a run with no tick queued behind the last one is on time: its tick is the minute it started in'
);

-- a run that ended before the next tick came: the next run is on time
DELETE FROM autopilot.job_runs;
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, scheduled_for)
VALUES (
    'table-statistics',
    'database',
    'pg_cron',
    'succeeded',
    (SELECT n FROM tap_now) - interval '5 minutes',
    (SELECT n FROM tap_now) - interval '4 minutes 50 seconds',
    (SELECT n FROM tap_now) - interval '5 minutes'
);
SELECT isnt(autopilot._run_start('table-statistics', false, false), NULL, 'a prompt run starts');

-- an abandoned run's end is not known: it does not make the next runs look queued
DELETE FROM autopilot.job_runs;
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, scheduled_for)
VALUES (
    'table-statistics',
    'database',
    'pg_cron',
    'abandoned',
    (SELECT n FROM tap_now) - interval '3 hours',
    now(),
    (SELECT n FROM tap_now) - interval '3 hours'
);
SELECT isnt(
    autopilot._run_start('table-statistics', false, false), NULL,
    'the run after an abandoned one starts'
);

-- runs that pg_cron did not start are never caught-up runs
DELETE FROM autopilot.job_runs;
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, scheduled_for)
VALUES (
    'table-statistics',
    'database',
    'pg_cron',
    'succeeded',
    (SELECT n FROM tap_now) - interval '3 minutes',
    now(),
    (SELECT n FROM tap_now) - interval '3 minutes'
);
SELECT isnt(
    autopilot._run_start('table-statistics', true, false), NULL,
    'a manual run starts, whatever pg_cron queued'
);
SELECT is(
    (
        SELECT scheduled_for FROM autopilot.job_runs
        ORDER BY id DESC LIMIT 1
    ), NULL,
    'and has no tick'
);
SET LOCAL application_name = 'tap';
SELECT isnt(
    autopilot._run_start('table-statistics', false, false), NULL,
    'so does a run from another session (autopilot.run_job)'
);

SELECT * FROM finish();
ROLLBACK;
