-- autopilot.claim(): due jobs of one queue, priority then age, marked executing
-- by the claiming node. (Two runners never sharing a job: tests/py/test_runner.py.)
BEGIN;
SELECT plan(16);

SELECT has_function(
    'autopilot', 'claim', ARRAY['text', 'text', 'integer'], 'autopilot.claim(text, text, integer) exists'
);

-- in queue tap: a (priority 5, older), b (priority 0, newer), c (priority 0, newest), d (not due),
-- and one in another queue
INSERT INTO autopilot.jobs (queue, worker, args, priority, scheduled_at, state) VALUES
('tap', 'w', '{"name": "a"}', 5, now() - interval '3 minutes', 'available'),
('tap', 'w', '{"name": "b"}', 0, now() - interval '2 minutes', 'available'),
('tap', 'w', '{"name": "c"}', 0, now() - interval '1 minute', 'retryable'),
('tap', 'w', '{"name": "d"}', 0, now() + interval '1 minute', 'scheduled'),
('tap-other', 'w', '{"name": "e"}', 0, now() - interval '1 hour', 'available');

CREATE TEMPORARY TABLE tap_claimed ON COMMIT DROP AS
SELECT * FROM autopilot.claim('tap', 'node-1', 2);
SELECT results_eq(
    $$SELECT args ->> 'name' FROM tap_claimed ORDER BY priority, scheduled_at$$,
    $$VALUES ('b'::text), ('c')$$,
    'priority first (0 before 5), then age; at most the limit'
);
SELECT results_eq(
    $$SELECT DISTINCT state, attempt, attempted_by, attempted_at = now(), heartbeat_at = now() FROM tap_claimed$$,
    $$VALUES ('executing'::text, 1, 'node-1'::text, true, true)$$,
    'claimed jobs are executing, attempt 1, by the node, with a first heartbeat'
);
SELECT results_eq(
    $$SELECT args ->> 'name' FROM autopilot.claim('tap', 'node-2', 10)$$,
    $$VALUES ('a'::text)$$,
    'a second claim gets what is left and due: not the claimed jobs, not the job due later, not another queue'
);
SELECT is_empty($$SELECT * FROM autopilot.claim('tap', 'node-2', 10)$$, 'nothing left to claim');
SELECT is(
    (SELECT count(*) FROM autopilot.claim('tap-other', 'node-2', 0)), 0::bigint, 'a limit of 0 claims nothing'
);
UPDATE autopilot.jobs SET scheduled_at = now() - interval '1 second'
WHERE args ->> 'name' = 'd';
SELECT results_eq(
    $$SELECT args ->> 'name', state FROM autopilot.claim('tap', 'node-3')$$,
    $$VALUES ('d'::text, 'executing'::text)$$,
    'a scheduled job is claimed once it is due (one by default)'
);
SELECT throws_ok(
    $$SELECT autopilot.claim('tap', '')$$, '22023', NULL, 'a claim without a node name: 22023'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE queue = 'tap' AND state = 'executing'
    ), 4::bigint,
    'every tap job is executing, each once'
);
SELECT is(
    (
        SELECT max(attempt) FROM autopilot.jobs
        WHERE queue = 'tap'
    ), 1, 'each with one attempt'
);

-- the rows come back in the order they are to run, whatever their ids: priority, then age
INSERT INTO autopilot.jobs (queue, worker, args, priority, scheduled_at) VALUES
('tap-order', 'w', '{"name": "p9"}', 9, now() - interval '3 minutes'),
('tap-order', 'w', '{"name": "p3-newer"}', 3, now() - interval '1 minute'),
('tap-order', 'w', '{"name": "p3-older"}', 3, now() - interval '2 minutes'),
('tap-order', 'w', '{"name": "p0"}', 0, now());
SELECT results_eq(
    $$SELECT args ->> 'name' FROM autopilot.claim('tap-order', 'node-4', 10)$$,
    $$VALUES ('p0'::text), ('p3-older'), ('p3-newer'), ('p9')$$,
    'claimed jobs are returned priority first, then oldest (the order the runner starts them)'
);
INSERT INTO autopilot.jobs (queue, worker) VALUES ('tap-order', 'w');
SELECT is_empty($$SELECT * FROM autopilot.claim('tap-order', 'node-4', NULL)$$, 'a NULL limit claims nothing');

-- jobs scheduled for later do not count against the limit, however many there are
INSERT INTO autopilot.jobs (queue, worker, priority, scheduled_at, state)
SELECT
    'tap-later' AS queue,
    'w' AS worker,
    i % 10 AS priority,
    now() + interval '1 hour' AS scheduled_at,
    'scheduled' AS state
FROM generate_series(1, 50) AS i;
INSERT INTO autopilot.jobs (queue, worker, priority, args) VALUES
('tap-later', 'w', 9, '{"name": "due-9"}'), ('tap-later', 'w', 4, '{"name": "due-4"}');
SELECT results_eq(
    $$SELECT args ->> 'name' FROM autopilot.claim('tap-later', 'node-4', 5)$$,
    $$VALUES ('due-4'::text), ('due-9')$$,
    'among many jobs due later, the due ones of every priority are found'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE queue = 'tap-later' AND state = 'scheduled'
    ), 50::bigint,
    '... and the later ones stay scheduled'
);

-- the claim index serves the query
SELECT has_index('autopilot', 'jobs', 'jobs_claim_idx', 'jobs_claim_idx exists');
SELECT has_index('autopilot', 'jobs', 'jobs_executing_idx', 'jobs_executing_idx (rescue) exists');

SELECT * FROM finish();
ROLLBACK;
