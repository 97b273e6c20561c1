-- autopilot.refresh_performance_metrics() (metrics-refresh): hourly (UTC)
-- aggregates per agent and per runner worker, recomputing only the hours
-- touched since the last run -- late rows and later changes included.
-- (Rows of transactions still open during a run: tests/py/test_metrics_refresh.py.)
BEGIN;
SELECT plan(29);

-- TRUNCATE ... CASCADE names every table it reaches: keep the TAP output clean
SET LOCAL client_min_messages = warning;

-- pg_cron runs metrics-refresh in this database every 30 minutes: hold the job's lock, so that a
-- scheduled run cannot wait on this test's rows while holding it
SELECT pg_advisory_xact_lock(autopilot._job_lock_key('metrics-refresh'));

SELECT has_function(
    'autopilot', 'refresh_performance_metrics', ARRAY[]::text[], 'autopilot.refresh_performance_metrics() exists'
);
SELECT function_returns(
    'autopilot', 'refresh_performance_metrics', ARRAY[]::text[], 'jsonb', 'it returns a jsonb summary'
);

TRUNCATE autopilot.tasks, autopilot.agents, autopilot.jobs, autopilot.job_runs CASCADE;
DELETE FROM autopilot.performance_metrics;
DELETE FROM autopilot.performance_metrics_pending;

SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'message' FROM autopilot.refresh_performance_metrics() AS s$$,
    $$VALUES ('0'::text, 'recomputed 0 agent hours and 0 worker hours: 0 metrics rows written, 0 removed'::text)$$,
    'nothing changed: nothing to do'
);

CREATE FUNCTION pg_temp.agent(p_name text) RETURNS text LANGUAGE sql AS $$
    SELECT id::text FROM autopilot.agents WHERE name = p_name
$$;
CREATE TEMPORARY TABLE tap_summary (scenario text PRIMARY KEY, summary jsonb) ON COMMIT DROP;

-- ---------------------------------------------------------------------------
-- agents: one hour (10:00 UTC) with 3 succeeded and 1 failed task for 'one', a
-- task never started for 'two', and a cancelled task (not counted)
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('one', 5, now()), ('two', 5, now());
INSERT INTO autopilot.tasks (title, status, agent_id, started_at, finished_at)
SELECT
    v.title,
    v.status,
    a.id,
    v.started_at::timestamptz,
    v.finished_at::timestamptz
FROM (
    VALUES
    ('s10', 'succeeded', 'one', '2024-05-01 10:00+00', '2024-05-01 10:10+00'),
    ('s20', 'succeeded', 'one', '2024-05-01 10:05+00', '2024-05-01 10:25+00'),
    ('s60', 'succeeded', 'one', '2024-05-01 09:30+00', '2024-05-01 10:30+00'),
    ('f30', 'failed', 'one', '2024-05-01 10:20+00', '2024-05-01 10:50+00'),
    ('never started', 'succeeded', 'two', NULL, '2024-05-01 10:40+00'),
    ('cancelled', 'cancelled', 'two', '2024-05-01 10:00+00', '2024-05-01 10:45+00')
) AS v (title, status, agent, started_at, finished_at)
INNER JOIN autopilot.agents AS a ON v.agent = a.name;

SELECT results_eq(
    $$SELECT subject_kind, hour FROM autopilot.performance_metrics_pending$$,
    $$VALUES ('agent'::text, '2024-05-01 10:00+00'::timestamptz)$$,
    'the tasks trigger queued the hour once (one row per transaction and hour)'
);

INSERT INTO tap_summary (scenario, summary) VALUES ('first', autopilot.refresh_performance_metrics());

SELECT results_eq(
    $$SELECT subject, hour, succeeded, failed, discarded, success_rate
      FROM autopilot.performance_metrics WHERE subject_kind = 'agent' ORDER BY subject$$,
    $$VALUES (pg_temp.agent('one'), '2024-05-01 10:00+00'::timestamptz, 3::bigint, 1::bigint, 0::bigint, 0.75::float8),
             (pg_temp.agent('two'), '2024-05-01 10:00+00'::timestamptz, 1::bigint, 0::bigint, 0::bigint, 1::float8)$$,
    'per agent and hour: succeeded, failed, success rate (a cancelled task does not count)'
);
SELECT results_eq(
    $$SELECT mean_duration, p50_duration, p95_duration FROM autopilot.performance_metrics
      WHERE subject = pg_temp.agent('one')$$,
    $$VALUES (interval '30 minutes', interval '25 minutes', interval '55 minutes 30 seconds')$$,
    'durations finished_at - started_at: mean, p50 and p95 (percentile_cont over 10, 20, 30, 60 minutes)'
);
SELECT results_eq(
    $$SELECT mean_duration, p50_duration, p95_duration FROM autopilot.performance_metrics
      WHERE subject = pg_temp.agent('two')$$,
    $$VALUES (NULL::interval, NULL::interval, NULL::interval)$$,
    'a task never started counts, without a duration'
);
SELECT results_eq(
    $$SELECT (summary ->> 'agent_hours')::int, (summary ->> 'rows_affected')::int, summary ->> 'message'
      FROM tap_summary WHERE scenario = 'first'$$,
    $$VALUES (1, 2, 'recomputed 1 agent hour and 0 worker hours: 2 metrics rows written, 0 removed'::text)$$,
    'the summary'
);
SELECT is_empty($$SELECT FROM autopilot.performance_metrics_pending$$, 'the queued hour is consumed');
SELECT is(
    (autopilot.refresh_performance_metrics() ->> 'agent_hours')::int, 0, 'a second run has nothing to recompute'
);

