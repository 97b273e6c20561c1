-- autopilot.heartbeat(): a runner keeps its executing jobs and learns which
-- are no longer its own.
BEGIN;
SELECT plan(4);

SELECT has_function('autopilot', 'heartbeat', ARRAY['bigint[]', 'text'], 'autopilot.heartbeat(bigint[], text) exists');
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
    $$SELECT id FROM autopilot.heartbeat((SELECT array_agg(id) FROM tap_claimed), 'node-1') AS h (id) ORDER BY id$$,
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
    $$SELECT * FROM autopilot.heartbeat((SELECT array_agg(id) FROM tap_claimed), 'node-2')$$,
    'another node''s heartbeat keeps nothing of node-1''s'
);

SELECT * FROM finish();
ROLLBACK;
