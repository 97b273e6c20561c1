-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- autopilot.set_job_schedule(): a validated schedule override, applied to
-- pg_cron at once and kept across re-syncs.
BEGIN;
SELECT plan(17);

SELECT has_function(
    'autopilot', 'set_job_schedule', ARRAY['text', 'text'], 'autopilot.set_job_schedule(text, text) exists'
);

DELETE FROM autopilot.job_overrides;
SELECT lives_ok($$SELECT * FROM autopilot.sync_schedules()$$, 'fixture: cron.job is in sync with the catalog');

SELECT is(
    autopilot.set_job_schedule('old-job-cleanup', ' 15 4 * * 6 '), '15 4 * * 6',
    'set_job_schedule returns the schedule, trimmed'
);
SELECT results_eq(
    $$SELECT schedule, default_schedule, enabled FROM autopilot.job_definitions WHERE name = 'old-job-cleanup'$$,
    $$VALUES ('15 4 * * 6'::text, '0 0 * * 0'::text, true)$$,
    'the effective schedule changes; the catalog default and the enabled state do not'
);
SELECT results_eq(
    $$SELECT job_name, schedule, enabled FROM autopilot.job_overrides$$,
    $$VALUES ('old-job-cleanup'::text, '15 4 * * 6'::text, NULL::boolean)$$,
    'the override is stored in job_overrides'
);
SELECT is(
    (
        SELECT schedule FROM cron.job
        WHERE jobname = autopilot._cron_jobname('old-job-cleanup')
    ),
    '15 4 * * 6',
    'pg_cron runs the job on the new schedule at once'
);
SELECT is_empty($$SELECT * FROM autopilot.sync_schedules()$$, 'a re-sync changes nothing');
SELECT is(
    (
        SELECT schedule FROM cron.job
        WHERE jobname = autopilot._cron_jobname('old-job-cleanup')
    ),
    '15 4 * * 6',
    'the override survives the re-sync'
);

SELECT
    is(
        autopilot.set_job_schedule('old-job-cleanup', '45 4 * * 6'),
        '45 4 * * 6',
        'a second override replaces the first'
    );
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.job_overrides
        WHERE job_name = 'old-job-cleanup'
    ),
    1,
    'one override row per job'
);

-- an invalid schedule changes nothing
SELECT throws_ok(
    $$SELECT autopilot.set_job_schedule('old-job-cleanup', '61 * * * *')$$,
    '22023', NULL, 'an invalid cron expression raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_schedule('old-job-cleanup', NULL)$$,
    '22023', NULL, 'a NULL schedule raises invalid_parameter_value'
);
SELECT results_eq(
    $$SELECT o.schedule, j.schedule FROM autopilot.job_overrides AS o, cron.job AS j
      WHERE o.job_name = 'old-job-cleanup' AND j.jobname = autopilot._cron_jobname('old-job-cleanup')$$,
    $$VALUES ('45 4 * * 6'::text, '45 4 * * 6'::text)$$,
    'after the rejected calls, the override and pg_cron keep the last valid schedule'
);

-- a disabled job stays disabled when its schedule changes
SELECT is(autopilot.set_job_enabled('backup-daily', false), false, 'fixture: backup-daily disabled');
SELECT is(autopilot.set_job_schedule('backup-daily', '30 1 * * *'), '30 1 * * *', 'a disabled job gets a new schedule');
SELECT results_eq(
    $$SELECT j.schedule, j.active FROM cron.job AS j WHERE j.jobname = autopilot._cron_jobname('backup-daily')$$,
    $$VALUES ('30 1 * * *'::text, false)$$,
    '...and stays inactive in pg_cron'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_schedule('no-such-job', '0 0 * * *')$$,
    '42704', NULL, 'an unknown job raises undefined_object'
);

SELECT * FROM finish();
ROLLBACK;
