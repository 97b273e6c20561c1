-- autopilot._record_cron_runs: the finished runs of this database's statement jobs, from pg_cron's history,
-- into the ledger, each once (job_runs.cron_runid); anything else in the history is left out.
BEGIN;
SELECT plan(7);

CREATE TEMPORARY TABLE tap_history ON COMMIT DROP AS
SELECT jsonb_build_array(
    jsonb_build_object(
        'runid', 900001, 'jobname', autopilot._cron_jobname('vacuum-analyze'), 'job_pid', 4242,
        'status', 'succeeded', 'return_message', 'VACUUM',
        'start_time', now() - interval '2 hours', 'end_time', now() - interval '2 hours' + interval '3 seconds'
    ),
    jsonb_build_object(
        'runid', 900002, 'jobname', autopilot._cron_jobname('vacuum-analyze'), 'job_pid', 4243,
        'status', 'failed', 'return_message', 'ERROR:  canceling statement due to lock timeout',
        'start_time', now() - interval '1 hour', 'end_time', now() - interval '1 hour'
    ),
    jsonb_build_object(
        'runid', 900003, 'jobname', autopilot._cron_jobname('vacuum-analyze'), 'job_pid', 4244,
        'status', 'running', 'return_message', NULL, 'start_time', now(), 'end_time', NULL
    ),
    jsonb_build_object(
        'runid', 900004, 'jobname', autopilot._cron_jobname('table-statistics'), 'job_pid', 4245,
        'status', 'succeeded', 'return_message', 'CALL', 'start_time', now(), 'end_time', now()
    ),
    jsonb_build_object(
        'runid', 900005, 'jobname', 'autopilot:some_other_database:vacuum-analyze', 'job_pid', 4246,
        'status', 'succeeded', 'return_message', 'VACUUM', 'start_time', now(), 'end_time', now()
    )
) AS runs;

SELECT is(
    (SELECT autopilot._record_cron_runs(runs) FROM tap_history),
    2::bigint,
    'the two finished runs of this database''s statement job are recorded'
);
SELECT results_eq(
    $$SELECT job_name, side, trigger, status, message, backend_pid, cron_runid
      FROM autopilot.job_runs WHERE cron_runid IS NOT NULL ORDER BY cron_runid$$,
    $$VALUES
        ('vacuum-analyze'::text, 'database'::text, 'pg_cron'::text, 'succeeded'::text, 'pg_cron: VACUUM'::text,
         4242, 900001::bigint),
        ('vacuum-analyze', 'database', 'pg_cron', 'failed',
         'pg_cron: ERROR:  canceling statement due to lock timeout', 4243, 900002)$$,
    'as pg_cron runs of the job, with pg_cron''s message, outcome and runid'
);
SELECT is(
    (
        SELECT finished_at - started_at FROM autopilot.job_runs
        WHERE cron_runid = 900001
    ),
    interval '3 seconds',
    'when pg_cron started and ended it'
);
SELECT is(
    (SELECT autopilot._record_cron_runs(runs) FROM tap_history),
    0::bigint,
    'a second pass records nothing again'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.job_runs
        WHERE cron_runid IS NOT NULL
    ),
    2::bigint,
    'each run once; a running run, a function job''s run and another database''s are left out'
);
SELECT is(autopilot._record_cron_runs('[]'), 0::bigint, 'an empty history records nothing');
SELECT throws_ok(
    $$INSERT INTO autopilot.job_runs (job_name, side, trigger, status, finished_at, cron_runid)
      VALUES ('vacuum-analyze', 'database', 'pg_cron', 'succeeded', clock_timestamp() + interval '1 second', 900001)$$,
    '23505', NULL,
    'a pg_cron run is in the ledger at most once'
);

SELECT * FROM finish();
ROLLBACK;
