-- autopilot.cancel(): unfinished jobs, executing ones too, are cancelled.
BEGIN;
SELECT plan(8);

SELECT has_function('autopilot', 'cancel', ARRAY['bigint', 'text'], 'autopilot.cancel(bigint, text) exists');
INSERT INTO autopilot.jobs (queue, worker, args) VALUES ('tap', 'w', '{"i": 1}'), ('tap', 'w', '{"i": 2}');
CREATE FUNCTION pg_temp.job(p_i integer) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM autopilot.jobs WHERE queue = 'tap' AND (args ->> 'i')::integer = p_i
$$;
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS SELECT * FROM autopilot.claim('tap', 'node-1');

SELECT is(autopilot.cancel(pg_temp.job(2)), true, 'an available job is cancelled');
SELECT is(
    (
        SELECT count(*) FROM autopilot.job_runs
        WHERE details ->> 'job_id' = pg_temp.job(2)::text
    ), 0::bigint,
    '... and, never run, has no run in job_runs'
);
SELECT is(autopilot.cancel(pg_temp.job(1), 'operator asked'), true, 'an executing job is cancelled');
SELECT results_eq(
    $$SELECT state, cancelled_at = now(), errors -> -1 ->> 'error' FROM autopilot.jobs WHERE id = pg_temp.job(1)$$,
    $$VALUES ('cancelled'::text, true, 'cancelled: operator asked'::text)$$,
    '... with the reason in its errors'
);
SELECT is(
    (
        SELECT status FROM autopilot.job_runs
        WHERE details ->> 'job_id' = pg_temp.job(1)::text
    ), 'cancelled',
    '... and its interrupted attempt in job_runs as cancelled'
);
SELECT is(
    autopilot.complete(pg_temp.job(1), 1), false, 'its runner''s completion then changes nothing'
);
SELECT is(autopilot.cancel(pg_temp.job(1)), false, 'a finished job cannot be cancelled');

SELECT * FROM finish();
ROLLBACK;
