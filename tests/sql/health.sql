-- autopilot.health and autopilot._health(p_cron): each check fires on a constructed problem and
-- stays quiet otherwise. pg_cron's side is given as a document (as _health_cron_jobs returns it),
-- built from the catalog so that it starts in sync.
BEGIN;
SELECT plan(22);

SELECT has_view('autopilot', 'health', 'autopilot.health exists');
SELECT columns_are(
    'autopilot', 'health', ARRAY['severity', 'check_name', 'subject', 'message', 'since'],
    'autopilot.health has exactly its interface''s columns'
);

-- the database's name as text of the default collation (a name's is "C")
SELECT set_config('tap.database', current_database(), false);
DELETE FROM autopilot.job_runs;
DELETE FROM autopilot.jobs;
DELETE FROM autopilot.backup_metadata;

CREATE TEMPORARY TABLE tap_cron AS
SELECT
    row_number() OVER (ORDER BY d.name) AS jobid,
    d.name,
    d.cron_jobname AS jobname,
    d.schedule,
    d.cron_command AS command,
    d.active,
    NULL::text AS last_status,
    NULL::timestamptz AS last_start,
    NULL::timestamptz AS last_success
FROM autopilot.job_definitions AS d
WHERE d.schedule IS NOT NULL;

CREATE TEMPORARY VIEW tap_health AS
SELECT h.*
FROM autopilot._health(jsonb_build_object('database', current_setting('tap.database'), 'jobs', (
    SELECT
        jsonb_agg(jsonb_build_object(
            'jobid', c.jobid, 'jobname', c.jobname, 'schedule', c.schedule, 'command', c.command,
            'active', c.active, 'last_status', c.last_status, 'last_start', c.last_start,
            'last_success', c.last_success
        ))
    FROM tap_cron AS c
))) AS h;

SELECT is_empty('SELECT * FROM tap_health', 'a fresh install in step with pg_cron has no problem');

-- jobs: table-statistics succeeded 3 days ago (daily schedule: overdue); pattern-learning failed
INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, message)
VALUES
('table-statistics', 'database', 'pg_cron', 'succeeded', now() - interval '3 days', now() - interval '3 days', 'ok'),
(
    'pattern-learning',
    'database',
    'pg_cron',
    'succeeded',
    now() - interval '10 minutes',
    now() - interval '10 minutes',
    'ok'
),
(
    'pattern-learning',
    'database',
    'pg_cron',
    'failed',
    now() - interval '5 minutes',
    now() - interval '5 minutes',
    'boom'
);
SELECT results_eq(
    $$SELECT severity, subject FROM tap_health WHERE check_name = 'job_overdue'$$,
    $$VALUES ('critical', 'table-statistics')$$,
    'job_overdue: the job whose last success is older than twice its interval, and no other'
);
SELECT ok(
    (
        SELECT message ~ 'autopilot run table-statistics' FROM tap_health
        WHERE check_name = 'job_overdue'
    ),
    'job_overdue says what to do'
);
SELECT results_eq(
    $$SELECT severity, subject FROM tap_health WHERE check_name = 'job_failed'$$,
    $$VALUES ('warning', 'pattern-learning')$$,
    'job_failed: the job whose last run failed'
);
UPDATE autopilot.job_runs SET started_at = now() - interval '30 minutes', finished_at = now() - interval '30 minutes'
WHERE job_name = 'table-statistics';
SELECT is_empty($$SELECT * FROM tap_health WHERE check_name = 'job_overdue'$$, 'a recent success is not overdue');
SELECT lives_ok($$SELECT autopilot.set_job_enabled('pattern-learning', false)$$, 'disable pattern-learning');
UPDATE tap_cron SET active = false
WHERE name = 'pattern-learning';
SELECT is_empty($$SELECT * FROM tap_health WHERE subject = 'pattern-learning'$$, 'a disabled job raises nothing');

