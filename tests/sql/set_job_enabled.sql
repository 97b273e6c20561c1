-- needs: pg_cron (cron.job, cron.schedule): left out on a server without it (tools/dev.py)
-- autopilot.set_job_enabled(): a disabled job keeps its pg_cron entry, inactive.
BEGIN;
SELECT plan(14);

-- a catalog job whose function comes in a later version (every shipped job's is installed)
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
VALUES ('tap-future', 'database', 'function', '0 4 * * *', 'autopilot.tap_future_job', 'arrives later');

SELECT has_function(
    'autopilot', 'set_job_enabled', ARRAY['text', 'boolean'], 'autopilot.set_job_enabled(text, boolean) exists'
);

DELETE FROM autopilot.job_overrides;
SELECT lives_ok($$SELECT * FROM autopilot.sync_schedules()$$, 'fixture: cron.job is in sync with the catalog');
SELECT is(
    (
        SELECT active FROM cron.job
        WHERE jobname = autopilot._cron_jobname('code-chunk-cleanup')
    ),
    true,
    'fixture: code-chunk-cleanup is active'
);

SELECT is(autopilot.set_job_enabled('code-chunk-cleanup', false), false, 'set_job_enabled returns the new state');
SELECT is(
    (
        SELECT enabled FROM autopilot.job_definitions
        WHERE name = 'code-chunk-cleanup'
    ),
    false,
    'the job is disabled in job_definitions'
);
SELECT results_eq(
    $$SELECT schedule, active FROM cron.job WHERE jobname = autopilot._cron_jobname('code-chunk-cleanup')$$,
    $$VALUES ('0 2 * * 0'::text, false)$$,
    'its cron.job row stays, inactive, with its schedule'
);
SELECT is_empty($$SELECT * FROM autopilot.sync_schedules()$$, 'a re-sync changes nothing');
SELECT is(
    (
        SELECT active FROM cron.job
        WHERE jobname = autopilot._cron_jobname('code-chunk-cleanup')
    ),
    false,
    'the job stays inactive after a re-sync'
);

SELECT is(autopilot.set_job_enabled('code-chunk-cleanup', true), true, 'enabling it again');
SELECT is(
    (
        SELECT active FROM cron.job
        WHERE jobname = autopilot._cron_jobname('code-chunk-cleanup')
    ),
    true,
    'makes its cron.job row active'
);

-- enabling cannot switch on a job that cannot run here
SELECT is(autopilot.set_job_enabled('tap-future', true), true, 'a job whose function is not installed can be enabled');
SELECT is(
    (
        SELECT active FROM cron.job
        WHERE jobname = autopilot._cron_jobname('tap-future')
    ),
    false,
    'but stays inactive while its function is not installed'
);

SELECT throws_ok(
    $$SELECT autopilot.set_job_enabled('code-chunk-cleanup', NULL)$$,
    '22004', NULL, 'NULL raises null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_enabled('no-such-job', false)$$,
    '42704', NULL, 'an unknown job raises undefined_object'
);

SELECT * FROM finish();
ROLLBACK;
