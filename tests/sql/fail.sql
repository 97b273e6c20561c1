-- autopilot.fail(): a failed attempt is kept in the job and in job_runs; the
-- job retries after an exponential backoff with jitter, or is discarded.
BEGIN;
SELECT plan(13);

SELECT has_function(
    'autopilot',
    'fail',
    ARRAY['bigint', 'integer', 'text', 'boolean'],
    'autopilot.fail(bigint, integer, text, boolean) exists'
);
SELECT autopilot.set_setting('jobs.backoff_base', '10 seconds');
SELECT autopilot.set_setting('jobs.backoff_max', '1 minute');

INSERT INTO autopilot.jobs (queue, worker, max_attempts, args) VALUES
('tap', 'tap_worker', 3, '{"i": 1}'), ('tap', 'tap_worker', 3, '{"i": 2}');
CREATE FUNCTION pg_temp.job(p_i integer) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM autopilot.jobs WHERE queue = 'tap' AND (args ->> 'i')::integer = p_i
$$;
-- claim and fail attempt p of job 1, for the test: the clock of the transaction does not move,
-- so the retry is made due by hand
CREATE FUNCTION pg_temp.attempt_fails(p_error text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_attempt integer;
BEGIN
    UPDATE autopilot.jobs SET scheduled_at = now() WHERE id = pg_temp.job(1);
    SELECT c.attempt INTO v_attempt FROM autopilot.claim('tap', 'node-1') AS c WHERE c.id = pg_temp.job(1);
    RETURN autopilot.fail(pg_temp.job(1), v_attempt, p_error);
END;
$$;
UPDATE autopilot.jobs SET scheduled_at = now() + interval '1 day'
WHERE id = pg_temp.job(2);

SELECT is(pg_temp.attempt_fails('boom 1'), 'retryable', 'a first failure: retryable');
SELECT ok(
    (
        SELECT scheduled_at - now() BETWEEN interval '8 seconds' AND interval '10 seconds'
        FROM autopilot.jobs
        WHERE id = pg_temp.job(1)
    ),
    '... due after backoff_base (10 s), less up to 20% jitter'
);
SELECT is(pg_temp.attempt_fails('boom 2'), 'retryable', 'a second failure: retryable');
SELECT ok(
    (
        SELECT scheduled_at - now() BETWEEN interval '16 seconds' AND interval '20 seconds'
        FROM autopilot.jobs
        WHERE id = pg_temp.job(1)
    ),
    '... after twice as long (20 s, less up to 20%)'
);
SELECT is(pg_temp.attempt_fails('boom 3'), 'discarded', 'the last attempt fails: discarded');
SELECT results_eq(
    $$SELECT e ->> 'attempt', e ->> 'error', e ->> 'node'
      FROM autopilot.jobs AS j, jsonb_array_elements(j.errors) AS e WHERE j.id = pg_temp.job(1)$$,
    $$VALUES ('1'::text, 'boom 1'::text, 'node-1'::text), ('2', 'boom 2', 'node-1'), ('3', 'boom 3', 'node-1')$$,
    'each attempt''s error is kept in the job, oldest first'
);
SELECT results_eq(
    $$SELECT status, message FROM autopilot.job_runs WHERE details ->> 'job_id' = pg_temp.job(1)::text
      ORDER BY id DESC LIMIT 1$$,
    $$VALUES ('failed'::text, format('job %s (tap_worker), attempt 3 of 3: boom 3 (discarded)', pg_temp.job(1)))$$,
    'each failed attempt is in job_runs with its error'
);
SELECT is(
    autopilot.fail(pg_temp.job(1), 3, 'again'), NULL, 'failing a job that is no longer executing changes nothing'
);

-- discard at once: retrying cannot help (a worker the runner does not have)
UPDATE autopilot.jobs SET scheduled_at = now()
WHERE id = pg_temp.job(2);
SELECT is(
    (SELECT autopilot.fail(c.id, c.attempt, 'no worker named tap_worker', true) FROM autopilot.claim('tap', 'n') AS c),
    'discarded',
    'p_discard: discarded on the first attempt'
);
SELECT is(
    (
        SELECT discarded_at = now() FROM autopilot.jobs
        WHERE id = pg_temp.job(2)
    ), true, '... with its discard time'
);

-- a long base and a late attempt: 2^39 days would overflow an interval; the wait is backoff_max at most
SELECT autopilot.set_setting('jobs.backoff_base', '1 day');
INSERT INTO autopilot.jobs (queue, worker, max_attempts, attempt, args) VALUES (
    'tap', 'tap_worker', 50, 39, '{"i": 3}'
);
SELECT is(
    (SELECT autopilot.fail(c.id, c.attempt, 'boom 40') FROM autopilot.claim('tap', 'n') AS c),
    'retryable',
    'attempt 40 with a backoff_base of a day fails without overflowing'
);
SELECT ok(
    (
        SELECT scheduled_at - now() BETWEEN interval '48 seconds' AND interval '1 minute'
        FROM autopilot.jobs
        WHERE id = pg_temp.job(3)
    ),
    '... due after backoff_max (1 minute) less up to 20% jitter, never longer'
);

SELECT * FROM finish();
ROLLBACK;
