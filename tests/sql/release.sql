-- autopilot.release(): claimed jobs that never started go back, uncounted.
BEGIN;
SELECT plan(7);

SELECT has_function(
    'autopilot', 'release', ARRAY['bigint[]', 'integer[]'], 'autopilot.release(bigint[], integer[]) exists'
);
INSERT INTO autopilot.jobs (queue, worker, args)
SELECT
    'tap' AS queue,
    'w' AS worker,
    jsonb_build_object('i', i) AS args
FROM generate_series(1, 3) AS i;
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS
SELECT * FROM autopilot.claim('tap', 'node-1', 3);

SELECT is(
    autopilot.release(
        (SELECT array_agg(c.id ORDER BY c.id) FROM tap_claimed AS c),
        ARRAY[1, 1, 5]
    ),
    2::bigint,
    'two released (the third is not at the attempt given)'
);
SELECT results_eq(
    $$SELECT state, attempt, max_attempts FROM autopilot.jobs WHERE queue = 'tap' ORDER BY id$$,
    $$VALUES ('available'::text, 1, 21), ('available', 1, 21), ('executing', 1, 20)$$,
    'released jobs are available again, the attempt not used up (max_attempts + 1; the attempt number stays)'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.job_runs WHERE details ->> 'node' = 'node-1'$$,
    'nothing in job_runs: no attempt ran'
);
SELECT results_eq(
    $$SELECT id, attempt FROM autopilot.claim('tap', 'node-2', 10) ORDER BY id$$,
    $$SELECT id, 2 FROM tap_claimed WHERE id < (SELECT max(id) FROM tap_claimed) ORDER BY id$$,
    'another runner can claim them at once, as a new attempt'
);
SELECT is(
    autopilot.release(
        (SELECT array_agg(c.id ORDER BY c.id) FROM tap_claimed AS c),
        ARRAY[1, 1, 5]
    ),
    0::bigint,
    'releasing the first attempt again (a retry after a lost reply) takes nothing from node-2'
);
SELECT throws_ok(
    $$SELECT autopilot.release(ARRAY[1]::bigint [], ARRAY[]::integer [])$$, '2202E', NULL,
    'ids and attempts of different lengths: 2202E'
);

SELECT * FROM finish();
ROLLBACK;
