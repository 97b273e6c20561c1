-- autopilot.plan_cron_sync(): what must change in cron.job, computed from a
-- jsonb copy of cron.job. Changes nothing.
BEGIN;
SELECT plan(23);

-- a catalog job whose function comes in a later version (every shipped job's is installed)
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
VALUES ('tap-future', 'database', 'function', '0 4 * * *', 'autopilot.tap_future_job', 'arrives later');

SELECT has_function(
    'autopilot', 'plan_cron_sync', ARRAY['jsonb', 'text', 'text'],
    'autopilot.plan_cron_sync(jsonb, text, text) exists'
);
SELECT volatility_is(
    'autopilot', 'plan_cron_sync', ARRAY['jsonb', 'text', 'text'], 'stable', 'plan_cron_sync is stable'
);

-- cron.job as it is when in sync with the catalog; tap_desired is a copy that
-- the tests change, tap_in_sync puts it back
CREATE TEMPORARY VIEW tap_in_sync AS
SELECT
    row_number() OVER (ORDER BY d.name) + 1000 AS jobid,
    d.cron_jobname AS jobname,
    d.schedule,
    d.cron_command AS command,
    current_database()::text AS database,
    current_user::text AS username,
    d.active
FROM autopilot.job_definitions AS d
WHERE d.schedule IS NOT NULL;

CREATE TEMPORARY TABLE tap_desired ON COMMIT DROP AS
SELECT * FROM tap_in_sync;

CREATE FUNCTION pg_temp.tap_current(p_extra jsonb DEFAULT '[]')
RETURNS jsonb
LANGUAGE sql
AS $$ SELECT coalesce(jsonb_agg(to_jsonb(t)), '[]') || p_extra FROM tap_desired AS t $$;

SELECT ok((SELECT count(*) FROM tap_desired) > 0, 'the catalog has scheduled jobs');
SELECT ok(
    (SELECT bool_and(starts_with(jobname, 'autopilot:' || current_database() || ':')) FROM tap_desired),
    'the jobs are named autopilot:<database>:<job>'
);

-- nothing scheduled yet: schedule everything
SELECT set_eq(
    $$SELECT action, jobid, jobname, schedule, command, active FROM autopilot.plan_cron_sync('[]')$$,
    $$SELECT 'schedule'::text, NULL::bigint, jobname, schedule, command, active FROM tap_desired$$,
    'from an empty cron.job: one schedule action per scheduled catalog job, with its command and state'
);
SELECT set_eq(
    $$SELECT action, jobname FROM autopilot.plan_cron_sync(NULL)$$,
    $$SELECT 'schedule'::text, jobname FROM tap_desired$$,
    'NULL reads as an empty cron.job'
);
SELECT is_empty(
    $$SELECT FROM autopilot.plan_cron_sync('[]') AS p
      INNER JOIN autopilot.job_catalog AS c ON p.jobname = autopilot._cron_jobname(c.name)
      WHERE c.schedule IS NULL$$,
    'a runner job that runs only at startup is never scheduled'
);
SELECT results_eq(
    $$SELECT jobname FROM autopilot.plan_cron_sync('[]')$$,
    $$SELECT jobname FROM tap_desired ORDER BY jobname$$,
    'the plan is ordered by action, then job name'
);

-- in sync: nothing to do
SELECT is_empty(
    $$SELECT * FROM autopilot.plan_cron_sync(pg_temp.tap_current())$$,
    'when cron.job matches the catalog, the plan is empty'
);

-- alter: schedule, command or active differs
UPDATE tap_desired SET schedule = '1 1 * * *'
WHERE jobname = autopilot._cron_jobname('old-job-cleanup');
UPDATE tap_desired SET command = 'SELECT 1'
WHERE jobname = autopilot._cron_jobname('backup-hourly');
UPDATE tap_desired SET active = NOT active
WHERE jobname = autopilot._cron_jobname('tap-future');
SELECT results_eq(
    $$SELECT action, jobid, jobname, schedule, command, active
      FROM autopilot.plan_cron_sync(pg_temp.tap_current())$$,
    $$SELECT 'alter'::text, t.jobid, d.cron_jobname, d.schedule, d.cron_command,
             d.active
      FROM autopilot.job_definitions AS d
      INNER JOIN tap_desired AS t ON d.cron_jobname = t.jobname
      WHERE d.name IN ('backup-hourly', 'old-job-cleanup', 'tap-future')
      ORDER BY d.cron_jobname$$,
    'a differing schedule, command or active flag is altered back to the catalog, by jobid'
);
SELECT is(
    (
        SELECT p.active FROM autopilot.plan_cron_sync(pg_temp.tap_current()) AS p
        WHERE p.jobname = autopilot._cron_jobname('tap-future')
    ),
    false,
    'a job whose function is not in this version is planned inactive'
);
DELETE FROM tap_desired;
INSERT INTO tap_desired
SELECT * FROM tap_in_sync;

-- an override changes the desired state
INSERT INTO autopilot.job_overrides (job_name, schedule, enabled) VALUES ('backup-daily', '15 2 * * *', false);
SELECT results_eq(
    $$SELECT action, jobname, schedule, active FROM autopilot.plan_cron_sync(pg_temp.tap_current())$$,
    $$VALUES ('alter'::text, autopilot._cron_jobname('backup-daily'), '15 2 * * *'::text, false)$$,
    'an override (schedule, disabled) is planned as an alter'
);
DELETE FROM autopilot.job_overrides;

-- unschedule: an autopilot job of this database the catalog no longer has
SELECT results_eq(
    $$SELECT action, jobid, jobname FROM autopilot.plan_cron_sync(pg_temp.tap_current(
        jsonb_build_array(jsonb_build_object(
            'jobid', 7, 'jobname', 'autopilot:retired-job', 'schedule', '0 0 * * *',
            'command', 'SELECT 1', 'database', current_database(), 'username', current_user,
            'active', true))))$$,
    $$VALUES ('unschedule'::text, 7::bigint, 'autopilot:retired-job'::text)$$,
    'an autopilot job that is not in the catalog is unscheduled'
);

-- other jobs are never touched
SELECT is_empty(
    $$SELECT * FROM autopilot.plan_cron_sync(pg_temp.tap_current(
        jsonb_build_array(
            jsonb_build_object(
                'jobid', 8, 'jobname', 'nightly-report', 'schedule', '0 0 * * *',
                'command', 'SELECT 1', 'database', current_database(), 'username', current_user,
                'active', true),
            jsonb_build_object(
                'jobid', 9, 'jobname', NULL, 'schedule', '0 0 * * *',
                'command', 'SELECT 2', 'database', current_database(), 'username', current_user,
                'active', true),
            jsonb_build_object(
                'jobid', 10, 'jobname', 'autopilot-like', 'schedule', '0 0 * * *',
                'command', 'SELECT 3', 'database', current_database(), 'username', current_user,
                'active', true))))$$,
    'jobs not named autopilot:* (and unnamed jobs) are never planned'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.plan_cron_sync(pg_temp.tap_current(
        jsonb_build_array(jsonb_build_object(
            'jobid', 11, 'jobname', 'autopilot:retired-job', 'schedule', '0 0 * * *',
            'command', 'SELECT 1', 'database', 'another_db', 'username', current_user,
            'active', true))))$$,
    'an autopilot job of another database is not unscheduled from here'
);

-- conflict: the name belongs to this role's job in another database
SELECT results_eq(
    $$SELECT action, jobid, jobname FROM autopilot.plan_cron_sync(
        (SELECT jsonb_agg(CASE WHEN t.jobname = autopilot._cron_jobname('backup-hourly')
                               THEN jsonb_set(to_jsonb(t), '{database}', '"another_db"')
                               ELSE to_jsonb(t) END)
         FROM tap_desired AS t))$$,
    $$SELECT 'conflict'::text, t.jobid, t.jobname FROM tap_desired AS t
      WHERE t.jobname = autopilot._cron_jobname('backup-hourly')$$,
    'a job of the same role in another database is a conflict, not a schedule'
);
SELECT results_eq(
    $$SELECT action, jobname FROM autopilot.plan_cron_sync(
        (SELECT jsonb_agg(CASE WHEN t.jobname = autopilot._cron_jobname('backup-hourly')
                               THEN to_jsonb(t) || '{"database": "another_db", "username": "someone_else"}'
                               ELSE to_jsonb(t) END)
         FROM tap_desired AS t))$$,
    $$VALUES ('schedule'::text, autopilot._cron_jobname('backup-hourly'))$$,
    'a job of another role in another database does not conflict: it is scheduled here'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.plan_cron_sync(pg_temp.tap_current(
        (SELECT jsonb_agg(to_jsonb(t) || '{"database": "another_db", "jobid": 99}')
         FROM tap_desired AS t WHERE t.jobname = autopilot._cron_jobname('backup-hourly'))))$$,
    'when the job exists here too, the copy in another database is no conflict'
);

-- the p_database and p_username parameters: the same role in another database gets jobs of its own
SELECT set_eq(
    $$SELECT action, jobname FROM autopilot.plan_cron_sync(pg_temp.tap_current(), 'another_db')$$,
    $$SELECT 'schedule'::text, autopilot._cron_jobname(d.name, 'another_db')
      FROM autopilot.job_definitions AS d WHERE d.schedule IS NOT NULL$$,
    'planned for another database (same role): every job is scheduled under that database''s names'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.plan_cron_sync(
        pg_temp.tap_current() || (SELECT jsonb_agg(to_jsonb(t) || jsonb_build_object(
            'jobname', replace(t.jobname, current_database(), 'another_db'), 'database', 'another_db'))
          FROM tap_desired AS t))
      WHERE action <> 'alter' OR jobname NOT LIKE 'autopilot:' || current_database() || ':%'$$,
    'with both databases scheduled, each one''s plan leaves the other''s jobs alone'
);

-- a job under its pre-0.4.0 name: renamed in place, with the desired state
SELECT results_eq(
    $$SELECT action, jobid, jobname, schedule FROM autopilot.plan_cron_sync(
        (SELECT jsonb_agg(CASE WHEN t.jobname = autopilot._cron_jobname('vector-stats')
                               THEN to_jsonb(t) || '{"jobname": "autopilot:vector-stats", "schedule": "1 1 1 1 1"}'
                               ELSE to_jsonb(t) END)
         FROM tap_desired AS t))$$,
    $$SELECT 'rename'::text, t.jobid, t.jobname, t.schedule FROM tap_desired AS t
      WHERE t.jobname = autopilot._cron_jobname('vector-stats')$$,
    'a job named autopilot:<job> of this database is renamed, keeping its jobid, nothing else planned'
);
SELECT results_eq(
    $$SELECT action, jobid, jobname FROM autopilot.plan_cron_sync(pg_temp.tap_current(
        jsonb_build_array(jsonb_build_object(
            'jobid', 12, 'jobname', 'autopilot:vector-stats', 'schedule', '0 0 * * *',
            'command', 'SELECT 1', 'database', current_database(), 'username', current_user,
            'active', true))))$$,
    $$VALUES ('unschedule'::text, 12::bigint, 'autopilot:vector-stats'::text)$$,
    'an old name whose new name exists already is a leftover: unscheduled'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.plan_cron_sync(pg_temp.tap_current(
        jsonb_build_array(jsonb_build_object(
            'jobid', 13, 'jobname', 'autopilot:vector-stats', 'schedule', '0 0 * * *',
            'command', 'SELECT 1', 'database', 'another_db', 'username', current_user,
            'active', true))))$$,
    'an old name of another database is left to that database'
);

SELECT * FROM finish();
ROLLBACK;
