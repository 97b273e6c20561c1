-- autopilot.set_job_retries(): a validated retry policy override of a function
-- or batched job, kept until reset_job(). (Retries themselves, with a real
-- lock_not_available: tests/py/test_sql_job_retries.py.)
BEGIN;
SELECT plan(12);

SELECT has_function(
    'autopilot', 'set_job_retries', ARRAY['text', 'integer', 'interval'],
    'autopilot.set_job_retries(text, integer, interval) exists'
);

DELETE FROM autopilot.job_overrides;

SELECT results_eq(
    $$SELECT max_attempts::integer, retry_backoff FROM autopilot.job_definitions WHERE name = 'pagerank'$$,
    $$VALUES (3, interval '5 seconds')$$,
    'a job retries by the catalog policy by default: 3 attempts, 5 seconds before the second'
);
SELECT is(autopilot.set_job_retries('pagerank', 5, interval '1 second'), 5, 'set_job_retries returns the attempts');
SELECT results_eq(
    $$SELECT max_attempts::integer, retry_backoff, timeout FROM autopilot.job_definitions WHERE name = 'pagerank'$$,
    $$VALUES (5, interval '1 second', interval '1 hour')$$,
    'the effective policy changes, the timeout does not'
);
SELECT is(autopilot.set_job_retries('pagerank', 1), 1, 'the backoff may be left out');
SELECT results_eq(
    $$SELECT max_attempts::integer, retry_backoff FROM autopilot.job_overrides WHERE job_name = 'pagerank'$$,
    $$VALUES (1, interval '1 second')$$,
    'leaving the backoff out keeps the one set before'
);

SELECT throws_ok(
    $$SELECT autopilot.set_job_retries('pagerank', 0)$$,
    '22023', 'invalid max attempts 0 for autopilot job pagerank: it must be between 1 and 100',
    'zero attempts raise invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_retries('pagerank', 3, interval '-1 second')$$,
    '22023', NULL, 'a negative backoff raises invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_retries('pagerank', NULL)$$,
    '22004', NULL, 'NULL attempts raise null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT autopilot.set_job_retries('vacuum-analyze', 2)$$,
    '0A000', NULL, 'a statement job has no retry policy of its own'
);
SELECT lives_ok($$SELECT autopilot.reset_job('pagerank')$$, 'reset_job');
SELECT results_eq(
    $$SELECT max_attempts::integer, retry_backoff FROM autopilot.job_definitions WHERE name = 'pagerank'$$,
    $$VALUES (3, interval '5 seconds')$$,
    'reset_job returns the job to its catalog policy'
);

SELECT * FROM finish();
ROLLBACK;
