-- autopilot.heartbeat(): a runner keeps its executing jobs, each at the attempt
-- it runs, and learns which are no longer its own.
BEGIN;
SELECT plan(8);

SELECT has_function(
    'autopilot', 'heartbeat', ARRAY['bigint[]', 'integer[]', 'text'],
    'autopilot.heartbeat(bigint[], integer[], text) exists'
);
INSERT INTO autopilot.jobs (queue, worker, args)
SELECT
    'tap' AS queue,
    'w' AS worker,
    jsonb_build_object('i', i) AS args
FROM generate_series(1, 3) AS i;
CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS SELECT * FROM autopilot.claim('tap', 'node-1', 3);
UPDATE autopilot.jobs SET heartbeat_at = now() - interval '1 minute'
WHERE queue = 'tap';
SELECT autopilot.cancel(max(id)) FROM tap_claimed;

SELECT results_eq(
    $$SELECT id FROM autopilot.heartbeat(
        (SELECT array_agg(id ORDER BY id) FROM tap_claimed), (SELECT array_agg(attempt ORDER BY id) FROM tap_claimed),
        'node-1'
    ) AS h (id) ORDER BY id$$,
    $$SELECT id FROM tap_claimed WHERE id < (SELECT max(id) FROM tap_claimed) ORDER BY id$$,
    'the heartbeat returns the jobs still executing for the node (not the cancelled one)'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE queue = 'tap' AND heartbeat_at = now()
    ), 2::bigint,
    '... and refreshes their heartbeat'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.heartbeat(
        (SELECT array_agg(id ORDER BY id) FROM tap_claimed), (SELECT array_agg(attempt ORDER BY id) FROM tap_claimed),
        'node-2'
    )$$,
    'another node''s heartbeat keeps nothing of node-1''s'
);

-- the first job fails (attempt 1), is due again, and node-1 claims it again: attempt 2
SELECT autopilot.fail(min(id), 1, 'boom') FROM tap_claimed;
UPDATE autopilot.jobs SET scheduled_at = now() - interval '1 second'
WHERE id = (SELECT min(id) FROM tap_claimed);
SELECT autopilot.claim('tap', 'node-1', 1);
UPDATE autopilot.jobs SET heartbeat_at = now() - interval '1 minute'
WHERE id = (SELECT min(id) FROM tap_claimed);
SELECT is_empty(
    $$SELECT * FROM autopilot.heartbeat(ARRAY[(SELECT min(id) FROM tap_claimed)], ARRAY[1], 'node-1')$$,
    'a heartbeat for an earlier attempt keeps nothing, though the same node runs a later attempt of the job'
);
SELECT is(
    (
        SELECT j.heartbeat_at < now() FROM autopilot.jobs AS j
        WHERE j.id = (SELECT min(c.id) FROM tap_claimed AS c)
    ), true,
    '... and leaves the later attempt''s heartbeat alone'
);
SELECT results_eq(
    $$SELECT * FROM autopilot.heartbeat(ARRAY[(SELECT min(id) FROM tap_claimed)], ARRAY[2], 'node-1')$$,
    $$SELECT min(id) FROM tap_claimed$$,
    'the heartbeat for the attempt it runs keeps it'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.heartbeat(ARRAY[1, 2]::bigint[], ARRAY[1], 'node-1')$$,
    '2202E', 'heartbeat: 2 job ids but 1 attempts',
    'ids and attempts of different lengths are refused'
);

SELECT * FROM finish();
ROLLBACK;