-- pg_cron's side
UPDATE tap_cron SET active = false
WHERE name = 'vector-stats';
UPDATE tap_cron SET schedule = '1 2 * * *'
WHERE name = 'cache-cleanup';
DELETE FROM tap_cron
WHERE name = 'metrics-refresh';
SELECT results_eq(
    $$SELECT check_name, subject, severity FROM tap_health
      WHERE check_name IN ('cron_inactive', 'cron_missing', 'cron_out_of_sync') ORDER BY 1$$,
    $$VALUES ('cron_inactive', 'vector-stats', 'critical'), ('cron_missing', 'metrics-refresh', 'critical'),
             ('cron_out_of_sync', 'cache-cleanup', 'warning')$$,
    'cron_inactive, cron_missing, cron_out_of_sync fire for their jobs only'
);
-- what autopilot sync would also change: a job under its pre-0.4.0 name, a job the catalog no
-- longer has, a disabled job pg_cron still runs (the same plan as autopilot.plan_cron_sync's)
UPDATE tap_cron SET active = true, schedule = '1 2 * * *', jobname = 'autopilot:' || name
WHERE name = 'vector-stats';
INSERT INTO tap_cron (jobid, name, jobname, schedule, command, active)
VALUES (1000, NULL, 'autopilot:' || current_setting('tap.database') || ':retired-job', '0 0 * * *', 'SELECT 1', true);
SELECT lives_ok($$SELECT autopilot.set_job_enabled('table-statistics', false)$$, 'disable table-statistics');
SELECT results_eq(
    $$SELECT check_name, subject, severity, message FROM tap_health
      WHERE check_name IN ('cron_inactive', 'cron_missing', 'cron_out_of_sync') ORDER BY 2$$,
    $$VALUES
        ('cron_out_of_sync', 'autopilot:' || current_setting('tap.database') || ':retired-job', 'warning',
         format('pg_cron job autopilot:%s:retired-job (#1000) is not a job of the catalog (any more); '
                || 'run autopilot sync', current_setting('tap.database'))),
        ('cron_out_of_sync', 'cache-cleanup', 'warning',
         format('pg_cron job autopilot:%s:cache-cleanup (#%s) runs on ''1 2 * * *'', the catalog says '
                || '''0 3 * * *''; run autopilot sync', current_setting('tap.database'),
                (SELECT c.jobid FROM tap_cron AS c WHERE c.name = 'cache-cleanup'))),
        ('cron_missing', 'metrics-refresh', 'critical',
         format('pg_cron has no job autopilot:%s:metrics-refresh, so metrics-refresh never runs; '
                || 'run autopilot sync', current_setting('tap.database'))),
        ('cron_out_of_sync', 'table-statistics', 'warning',
         format('pg_cron job autopilot:%s:table-statistics (#%s) is active, but job table-statistics is '
                || 'disabled or cannot run here; run autopilot sync', current_setting('tap.database'),
                (SELECT c.jobid FROM tap_cron AS c WHERE c.name = 'table-statistics'))),
        ('cron_out_of_sync', 'vector-stats', 'warning',
         format('pg_cron job autopilot:vector-stats (#%s) has its name from before 0.4.0 (sync renames it '
                || 'autopilot:%s:vector-stats); run autopilot sync',
                (SELECT c.jobid FROM tap_cron AS c WHERE c.name = 'vector-stats'), current_setting('tap.database')))$$,
    'the cron checks are what autopilot sync would change: rename, unschedule, a disabled job still active'
);
SELECT set_eq(
    $$SELECT coalesce(d.name, p.jobname)
      FROM autopilot.plan_cron_sync((
          SELECT jsonb_agg(to_jsonb(c) || jsonb_build_object('database', current_setting('tap.database'))) FROM tap_cron AS c
      )) AS p
      LEFT JOIN autopilot.job_definitions AS d ON d.cron_jobname = p.jobname AND p.action <> 'unschedule'$$,
    $$SELECT subject FROM tap_health WHERE check_name IN ('cron_inactive', 'cron_missing', 'cron_out_of_sync')$$,
    'autopilot.health reports a pg_cron problem for every change autopilot sync would make, and only those'
);
SELECT lives_ok($$SELECT autopilot.set_job_enabled('table-statistics', true)$$, 'enable table-statistics');
DELETE FROM tap_cron
WHERE jobid = 1000;
UPDATE tap_cron AS c SET jobname = d.cron_jobname, schedule = d.schedule
FROM autopilot.job_definitions AS d
WHERE c.name = 'vector-stats' AND d.name = c.name;
SELECT is_empty(
    $$SELECT * FROM autopilot._health(jsonb_build_object('database', 'elsewhere')) WHERE check_name LIKE 'cron%'$$,
    'pg_cron in another database: no cron checks without its jobs'
);
-- a job pg_cron never ran while autopilot's other jobs ran days ago
UPDATE autopilot.job_runs SET started_at = now() - interval '40 days', finished_at = now() - interval '40 days'
WHERE job_name = 'table-statistics';
SELECT ok(
    EXISTS (
        SELECT FROM tap_health
        WHERE check_name = 'cron_never_run' AND subject = 'cache-cleanup'
    )
    AND NOT EXISTS (
        SELECT FROM tap_health
        WHERE check_name = 'cron_never_run' AND subject = 'table-statistics'
    ),
    'cron_never_run: a pg_cron job with no run while autopilot has run for longer than twice its interval'
);
DELETE FROM autopilot.job_runs;

-- backups (backup-hourly is enabled for this test)
SELECT lives_ok($$SELECT autopilot.set_job_enabled('backup-hourly', true)$$, 'enable backup-hourly');
UPDATE tap_cron SET active = true
WHERE name = 'backup-hourly';
INSERT INTO autopilot.backup_metadata (kind, database_name, file_path, status, started_at, finished_at)
VALUES ('hourly', current_database(), '/b/1.dump', 'verified', now() - interval '5 hours', now() - interval '5 hours');
SELECT results_eq(
    $$SELECT severity, subject FROM tap_health WHERE check_name = 'backup_overdue'$$,
    $$VALUES ('critical', current_database()::text COLLATE "default")$$,
    'backup_overdue: the last verified backup is older than backups.overdue_after'
);
INSERT INTO autopilot.backup_metadata (kind, database_name, file_path, status, started_at, finished_at)
VALUES (
    'hourly', current_database(), '/b/2.dump', 'verified', now() - interval '10 minutes', now() - interval '9 minutes'
),
('hourly', current_database(), '/b/3.dump', 'missing', now() - interval '5 minutes', now() - interval '4 minutes');
SELECT results_eq(
    $$SELECT check_name FROM tap_health WHERE check_name LIKE 'backup%'$$,
    $$VALUES ('backup_missing')$$,
    'backup_missing: a newer backup whose file is gone; a recent verified one is not overdue'
);
DELETE FROM autopilot.backup_metadata
WHERE file_path = '/b/2.dump';
UPDATE
    autopilot.backup_metadata SET
    status = 'succeeded', finished_at = now() - interval '20 minutes',
    started_at = now() - interval '20 minutes'
WHERE file_path = '/b/3.dump';
SELECT results_eq(
    $$SELECT check_name FROM tap_health WHERE check_name LIKE 'backup%' ORDER BY 1$$,
    $$VALUES ('backup_overdue'), ('backup_unverified')$$,
    'backup_unverified: the latest backup was never verified'
);
DELETE FROM autopilot.backup_metadata;

-- the queue: a job waiting an hour with no runner; discards in the last day
INSERT INTO autopilot.jobs (worker, queue, scheduled_at) VALUES ('backup', 'backups', now() - interval '1 hour');
INSERT INTO autopilot.jobs (worker, queue, state, discarded_at)
VALUES ('code-ingest', 'default', 'discarded', now() - interval '1 hour'),
('code-ingest', 'default', 'discarded', now() - interval '3 days');
SELECT results_eq(
    $$SELECT check_name, subject, severity FROM tap_health WHERE check_name IN
      ('runner_absent', 'queue_stalled', 'jobs_discarded') ORDER BY 1$$,
    $$VALUES ('jobs_discarded', 'default', 'warning'), ('queue_stalled', 'backups', 'warning'),
             ('runner_absent', current_database()::text COLLATE "default", 'critical')$$,
    'runner_absent, queue_stalled and jobs_discarded fire on a waiting job and a discard of today'
);
UPDATE autopilot.jobs SET scheduled_at = now()
WHERE worker = 'backup';
SELECT is_empty(
    $$SELECT * FROM tap_health WHERE check_name IN ('runner_absent', 'queue_stalled')$$,
    'a job that has just become available is neither stalled nor a missing runner'
);

SELECT * FROM finish();
ROLLBACK;
