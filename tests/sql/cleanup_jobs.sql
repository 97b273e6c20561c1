-- old-job-cleanup through run_job: finished runner jobs past their retention,
-- then ledger runs past job_runs.retention, in batches.
BEGIN;
SELECT plan(14);

DELETE FROM autopilot.jobs;
-- pg_cron runs the active catalog jobs in this database meanwhile (task-assignment every 2 minutes):
-- their ledger rows wait until this test is over
LOCK TABLE autopilot.job_runs IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM autopilot.job_runs;
SELECT lives_ok(
    $$SELECT autopilot.set_setting('jobs.completed_retention', '7 days'),
             autopilot.set_setting('jobs.discarded_retention', '30 days'),
             autopilot.set_setting('job_runs.retention', '90 days'),
             autopilot.set_setting('cleanup.batch_size', '2')$$,
    'fixture: retentions 7 days (completed, cancelled), 30 days (discarded), 90 days (ledger); batches of 2'
);

CREATE TEMPORARY TABLE tap_jobs (label text PRIMARY KEY, id bigint, kept boolean) ON COMMIT DROP;

WITH fixture (label, state, age, kept) AS (
    VALUES
    ('completed old 1', 'completed', interval '8 days', false),
    ('completed old 2', 'completed', interval '9 days', false),
    ('completed old 3', 'completed', interval '10 days', false),
    ('completed fresh', 'completed', interval '1 day', true),
    ('completed old 4', 'completed', interval '400 days', false),
    ('cancelled old', 'cancelled', interval '8 days', false),
    ('cancelled fresh', 'cancelled', interval '2 days', true),
    ('discarded mid', 'discarded', interval '8 days', true),
    ('discarded old', 'discarded', interval '31 days', false),
    ('available old', 'available', interval '100 days', true),
    ('scheduled old', 'scheduled', interval '100 days', true),
    ('executing old', 'executing', interval '100 days', true),
    ('retryable old', 'retryable', interval '100 days', true),
    ('completed old 5', 'completed', interval '8 days', false)
),

inserted AS (
    INSERT INTO autopilot.jobs (
        worker, state, args, inserted_at, scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at
    )
    SELECT
        'tap_worker' AS worker,
        f.state,
        jsonb_build_object('label', f.label) AS args,
        now() - f.age - interval '1 hour' AS inserted_at,
        now() - f.age - interval '1 hour' AS scheduled_at,
        CASE WHEN f.state <> 'available' THEN now() - f.age END AS attempted_at,
        CASE WHEN f.state = 'completed' THEN now() - f.age END AS completed_at,
        CASE WHEN f.state = 'cancelled' THEN now() - f.age END AS cancelled_at,
        CASE WHEN f.state = 'discarded' THEN now() - f.age END AS discarded_at
    FROM fixture AS f
    RETURNING id, args ->> 'label' AS label
)

INSERT INTO tap_jobs (label, id, kept)
SELECT
    i.label,
    i.id,
    f.kept
FROM inserted AS i INNER JOIN fixture AS f ON i.label = f.label;

-- the ledger: a run left 'running' by a crashed session of a job that never
-- ran again comes first in id order; old finished runs come after it
CREATE TEMPORARY TABLE tap_runs (label text PRIMARY KEY, id bigint, kept boolean) ON COMMIT DROP;

WITH fixture (label, status, age, kept) AS (
    VALUES
    ('running stale', 'running', interval '200 days', true),
    ('succeeded old', 'succeeded', interval '100 days', false),
    ('failed old', 'failed', interval '95 days', false),
    ('skipped old', 'skipped', interval '91 days', false),
    ('abandoned old', 'abandoned', interval '120 days', false),
    ('succeeded fresh', 'succeeded', interval '1 day', true),
    ('long run, finished recently', 'succeeded', interval '89 days', true)
),

inserted AS (
    INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, message)
    SELECT
        'backup-daily' AS job_name,
        'runner' AS side,
        'runner' AS trigger,
        f.status,
        CASE WHEN f.label LIKE 'long run%' THEN now() - interval '200 days' ELSE now() - f.age END AS started_at,
        CASE WHEN f.status <> 'running' THEN now() - f.age END AS finished_at,
        f.label AS message
    FROM fixture AS f
    RETURNING id, message
)

INSERT INTO tap_runs (label, id, kept)
SELECT
    i.message,
    i.id,
    f.kept
FROM inserted AS i INNER JOIN fixture AS f ON i.message = f.label;

SELECT is((SELECT count(*)::integer FROM tap_jobs), 14, 'fixture: 14 runner jobs');
SELECT is((SELECT count(*)::integer FROM tap_runs), 7, 'fixture: 7 ledger runs');

CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('old-job-cleanup');

SELECT is((SELECT status FROM tap_run), 'succeeded', 'old-job-cleanup succeeds');

SELECT set_eq(
    $$SELECT id FROM autopilot.jobs$$,
    $$SELECT id FROM tap_jobs WHERE kept$$,
    'exactly the runner jobs past their retention are deleted'
);
SELECT set_eq(
    $$SELECT args ->> 'label' FROM autopilot.jobs$$,
    ARRAY[
        'completed fresh', 'cancelled fresh', 'discarded mid', 'available old', 'scheduled old',
        'executing old', 'retryable old'
    ],
    'kept: fresh completed and cancelled jobs, discarded ones within their own retention, unfinished jobs'
);
SELECT set_eq(
    $$SELECT r.id FROM autopilot.job_runs AS r WHERE r.job_name = 'backup-daily'$$,
    $$SELECT id FROM tap_runs WHERE kept$$,
    'exactly the ledger runs that finished before job_runs.retention are deleted'
);
SELECT is(
    (SELECT rows_affected FROM tap_run),
    (
        SELECT count(*) FROM tap_jobs
        WHERE NOT kept) + (
        SELECT count(*) FROM tap_runs
        WHERE NOT kept
    ),
    'rows_affected counts every deleted job and run'
);
SELECT cmp_ok(
    (SELECT (details ->> 'batches')::integer FROM tap_run), '>=', 6,
    'with a batch size of 2, the cleanup took many batches'
);
SELECT is(
    (
        SELECT r.status FROM autopilot.job_runs AS r
        WHERE r.id = (SELECT t.id FROM tap_run AS t)
    ),
    'succeeded',
    'the cleanup''s own run stays in the ledger'
);

-- nothing left to do
SELECT results_eq(
    $$SELECT status, rows_affected FROM autopilot.run_job('old-job-cleanup')$$,
    $$VALUES ('succeeded'::text, 0::bigint)$$,
    'a second run deletes nothing'
);

-- retention 0: every finished job goes, however fresh
SELECT lives_ok(
    $$SELECT autopilot.set_setting('jobs.completed_retention', '0'),
             autopilot.set_setting('jobs.discarded_retention', '0'),
             autopilot.set_setting('cleanup.batch_size', '5000')$$,
    'fixture: retention 0, default batch size'
);
SELECT is(
    (SELECT rows_affected FROM autopilot.run_job('old-job-cleanup')), 3::bigint,
    'with retention 0 the fresh completed, cancelled and discarded jobs are deleted'
);
SELECT set_eq(
    $$SELECT state FROM autopilot.jobs$$,
    ARRAY['available', 'scheduled', 'executing', 'retryable'],
    'unfinished jobs are never deleted'
);

SELECT * FROM finish();
ROLLBACK;
