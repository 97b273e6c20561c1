-- autopilot.retry(): a job that is not executing runs again, now.
BEGIN;
SELECT plan(7);

SELECT has_function('autopilot', 'retry', ARRAY['bigint'], 'autopilot.retry(bigint) exists');
INSERT INTO autopilot.jobs (queue, worker, args, state, attempt, max_attempts, discarded_at, unique_key, errors) VALUES
('tap', 'w', '{"i": 1}', 'discarded', 3, 3, now() - interval '1 hour', 'tap:key', '[{"attempt": 3, "error": "x"}]'),
('tap', 'w', '{"i": 2}', 'retryable', 1, 3, NULL, NULL, '[]');
CREATE FUNCTION pg_temp.job(p_i integer) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM autopilot.jobs WHERE queue = 'tap' AND (args ->> 'i')::integer = p_i
$$;
UPDATE autopilot.jobs SET scheduled_at = now() + interval '1 hour'
WHERE id = pg_temp.job(2);

SELECT is(autopilot.retry(pg_temp.job(1)), true, 'a discarded job is retried');
SELECT results_eq(
    $$SELECT state, scheduled_at = now(), max_attempts, discarded_at, jsonb_array_length(errors)
      FROM autopilot.jobs WHERE id = pg_temp.job(1)$$,
    $$VALUES ('available'::text, true, 4, NULL::timestamptz, 1)$$,
    '... available now, with one more attempt, its errors kept'
);
SELECT is(autopilot.retry(pg_temp.job(2)), true, 'a retryable job waiting for its backoff runs now');
SELECT is(
    (SELECT args ->> 'i' FROM autopilot.claim('tap', 'node-1', 1)), '1', 'both are claimable (oldest first)'
);
SELECT is(autopilot.retry(pg_temp.job(1)), false, 'an executing job is not retried');

-- a completed job whose unique key another unfinished job holds
SELECT autopilot.complete(pg_temp.job(1), 4);
INSERT INTO autopilot.jobs (queue, worker, unique_key) VALUES ('tap', 'w', 'tap:key');
SELECT throws_like(
    format('SELECT autopilot.retry(%s)', pg_temp.job(1)),
    'job % cannot run again: job % holds its unique key and is unfinished',
    'retrying beside an unfinished job of the same unique key: a clear unique_violation'
);

SELECT * FROM finish();
ROLLBACK;
