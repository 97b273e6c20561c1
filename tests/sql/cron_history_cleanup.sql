-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- cron-history-cleanup through run_job: pg_cron's cron.job_run_details rows
-- that ended before cron_history.retention are deleted, in runid order.
BEGIN;
SELECT plan(12);

SELECT is(
    (
        SELECT unavailable_reason FROM autopilot.job_definitions
        WHERE name = 'cron-history-cleanup'
    ),
    NULL,
    'cron-history-cleanup can run here: pg_cron is in this database'
);
SELECT is(
    (
        SELECT (requires_local_pg_cron, cron_elsewhere_worker)::text FROM autopilot.job_catalog
        WHERE name = 'cron-history-cleanup'
    ),
    '(f,cron_history_cleanup)',
    'cron-history-cleanup runs wherever pg_cron lives: the runner''s worker prunes a pg_cron elsewhere'
);

-- only the fixture rows below (the real history is restored by the ROLLBACK)
DELETE FROM cron.job_run_details;
SELECT lives_ok(
    $$SELECT autopilot.set_setting('cron_history.retention', '7 days'),
             autopilot.set_setting('cleanup.batch_size', '2')$$,
    'fixture: history older than 7 days goes; batches of 2'
);

-- a run of the statement job vacuum-analyze, which pg_cron ran itself: recorded, then pruned
INSERT INTO cron.job_run_details (
    jobid, job_pid, database, username, command, status, return_message, start_time, end_time
)
SELECT
    j.jobid,
    100 AS job_pid,
    current_database() AS database,
    current_user AS username,
    j.command,
    'succeeded' AS status,
    'VACUUM' AS return_message,
    now() - interval '11 days' AS start_time,
    now() - interval '11 days' + interval '2 seconds' AS end_time
FROM cron.job AS j
WHERE j.jobname = autopilot._cron_jobname('vacuum-analyze');

-- in runid order: a run still going started long ago comes first, so the walk
-- must not stop at the first row it keeps
INSERT INTO cron.job_run_details (
    jobid, job_pid, database, username, command, status, return_message, start_time, end_time
)
VALUES
(
    1, 101, current_database(), current_user, 'SELECT 1', 'running', 'old, still running',
    now() - interval '10 days', NULL
),
(
    1, 102, current_database(), current_user, 'SELECT 1', 'succeeded', 'old 1',
    now() - interval '10 days', now() - interval '10 days'
),
(
    1, 103, current_database(), current_user, 'SELECT 1', 'failed', 'old 2',
    now() - interval '9 days', now() - interval '9 days'
),
(
    2, 104, current_database(), current_user, 'SELECT 2', 'succeeded', 'old 3',
    now() - interval '8 days', now() - interval '8 days'
),
(
    2, 105, current_database(), current_user, 'SELECT 2', 'succeeded', 'old 4',
    now() - interval '8 days', now() - interval '8 days' + interval '1 minute'
),
(
    1, 106, current_database(), current_user, 'SELECT 1', 'succeeded', 'started old, ended recently',
    now() - interval '8 days', now() - interval '6 days'
),
(
    2, 107, current_database(), current_user, 'SELECT 2', 'failed', 'new 1',
    now() - interval '1 day', now() - interval '1 day'
),
(
    1, 108, current_database(), current_user, 'SELECT 1', 'succeeded', 'new 2',
    now() - interval '1 hour', now() - interval '1 hour'
),
(
    1, 109, current_database(), current_user, 'SELECT 1', 'running', 'new, running',
    now() - interval '1 minute', NULL
);

CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('cron-history-cleanup');

SELECT is((SELECT status FROM tap_run), 'succeeded', 'cron-history-cleanup succeeds');
SELECT set_eq(
    $$SELECT return_message FROM cron.job_run_details$$,
    ARRAY['old, still running', 'started old, ended recently', 'new 1', 'new 2', 'new, running'],
    'finished runs that ended before the retention are deleted; newer and running ones are kept'
);
SELECT is((SELECT rows_affected FROM tap_run), 5::bigint, 'rows_affected counts the 5 deleted rows');
SELECT results_eq(
    $$SELECT job_name, trigger, status, message, finished_at - started_at FROM autopilot.job_runs
      WHERE cron_runid IS NOT NULL$$,
    $$VALUES ('vacuum-analyze'::text, 'pg_cron'::text, 'succeeded'::text, 'pg_cron: VACUUM'::text,
              interval '2 seconds')$$,
    'the statement job''s run was recorded in the ledger before its pg_cron row was pruned'
);
SELECT is_empty(
    $$SELECT FROM autopilot.jobs WHERE worker = 'cron_history_cleanup'$$,
    'pg_cron in this database: the job prunes it itself, nothing is enqueued for the runner'
);
SELECT cmp_ok(
    (SELECT (details ->> 'batches')::integer FROM tap_run), '>=', 2, 'with a batch size of 2, several batches'
);
SELECT results_eq(
    $$SELECT status, rows_affected FROM autopilot.run_job('cron-history-cleanup')$$,
    $$VALUES ('succeeded'::text, 0::bigint)$$,
    'a second run deletes nothing'
);

-- the walk stops at the first young run: it does not scan the rest of the table
SELECT is(
    (SELECT (autopilot._cleanup_cron_history_batch('{}', 3)).done), true,
    'a batch that reaches a run started after the cutoff ends the walk'
);
SELECT is(
    (SELECT (autopilot._cleanup_cron_history_batch('{}', 1)).done), false,
    'a full batch of old runs does not'
);

SELECT * FROM finish();
ROLLBACK;
