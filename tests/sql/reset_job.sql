-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- autopilot.reset_job(): drops a job's overrides, back to the catalog.
BEGIN;
SELECT plan(8);

SELECT has_function('autopilot', 'reset_job', ARRAY['text'], 'autopilot.reset_job(text) exists');

DELETE FROM autopilot.job_overrides;
SELECT lives_ok($$SELECT * FROM autopilot.sync_schedules()$$, 'fixture: cron.job is in sync with the catalog');
SELECT lives_ok(
    $$SELECT autopilot.set_job_schedule('backup-hourly', '5 * * * *'),
             autopilot.set_job_enabled('backup-hourly', false)$$,
    'fixture: backup-hourly rescheduled and disabled'
);

SELECT is(autopilot.reset_job('backup-hourly'), '0 * * * *', 'reset_job returns the catalog schedule');
SELECT is_empty(
    $$SELECT FROM autopilot.job_overrides WHERE job_name = 'backup-hourly'$$,
    'the override is gone'
);
SELECT results_eq(
    $$SELECT schedule, active FROM cron.job WHERE jobname = autopilot._cron_jobname('backup-hourly')$$,
    $$VALUES ('0 * * * *'::text, true)$$,
    'pg_cron runs the job on its catalog schedule again, active'
);
SELECT is(autopilot.reset_job('rag-setup'), NULL, 'a startup-only runner job has no schedule to return');
SELECT throws_ok(
    $$SELECT autopilot.reset_job('no-such-job')$$,
    '42704', NULL, 'an unknown job raises undefined_object'
);

SELECT * FROM finish();
ROLLBACK;
