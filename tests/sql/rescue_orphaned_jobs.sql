-- autopilot.rescue_orphaned_jobs() (rescue-orphaned-jobs): executing jobs
-- without a heartbeat for jobs.rescue_after go back to retryable, or are
-- discarded past max_attempts. (A runner killed mid-job: tests/py/test_runner.py.)
BEGIN;
SELECT plan(8);

SELECT has_function(
    'autopilot', 'rescue_orphaned_jobs', ARRAY[]::text[], 'autopilot.rescue_orphaned_jobs() exists'
);
-- jobs of other tests' or real runners must not count here
UPDATE autopilot.jobs SET state = 'completed', completed_at = now()
WHERE state = 'executing';

INSERT INTO autopilot.jobs (queue, worker, args, max_attempts)
SELECT
    'tap' AS queue,
    'w' AS worker,
    jsonb_build_object('i', i) AS args,
    CASE WHEN i = 3 THEN 1 ELSE 5 END AS max_attempts
FROM generate_series(1, 3) AS i;
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS SELECT * FROM autopilot.claim('tap', 'dead-node', 3);
CREATE FUNCTION pg_temp.job(p_i integer) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM autopilot.jobs WHERE queue = 'tap' AND (args ->> 'i')::integer = p_i
$$;
-- jobs 1 and 3 lost their runner 10 minutes ago; job 2's runner heartbeat a moment ago
UPDATE autopilot.jobs SET heartbeat_at = now() - interval '10 minutes'
WHERE id IN (pg_temp.job(1), pg_temp.job(3));
UPDATE autopilot.jobs SET heartbeat_at = now() - interval '10 seconds'
WHERE id = pg_temp.job(2);

SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'retried', s ->> 'discarded' FROM autopilot.rescue_orphaned_jobs() AS s$$,
    $$VALUES ('2'::text, '1'::text, '1'::text)$$,
    'two orphans rescued: one to retry, one discarded (it had used its only attempt)'
);
SELECT results_eq(
    $$SELECT state, scheduled_at = now() FROM autopilot.jobs WHERE id = pg_temp.job(1)$$,
    $$VALUES ('retryable'::text, true)$$,
    'the orphan with attempts left is retryable at once'
);
SELECT alike(
    (
        SELECT errors -> -1 ->> 'error' FROM autopilot.jobs
        WHERE id = pg_temp.job(1)
    ),
    'orphaned: runner dead-node stopped heartbeating (last at %',
    '... with the reason in its errors'
);
SELECT is((
    SELECT state FROM autopilot.jobs
    WHERE id = pg_temp.job(3)
), 'discarded', 'the other is discarded');
SELECT
    is((
        SELECT state FROM autopilot.jobs
        WHERE id = pg_temp.job(2)
    ), 'executing', 'a job with a recent heartbeat stays');
SELECT is(
    (
        SELECT count(*) FROM autopilot.job_runs
        WHERE status = 'abandoned' AND details ->> 'node' = 'dead-node'
    ),
    2::bigint,
    'each lost attempt is in job_runs as abandoned'
);
SELECT is(
    autopilot.complete(pg_temp.job(1), 1), false, 'the dead runner''s late completion changes nothing'
);

SELECT * FROM finish();
ROLLBACK;