-- ---------------------------------------------------------------------------
-- what happens later
UPDATE autopilot.tasks SET agent_id = agent_id
WHERE title = 's10';
UPDATE autopilot.tasks SET status = 'running', finished_at = NULL
WHERE title = 'cancelled';
UPDATE autopilot.tasks SET details = '{"note": 1}'
WHERE title = 's20';
SELECT is_empty(
    $$SELECT FROM autopilot.performance_metrics_pending$$,
    'updates that change no finished task''s agent, status or times queue nothing'
);

-- a task finishing late, into an hour of yesterday
INSERT INTO autopilot.tasks (title, status, agent_id, started_at, finished_at)
VALUES ('late', 'succeeded', pg_temp.agent('one')::bigint, '2024-04-30 23:10+00', '2024-04-30 23:20+00');
INSERT INTO tap_summary (scenario, summary) VALUES ('late', autopilot.refresh_performance_metrics());
SELECT results_eq(
    $$SELECT (summary ->> 'agent_hours')::int, (summary ->> 'oldest_hour')::timestamptz FROM tap_summary
      WHERE scenario = 'late'$$,
    $$VALUES (1, '2024-04-30 23:00+00'::timestamptz)$$,
    'a late row: only its hour is recomputed...'
);
SELECT results_eq(
    $$SELECT hour, succeeded, mean_duration FROM autopilot.performance_metrics
      WHERE subject = pg_temp.agent('one') ORDER BY hour$$,
    $$VALUES ('2024-04-30 23:00+00'::timestamptz, 1::bigint, interval '10 minutes'),
             ('2024-05-01 10:00+00'::timestamptz, 3::bigint, interval '30 minutes')$$,
    '... and counted, the other hours untouched'
);

-- a finished task updated after its hour was computed
UPDATE autopilot.tasks SET status = 'failed'
WHERE title = 's60';
SELECT autopilot.refresh_performance_metrics();
SELECT results_eq(
    $$SELECT succeeded, failed, success_rate FROM autopilot.performance_metrics
      WHERE subject = pg_temp.agent('one') AND hour = '2024-05-01 10:00+00'$$,
    $$VALUES (2::bigint, 2::bigint, 0.5::float8)$$,
    'a finished task changing its outcome is recounted in its hour'
);

-- a task moving to another hour and to another agent: both hours and both agents
UPDATE autopilot.tasks
SET finished_at = '2024-05-01 11:15+00', agent_id = pg_temp.agent('one')::bigint
WHERE title = 'never started';
INSERT INTO tap_summary (scenario, summary) VALUES ('moved', autopilot.refresh_performance_metrics());
SELECT results_eq(
    $$SELECT subject, hour, succeeded + failed FROM autopilot.performance_metrics
      WHERE subject_kind = 'agent' AND hour >= '2024-05-01 10:00+00' ORDER BY subject, hour$$,
    $$VALUES (pg_temp.agent('one'), '2024-05-01 10:00+00'::timestamptz, 4::bigint),
             (pg_temp.agent('one'), '2024-05-01 11:00+00'::timestamptz, 1::bigint)$$,
    'a task moved to another hour and agent: it leaves one row and lands in another'
);
SELECT results_eq(
    $$SELECT (summary ->> 'agent_hours')::int, (summary ->> 'removed')::int FROM tap_summary
      WHERE scenario = 'moved'$$,
    $$VALUES (2, 1)$$,
    'both hours were recomputed; the agent left with nothing in the old hour lost its row'
);

-- deleting finished tasks marks nothing: computed metrics stay
DELETE FROM autopilot.tasks
WHERE title = 'late';
SELECT is_empty($$SELECT FROM autopilot.performance_metrics_pending$$, 'a delete queues nothing');
SELECT is(
    (
        SELECT succeeded FROM autopilot.performance_metrics
        WHERE hour = '2024-04-30 23:00+00'
    ), 1::bigint,
    '... and the hour keeps its metrics'
);

-- hours are UTC hours, whatever the session's time zone (+05:30 here)
SET LOCAL timezone = 'Asia/Kolkata';
INSERT INTO autopilot.tasks (title, status, agent_id, started_at, finished_at)
VALUES ('in kolkata', 'succeeded', pg_temp.agent('two')::bigint, '2024-05-01 16:00+05:30', '2024-05-01 16:40+05:30');
SELECT lives_ok($$SELECT autopilot.refresh_performance_metrics()$$, 'a session off UTC by half an hour refreshes');
SELECT results_eq(
    $$SELECT hour, succeeded FROM autopilot.performance_metrics WHERE subject = pg_temp.agent('two')$$,
    $$VALUES ('2024-05-01 11:00+00'::timestamptz, 1::bigint)$$,
    '... into the UTC hour (16:40 in Kolkata is 11:10 UTC: hour 11:00 UTC, not 16:00 local)'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.performance_metrics (subject_kind, subject, hour)
      VALUES ('agent', 'x', '2024-05-01 16:00+05:30')$$,
    '23514', NULL, 'performance_metrics.hour must be a UTC hour'
);
RESET timezone;

