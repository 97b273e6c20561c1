-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- autopilot.sync_schedules(): makes cron.job match the catalog for the
-- autopilot:* jobs of this database; idempotent; never touches other jobs.
BEGIN;
SELECT plan(23);

-- a catalog job whose function comes in a later version (every shipped job's is installed)
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
VALUES ('tap-future', 'database', 'function', '0 4 * * *', 'autopilot.tap_future_job', 'arrives later');

SELECT has_function('autopilot', 'sync_schedules', ARRAY[]::text[], 'autopilot.sync_schedules() exists');

-- start from a cron.job without autopilot jobs (whatever the install left)
SELECT lives_ok(
    $$SELECT cron.unschedule(j.jobid) FROM cron.job AS j
      WHERE j.jobname LIKE 'autopilot:%' AND j.database = current_database()$$,
    'fixture: the autopilot jobs of this database are unscheduled'
);

-- a job that is not autopilot's, which no sync may touch
SELECT isnt(cron.schedule('tap-nightly-report', '17 3 * * *', 'SELECT 42'), NULL, 'fixture: a job of the DBA''s');
CREATE TEMPORARY TABLE tap_foreign ON COMMIT DROP AS
SELECT * FROM cron.job
WHERE jobname = 'tap-nightly-report';

CREATE TEMPORARY TABLE tap_first_sync ON COMMIT DROP AS
SELECT * FROM autopilot.sync_schedules();

SELECT set_eq(
    $$SELECT action, jobname, schedule, active FROM tap_first_sync$$,
    $$SELECT 'schedule'::text, d.cron_jobname, d.schedule, d.active
      FROM autopilot.job_definitions AS d WHERE d.schedule IS NOT NULL$$,
    'the first sync schedules every catalog job that has a schedule, and returns what it did'
);
SELECT set_eq(
    $$SELECT jobname, schedule, command, active, database, username
      FROM cron.job WHERE jobname LIKE 'autopilot:%'$$,
    $$SELECT d.cron_jobname, d.schedule, d.cron_command, d.active,
             current_database()::text, current_user::text
      FROM autopilot.job_definitions AS d WHERE d.schedule IS NOT NULL$$,
    'cron.job holds each job with its schedule, command, state, database and role'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.sync_schedules()$$,
    'a second sync changes nothing and returns no rows'
);
SELECT results_eq(
    $$SELECT * FROM cron.job WHERE jobname = 'tap-nightly-report'$$,
    $$SELECT * FROM tap_foreign$$,
    'the job that is not autopilot''s is untouched'
);

-- states
SELECT is(
    (
        SELECT active FROM cron.job
        WHERE jobname = autopilot._cron_jobname('tap-future')
    ),
    false,
    'a job whose function is not in this version is registered, inactive'
);
SELECT is_empty(
    $$SELECT j.jobname FROM cron.job AS j
      INNER JOIN autopilot.job_definitions AS d ON j.jobname = d.cron_jobname
      WHERE d.unavailable_reason IS NOT NULL AND j.active$$,
    'every job that cannot run here is inactive'
);
SELECT is(
    (
        SELECT active FROM cron.job
        WHERE jobname = autopilot._cron_jobname('old-job-cleanup')
    ),
    true,
    'an available, enabled job is active'
);
SELECT is(
    (
        SELECT command FROM cron.job
        WHERE jobname = autopilot._cron_jobname('vacuum-analyze')
    ),
    (
        SELECT target FROM autopilot.job_catalog
        WHERE name = 'vacuum-analyze'
    ),
    'a statement job runs its statement itself'
);
SELECT is(
    (
        SELECT command FROM cron.job
        WHERE jobname = autopilot._cron_jobname('backup-hourly')
    ),
    $$CALL autopilot.run_scheduled_job('backup-hourly')$$,
    'other jobs CALL run_scheduled_job'
);
SELECT is_empty(
    $$SELECT FROM cron.job WHERE jobname = autopilot._cron_jobname('rag-setup')$$,
    'a runner job that runs only at startup is not in cron.job'
);

-- drift in cron.job is repaired
SELECT lives_ok(
    $$SELECT cron.alter_job(
        (SELECT jobid FROM cron.job WHERE jobname = autopilot._cron_jobname('backup-daily')), schedule => '59 23 * * *'
    )$$,
    'fixture: backup-daily was rescheduled behind autopilot''s back'
);
SELECT results_eq(
    $$SELECT action, jobname, schedule FROM autopilot.sync_schedules()$$,
    $$VALUES ('alter'::text, autopilot._cron_jobname('backup-daily'), '0 1 * * *'::text)$$,
    'a sync alters it back to the catalog schedule'
);

-- a stale autopilot job is unscheduled, the foreign one still untouched
SELECT isnt(cron.schedule('autopilot:retired-job', '0 0 * * *', 'SELECT 1'), NULL, 'fixture: a retired autopilot job');
SELECT results_eq(
    $$SELECT action, jobname FROM autopilot.sync_schedules()$$,
    $$VALUES ('unschedule'::text, 'autopilot:retired-job'::text)$$,
    'a sync unschedules an autopilot job the catalog does not have'
);
SELECT results_eq(
    $$SELECT * FROM cron.job WHERE jobname = 'tap-nightly-report'$$,
    $$SELECT * FROM tap_foreign$$,
    'the job that is not autopilot''s is still untouched'
);

-- a job under its pre-0.4.0 name (autopilot:<job>) is renamed in place: same jobid, desired state
CREATE TEMPORARY TABLE tap_legacy ON COMMIT DROP AS
SELECT jobid FROM cron.job
WHERE jobname = autopilot._cron_jobname('vector-stats');
UPDATE cron.job SET jobname = 'autopilot:vector-stats', schedule = '1 1 1 1 1'
WHERE jobid = (SELECT jobid FROM tap_legacy);
SELECT results_eq(
    $$SELECT action, jobname, schedule FROM autopilot.sync_schedules()$$,
    $$VALUES ('rename'::text, autopilot._cron_jobname('vector-stats'), '0 4 * * 0'::text)$$,
    'a job named autopilot:<job> is renamed to autopilot:<database>:<job>, with its schedule put back'
);
SELECT results_eq(
    $$SELECT jobid, jobname::text COLLATE "C", schedule FROM cron.job WHERE jobid = (SELECT jobid FROM tap_legacy)$$,
    $$SELECT jobid, autopilot._cron_jobname('vector-stats') COLLATE "C", '0 4 * * 0'::text FROM tap_legacy$$,
    '...in place: the job keeps its jobid (and so its pg_cron history)'
);
SELECT is_empty($$SELECT * FROM autopilot.sync_schedules()$$, '...and the next sync has nothing to do');

-- a job of this role in another database holds the name: refuse
SELECT lives_ok(
    $$SELECT cron.alter_job(
        (SELECT jobid FROM cron.job WHERE jobname = autopilot._cron_jobname('backup-hourly')), database => 'template1'
    )$$,
    'fixture: autopilot:backup-hourly belongs to database template1'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.sync_schedules()$$,
    '42710', NULL,
    'a name taken by this role in another database raises duplicate_object'
);

SELECT * FROM finish();
ROLLBACK;
