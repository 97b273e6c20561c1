-- autopilot.complete() and autopilot.complete_many(): finish executing jobs,
-- each only at its current attempt, and record each attempt in job_runs.
BEGIN;
SELECT plan(13);

SELECT has_function('autopilot', 'complete', ARRAY['bigint', 'integer'], 'autopilot.complete(bigint, integer) exists');
SELECT has_function(
    'autopilot', 'complete_many', ARRAY['bigint[]', 'integer[]'], 'autopilot.complete_many(bigint[], integer[]) exists'
);

INSERT INTO autopilot.jobs (queue, worker, args, meta)
SELECT
    'tap' AS queue,
    'tap_worker' AS worker,
    jsonb_build_object('i', i) AS args,
    CASE
        WHEN i = 1 THEN '{"catalog": "backup-hourly"}'::jsonb
        ELSE '{}'::jsonb
    END AS meta
FROM generate_series(1, 4) AS i;
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS SELECT * FROM autopilot.claim('tap', 'node-1', 4);
CREATE FUNCTION pg_temp.job(p_i integer) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM tap_claimed WHERE (args ->> 'i')::integer = p_i
$$;

SELECT is(autopilot.complete(pg_temp.job(1), 1), true, 'complete: an executing job at its attempt');
SELECT results_eq(
    $$SELECT state, completed_at = now() FROM autopilot.jobs WHERE id = pg_temp.job(1)$$,
    $$VALUES ('completed'::text, true)$$,
    '... is completed'
);
SELECT results_eq(
    $$SELECT job_name, side, trigger, status, details ->> 'node', (details ->> 'job_id')::bigint
      FROM autopilot.job_runs WHERE details ->> 'job_id' = pg_temp.job(1)::text$$,
    $$VALUES ('backup-hourly'::text, 'runner'::text, 'runner'::text, 'succeeded'::text, 'node-1'::text,
              pg_temp.job(1))$$,
    '... and its attempt is in job_runs, under its catalog name'
);
SELECT is(autopilot.complete(pg_temp.job(1), 1), false, 'completing it again changes nothing');
SELECT is(autopilot.complete(pg_temp.job(2), 2), false, 'another attempt than the one executing: nothing');
SELECT is(
    autopilot.complete_many(ARRAY[pg_temp.job(2), pg_temp.job(3), pg_temp.job(4)], ARRAY[1, 1, 7]),
    2::bigint,
    'complete_many completes the jobs at their attempt (2 of 3)'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.job_runs
        WHERE details ->> 'worker' = 'tap_worker' AND status = 'succeeded'
    ),
    3::bigint,
    'every completed job has its run in job_runs, named after its worker when not a catalog job'
);
SELECT throws_ok(
    $$SELECT autopilot.complete_many(ARRAY[1, 2]::bigint [], ARRAY[1])$$, '2202E', NULL,
    'ids and attempts of different lengths: 2202E'
);

-- the ledger writer every way of ending an attempt shares
SELECT has_function(
    'autopilot', '_record_runner_attempts', ARRAY['autopilot.jobs[]', 'text', 'text[]'],
    'autopilot._record_runner_attempts(jobs[], text, text[]) exists'
);
SELECT is(
    autopilot._record_runner_attempts(
        array(
            SELECT j FROM autopilot.jobs AS j
            WHERE j.id IN (pg_temp.job(3), pg_temp.job(4))
            ORDER BY j.id
        ),
        'failed', ARRAY['third', 'fourth']
    ),
    2::bigint,
    '_record_runner_attempts writes one run per job'
);
SELECT results_eq(
    $$SELECT (details ->> 'job_id')::bigint, message, details ->> 'state' FROM autopilot.job_runs
      WHERE status = 'failed' AND details ->> 'worker' = 'tap_worker' ORDER BY id$$,
    $$VALUES (pg_temp.job(3), 'third'::text, 'completed'::text), (pg_temp.job(4), 'fourth', 'executing')$$,
    '... each with its own message and the job''s state, in the order given'
);

SELECT * FROM finish();
ROLLBACK;