-- ---------------------------------------------------------------------------
-- runner workers: completed and discarded jobs, the runner's failed runs
INSERT INTO autopilot.jobs (queue, worker, state, attempt, attempted_at, completed_at, discarded_at)
VALUES
('backups', 'backup', 'completed', 1, '2024-05-01 10:00+00', '2024-05-01 10:00:10+00', NULL),
('backups', 'backup', 'completed', 2, '2024-05-01 10:20+00', '2024-05-01 10:20:30+00', NULL),
('backups', 'backup', 'discarded', 20, '2024-05-01 10:40+00', NULL, '2024-05-01 10:41+00'),
('default', 'code_ingest', 'completed', 1, '2024-05-01 10:00+00', '2024-05-01 10:59:59+00', NULL),
('default', 'code_ingest', 'available', 0, NULL, NULL, NULL);
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES
('backup-hourly', 'runner', 'runner', 'failed', '2024-05-01 10:30+00', '2024-05-01 10:30:20+00'),
('adhoc_export', 'runner', 'runner', 'failed', '2024-05-01 10:31+00', '2024-05-01 10:31:01+00'),
('backup-hourly', 'runner', 'runner', 'succeeded', '2024-05-01 10:32+00', '2024-05-01 10:32:05+00'),
('old-job-cleanup', 'database', 'pg_cron', 'failed', '2024-05-01 10:33+00', '2024-05-01 10:33:01+00');
SELECT results_eq(
    $$SELECT DISTINCT subject_kind, hour FROM autopilot.performance_metrics_pending$$,
    $$VALUES ('worker'::text, '2024-05-01 10:00+00'::timestamptz)$$,
    'jobs and the runner''s failed runs queue their hours for the workers'
);
INSERT INTO tap_summary (scenario, summary) VALUES ('workers', autopilot.refresh_performance_metrics());
SELECT results_eq(
    $$SELECT subject, succeeded, failed, discarded, success_rate
      FROM autopilot.performance_metrics WHERE subject_kind = 'worker' ORDER BY subject$$,
    $$VALUES ('adhoc_export'::text, 0::bigint, 1::bigint, 0::bigint, 0::float8),
             ('backup', 2, 1, 1, 2 / 3::float8),
             ('code_ingest', 1, 0, 0, 1::float8)$$,
    'per worker: completed, failed runs (a catalog job''s under its worker), discarded; a database job is no worker'
);
SELECT results_eq(
    $$SELECT mean_duration, p50_duration FROM autopilot.performance_metrics WHERE subject = 'backup'$$,
    $$VALUES (interval '20 seconds', interval '20 seconds')$$,
    'worker durations: completed jobs (10 s, 30 s) and failed runs (20 s)'
);
SELECT results_eq(
    $$SELECT (summary ->> 'worker_hours')::int, (summary ->> 'worker_rows')::int FROM tap_summary
      WHERE scenario = 'workers'$$,
    $$VALUES (1, 3)$$,
    'one worker hour, three workers'
);
UPDATE autopilot.jobs SET state = 'discarded', discarded_at = completed_at, completed_at = NULL
WHERE worker = 'code_ingest' AND state = 'completed';
SELECT autopilot.refresh_performance_metrics();
SELECT results_eq(
    $$SELECT succeeded, discarded, mean_duration FROM autopilot.performance_metrics WHERE subject = 'code_ingest'$$,
    $$VALUES (0::bigint, 1::bigint, NULL::interval)$$,
    'a job changing its outcome is recounted'
);

-- ---------------------------------------------------------------------------
-- the catalog job
SELECT is(
    (
        SELECT unavailable_reason FROM autopilot.job_definitions
        WHERE name = 'metrics-refresh'
    ), NULL,
    'metrics-refresh can run in this version'
);
UPDATE autopilot.tasks SET status = 'succeeded'
WHERE title = 'f30';
CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS SELECT * FROM autopilot.run_job('metrics-refresh');
SELECT results_eq(
    $$SELECT status, rows_affected, message FROM tap_run$$,
    $$VALUES ('succeeded'::text, 1::bigint,
              'recomputed 1 agent hour and 0 worker hours: 1 metrics rows written, 0 removed'::text)$$,
    'run_job(''metrics-refresh''): succeeded, rows_affected = metrics rows written or removed'
);
SELECT is(
    (SELECT details ->> 'oldest_hour' FROM tap_run)::timestamptz, '2024-05-01 10:00+00'::timestamptz,
    'the summary''s other keys land in the ledger''s details'
);

SELECT * FROM finish();
ROLLBACK;
