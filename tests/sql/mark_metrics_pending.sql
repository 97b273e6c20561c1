-- autopilot._mark_metrics_pending(): the statement triggers on autopilot.tasks, autopilot.jobs
-- and autopilot.job_runs that queue, in autopilot.performance_metrics_pending, the UTC hours
-- whose metrics a statement changed (what metrics-refresh then recomputes:
-- tests/sql/refresh_performance_metrics.sql). Everything here is one transaction, so a queued
-- hour is one row whatever the statements: the queue is emptied before each case.
BEGIN;
SELECT plan(37);

SET LOCAL client_min_messages = warning;
-- pg_cron runs metrics-refresh in this database: hold its lock, so that a scheduled run cannot
-- wait on this test's rows (or consume its queue) meanwhile
SELECT pg_advisory_xact_lock(autopilot._job_lock_key('metrics-refresh'));

SELECT has_function('autopilot', '_mark_metrics_pending', ARRAY[]::text[], 'autopilot._mark_metrics_pending() exists');
SELECT function_returns('autopilot', '_mark_metrics_pending', ARRAY[]::text[], 'trigger', 'it is a trigger function');
SELECT is_empty(
    $$SELECT FROM pg_proc
      WHERE pronamespace = 'autopilot'::regnamespace
        AND proname IN ('_mark_task_metrics_pending', '_mark_job_metrics_pending', '_mark_run_metrics_pending')$$,
    'the three per-table trigger functions it replaced are gone'
);
SELECT results_eq(
    $$SELECT
          c.relname::text COLLATE "default", t.tgname::text COLLATE "default",
          t.tgoldtable::text COLLATE "default", t.tgnewtable::text COLLATE "default"
      FROM pg_trigger AS t INNER JOIN pg_class AS c ON t.tgrelid = c.oid
      WHERE t.tgfoid = 'autopilot._mark_metrics_pending()'::regprocedure
      ORDER BY 1, 2$$,
    $$VALUES ('job_runs', 'job_runs_metrics_insert_trg', NULL::text, 'new_runs'),
             ('job_runs', 'job_runs_metrics_update_trg', 'old_runs', 'new_runs'),
             ('jobs', 'jobs_metrics_insert_trg', NULL, NULL),
             ('jobs', 'jobs_metrics_update_trg', 'old_jobs', 'new_jobs'),
             ('tasks', 'tasks_metrics_insert_trg', NULL, 'new_tasks'),
             ('tasks', 'tasks_metrics_update_trg', 'old_tasks', 'new_tasks')$$,
    'an insert and an update trigger on each of tasks, jobs and job_runs, with their transition tables '
    || '(none for the row trigger after INSERT on jobs)'
);
SELECT is(
    (
        SELECT array_agg(DISTINCT t.tgtype)
        FROM pg_trigger AS t
        WHERE t.tgfoid = 'autopilot._mark_metrics_pending()'::regprocedure
    ),
    -- 4 = INSERT, 16 = UPDATE, 5 = INSERT and ROW (jobs_metrics_insert_trg); no BEFORE (2) bit
    ARRAY[4, 5, 16]::smallint[],
    'each trigger fires after its statement, once; after INSERT on jobs, after each row'
);
SELECT ok(
    (
        SELECT
            pg_get_triggerdef(t.oid) LIKE '%FOR EACH ROW WHEN (((new.state = ANY (ARRAY[''completed''::text, '
            || '''discarded''::text])) AND (COALESCE(new.completed_at, new.discarded_at) IS NOT NULL)))%'
        FROM pg_trigger AS t
        WHERE t.tgname = 'jobs_metrics_insert_trg'
    ),
    'after INSERT on jobs, it is called for the jobs inserted completed or discarded only (an enqueue calls nothing)'
);

TRUNCATE autopilot.tasks, autopilot.agents, autopilot.jobs, autopilot.job_runs CASCADE;
DELETE FROM autopilot.performance_metrics_pending;
CREATE FUNCTION pg_temp.queued() RETURNS TABLE (subject_kind text, hour timestamptz) LANGUAGE sql AS $$
    SELECT p.subject_kind, p.hour FROM autopilot.performance_metrics_pending AS p ORDER BY 1, 2
$$;

-- ---------------------------------------------------------------------------
-- tasks: a task with an agent that succeeded or failed, by finished_at (agent metrics)
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
    ('s', 'succeeded', 'one', '2024-05-01 10:00+00', '2024-05-01 10:10+00'),
    ('f', 'failed', 'two', '2024-05-01 11:00+00', '2024-05-01 11:59:59+00'),
    ('c', 'cancelled', 'one', '2024-05-01 12:00+00', '2024-05-01 12:10+00'),
    ('r', 'running', 'one', '2024-05-01 13:00+00', NULL)
) AS v (title, status, agent, started_at, finished_at)
INNER JOIN autopilot.agents AS a ON v.agent = a.name;
INSERT INTO autopilot.tasks (title, status, finished_at) VALUES ('no agent', 'succeeded', '2024-05-01 14:00+00');
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-01 10:00+00'::timestamptz), ('agent', '2024-05-01 11:00+00')$$,
    'tasks inserted: the hours of the succeeded and failed ones with an agent (not cancelled, running, agentless)'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.tasks SET details = '{"note": 1}', priority = 3;
UPDATE autopilot.tasks SET status = 'pending', agent_id = NULL, started_at = NULL
WHERE title = 'c';
SELECT is_empty(
    $$SELECT * FROM pg_temp.queued()$$,
    'tasks updated outside their agent, status and times (or while unfinished): nothing'
);

UPDATE autopilot.tasks SET status = 'succeeded', finished_at = '2024-05-01 15:30+00'
WHERE title = 'r';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-01 15:00+00'::timestamptz)$$,
    'a task finishing: its hour'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.tasks SET finished_at = '2024-05-01 16:05+00'
WHERE title = 's';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-01 10:00+00'::timestamptz), ('agent', '2024-05-01 16:00+00')$$,
    'a finished task moved to another hour: the hour it left and the one it joined'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.tasks SET
    agent_id = (
        SELECT id FROM autopilot.agents
        WHERE name = 'one'
    )
WHERE title = 'f';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-01 11:00+00'::timestamptz)$$,
    'a finished task given to another agent: its hour, once'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.tasks SET status = 'cancelled'
WHERE title = 'f';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-01 11:00+00'::timestamptz)$$,
    'a task leaving succeeded/failed: the hour it leaves'
);

DELETE FROM autopilot.performance_metrics_pending;
DELETE FROM autopilot.tasks
WHERE title = 's';
SELECT is_empty($$SELECT * FROM pg_temp.queued()$$, 'tasks deleted: nothing (the computed metrics stay)');

SET LOCAL timezone = 'Asia/Kolkata';
INSERT INTO autopilot.tasks (title, status, agent_id, finished_at)
VALUES ('kolkata', 'failed', (
    SELECT id FROM autopilot.agents
    WHERE name = 'two'
), '2024-05-01 16:40+05:30');
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-01 11:00+00'::timestamptz)$$,
    'the hour is the UTC hour, whatever the session''s time zone (16:40 in Kolkata: 11:00 UTC)'
);
RESET timezone;

-- ---------------------------------------------------------------------------
-- jobs: completed (by completed_at) or discarded (by discarded_at) jobs (worker metrics)
DELETE FROM autopilot.performance_metrics_pending;
INSERT INTO autopilot.jobs (queue, worker, state, attempt, attempted_at, completed_at, discarded_at, cancelled_at)
VALUES
('tap', 'backup', 'completed', 1, '2024-05-01 10:00+00', '2024-05-01 10:00:10+00', NULL, NULL),
('tap', 'backup', 'discarded', 20, '2024-05-01 11:40+00', NULL, '2024-05-01 11:41+00', NULL),
('tap', 'backup', 'cancelled', 1, '2024-05-01 12:00+00', NULL, NULL, '2024-05-01 12:01+00'),
('tap', 'backup', 'executing', 1, '2024-05-01 13:00+00', NULL, NULL, NULL),
('tap', 'backup', 'available', 0, NULL, NULL, NULL, NULL);
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 10:00+00'::timestamptz), ('worker', '2024-05-01 11:00+00')$$,
    'jobs inserted: the hours of the completed and discarded ones (not cancelled, executing, available)'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.jobs SET args = '{"k": 1}', meta = '{"m": 1}', errors = '[{"e": 1}]';
UPDATE autopilot.jobs SET heartbeat_at = '2024-05-01 13:05+00'
WHERE state = 'executing';
SELECT is_empty(
    $$SELECT * FROM pg_temp.queued()$$,
    'jobs updated outside their worker, state, attempt time and end time (or while unfinished): nothing'
);

UPDATE autopilot.jobs SET state = 'completed', completed_at = '2024-05-01 13:20+00'
WHERE state = 'executing';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 13:00+00'::timestamptz)$$,
    'a job completing: its hour'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.jobs SET state = 'discarded', discarded_at = '2024-05-01 17:00+00', completed_at = NULL
WHERE completed_at = '2024-05-01 10:00:10+00';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 10:00+00'::timestamptz), ('worker', '2024-05-01 17:00+00')$$,
    'a completed job discarded later: the hour it left and the one it joined'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.jobs SET attempted_at = attempted_at - interval '1 minute'
WHERE state = 'discarded';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 11:00+00'::timestamptz), ('worker', '2024-05-01 17:00+00')$$,
    'a finished job''s attempt time changing (its duration): its hour'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.jobs SET worker = 'code_ingest'
WHERE state = 'completed';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 13:00+00'::timestamptz)$$,
    'a finished job changing worker: its hour, once'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.jobs SET state = 'available', attempt = 0, completed_at = NULL
WHERE state = 'completed';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 13:00+00'::timestamptz)$$,
    'a completed job reset to available: the hour it leaves'
);

DELETE FROM autopilot.performance_metrics_pending;
DELETE FROM autopilot.jobs
WHERE state = 'discarded';
SELECT is_empty($$SELECT * FROM pg_temp.queued()$$, 'jobs deleted: nothing');

-- the queue's own functions: a claimed job completed with complete_many() (which records the
-- attempt in job_runs, as succeeded: not counted there)
INSERT INTO autopilot.jobs (queue, worker, state, attempt, attempted_at, attempted_by)
VALUES ('tap', 'backup', 'executing', 1, now() - interval '1 second', 'tap-node');
SELECT is(
    (
        SELECT autopilot.complete_many(ARRAY[j.id], ARRAY[j.attempt]) FROM autopilot.jobs AS j
        WHERE j.attempted_by = 'tap-node'
    ),
    1::bigint,
    'complete_many() completes a job'
);
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, date_trunc('hour', now(), 'UTC'))$$,
    '... and its hour is queued, once'
);

-- ---------------------------------------------------------------------------
-- job_runs: the runner's failed runs (side runner, status failed), by finished_at (worker metrics)
DELETE FROM autopilot.performance_metrics_pending;
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES
('backup-hourly', 'runner', 'runner', 'failed', '2024-05-01 10:30+00', '2024-05-01 10:30:20+00'),
('adhoc_export', 'runner', 'runner', 'failed', '2024-05-01 11:59+00', '2024-05-01 12:00:01+00'),
('backup-hourly', 'runner', 'runner', 'succeeded', '2024-05-01 13:00+00', '2024-05-01 13:00:05+00'),
('old-job-cleanup', 'database', 'pg_cron', 'failed', '2024-05-01 14:00+00', '2024-05-01 14:00:01+00'),
('backup-hourly', 'runner', 'runner', 'running', '2024-05-01 15:00+00', NULL);
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 10:00+00'::timestamptz), ('worker', '2024-05-01 12:00+00')$$,
    'runs inserted: the hours of the runner''s failed runs (not succeeded, running, or a database job''s)'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.job_runs SET message = 'm', details = '{"d": 1}', rows_affected = 3;
SELECT is_empty(
    $$SELECT * FROM pg_temp.queued()$$,
    'runs updated outside their job, side, status and times: nothing'
);

UPDATE autopilot.job_runs SET status = 'failed', finished_at = '2024-05-01 15:10+00'
WHERE status = 'running';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 15:00+00'::timestamptz)$$,
    'a runner run failing: its hour'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.job_runs SET started_at = started_at - interval '1 minute', finished_at = '2024-05-01 18:00+00'
WHERE job_name = 'adhoc_export';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 12:00+00'::timestamptz), ('worker', '2024-05-01 18:00+00')$$,
    'a failed run moved to another hour: the hour it left and the one it joined'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE
    autopilot.job_runs
SET job_name = 'backup-daily'
WHERE
    job_name = 'backup-hourly' AND status = 'failed'
    AND finished_at < '2024-05-01 11:00+00';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 10:00+00'::timestamptz)$$,
    'a failed run renamed to another job (so perhaps another worker): its hour, once'
);

DELETE FROM autopilot.performance_metrics_pending;
UPDATE autopilot.job_runs SET status = 'abandoned'
WHERE job_name = 'adhoc_export';
UPDATE autopilot.job_runs SET status = 'succeeded'
WHERE job_name = 'old-job-cleanup';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('worker'::text, '2024-05-01 18:00+00'::timestamptz)$$,
    'a runner run leaving failed: its hour; a database job''s run changing: nothing'
);

DELETE FROM autopilot.performance_metrics_pending;
DELETE FROM autopilot.job_runs;
SELECT is_empty($$SELECT * FROM pg_temp.queued()$$, 'runs deleted: nothing');

-- ---------------------------------------------------------------------------
-- one row per transaction, kind and hour, however many statements and tables
INSERT INTO autopilot.jobs (queue, worker, state, attempt, attempted_at, completed_at)
SELECT
    'tap' AS queue,
    'backup' AS worker,
    'completed' AS state,
    1 AS attempt,
    '2024-05-02 08:00+00' AS attempted_at,
    '2024-05-02 08:00+00'::timestamptz + g * interval '1 minute' AS completed_at
FROM generate_series(1, 50) AS g;
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at)
VALUES ('backup-hourly', 'runner', 'runner', 'failed', '2024-05-02 08:10+00', '2024-05-02 08:11+00');
INSERT INTO autopilot.tasks (title, status, agent_id, finished_at)
VALUES ('same hour', 'succeeded', (
    SELECT id FROM autopilot.agents
    WHERE name = 'one'
), '2024-05-02 08:30+00');
UPDATE autopilot.jobs SET completed_at = completed_at + interval '1 second'
WHERE completed_at >= '2024-05-02' AND completed_at < '2024-05-03';
SELECT results_eq(
    $$SELECT * FROM pg_temp.queued()$$,
    $$VALUES ('agent'::text, '2024-05-02 08:00+00'::timestamptz), ('worker', '2024-05-02 08:00+00')$$,
    '50 jobs, a run and a task in one hour, in four statements: one row per kind'
);
SELECT is(
    (SELECT count(DISTINCT changed_xid) FROM autopilot.performance_metrics_pending),
    1::bigint,
    '... keyed by the writing transaction'
);

-- ---------------------------------------------------------------------------
-- on any other table it refuses, rather than guess
CREATE TEMPORARY TABLE tap_other (id integer) ON COMMIT DROP;
CREATE TRIGGER tap_other_trg AFTER INSERT ON tap_other
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_metrics_pending();
SELECT throws_ok(
    $$INSERT INTO tap_other VALUES (1)$$,
    '0A000', NULL, 'attached to another table, it raises feature_not_supported'
);

-- the triggers run as the writer: a role that may write the tables and queue hours needs nothing
-- else (README: GRANT INSERT ON autopilot.performance_metrics_pending)
SELECT is(
    has_function_privilege('public', 'autopilot._mark_metrics_pending()', 'EXECUTE'),
    false,
    'PUBLIC cannot call it directly'
);
SELECT isnt(
    obj_description('autopilot._mark_metrics_pending()'::regprocedure, 'pg_proc'),
    NULL,
    'it has a comment'
);
SELECT is(
    (
        SELECT count(*) FROM pg_trigger AS t
        WHERE
            t.tgfoid = 'autopilot._mark_metrics_pending()'::regprocedure
            AND obj_description(t.oid, 'pg_trigger') IS NOT NULL
    ),
    6::bigint,
    'each of its triggers has a comment'
);

SELECT * FROM finish();
ROLLBACK;
