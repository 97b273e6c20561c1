-- autopilot.set_job_timeout(): a validated timeout override of a function or
-- batched job, kept until reset_job(); autopilot._cancel_timed_out_runs()
-- signals only runs past it.
BEGIN;
SELECT plan(15);

SELECT has_function(
    'autopilot', 'set_job_timeout', ARRAY['text', 'interval'], 'autopilot.set_job_timeout(text, interval) exists'
);

DELETE FROM autopilot.job_overrides;

SELECT is(
    (
        SELECT timeout FROM autopilot.job_definitions
        WHERE name = 'pagerank'
    ),
    interval '1 hour',
    'a job runs under its catalog timeout by default'
);
SELECT is(
    autopilot.set_job_timeout('pagerank', interval '90 seconds'), interval '90 seconds',
    'set_job_timeout returns the timeout'
);
SELECT results_eq(
    $$SELECT timeout, default_timeout, schedule, enabled FROM autopilot.job_definitions WHERE name = 'pagerank'$$,
    $$VALUES (interval '90 seconds', interval '1 hour', '0 3 * * *'::text, true)$$,
    'the effective timeout changes; the default, the schedule and the enabled state do not'
);
SELECT results_eq(
    $$SELECT job_name, schedule, enabled, timeout FROM autopilot.job_overrides$$,
    $$VALUES ('pagerank'::text, NULL::text, NULL::boolean, interval '90 seconds')$$,
    'the override is stored in job_overrides'
);
SELECT is(
    autopilot.set_job_timeout('pagerank', interval '2 hours'), interval '2 hours',
    'a second override replaces the first'
);
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.job_overrides
        WHERE job_name = 'pagerank'
    ),
    1,
    'one override row per job'
);

-- bad input changes nothing
SELECT throws_ok(
    $$SELECT autopilot.set_job_timeout('pagerank', interval '0')$$,
    '22023', 'invalid timeout "00:00:00" for autopilot job pagerank: it must be positive',
    'a zero timeout raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_timeout('pagerank', interval '-5 minutes')$$,
    '22023', NULL, 'a negative timeout raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_timeout('pagerank', NULL)$$,
    '22004', NULL, 'a NULL timeout raises null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_timeout('vacuum-analyze', interval '1 minute')$$,
    '0A000', NULL, 'a statement job has no timeout of its own'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_timeout('no-such-job', interval '1 minute')$$,
    '42704', 'unknown autopilot job "no-such-job"', 'an unknown job raises undefined_object'
);
SELECT is(
    (
        SELECT timeout FROM autopilot.job_overrides
        WHERE job_name = 'pagerank'
    ),
    interval '2 hours',
    'the refused calls left the override as it was'
);

SELECT lives_ok($$SELECT autopilot.reset_job('pagerank')$$, 'reset_job');
SELECT is(
    (
        SELECT timeout FROM autopilot.job_definitions
        WHERE name = 'pagerank'
    ),
    interval '1 hour',
    'reset_job returns the job to its catalog timeout'
);

SELECT * FROM finish();
ROLLBACK;
