-- autopilot.enqueue() and autopilot.enqueue_many(): jobs in, deduplicated by
-- unique key against unfinished jobs, announced with NOTIFY.
-- (50 concurrent enqueues of one unique job: tests/py/test_runner.py.)
BEGIN;
SELECT plan(22);

SELECT has_function('autopilot', 'enqueue', 'autopilot.enqueue() exists');
SELECT has_function('autopilot', 'enqueue_many', ARRAY['jsonb'], 'autopilot.enqueue_many(jsonb) exists');

CREATE TEMPORARY TABLE tap_ids (name text PRIMARY KEY, id bigint) ON COMMIT DROP;
INSERT INTO tap_ids VALUES ('plain', autopilot.enqueue('tap_worker', '{"n": 1}', 'tap'));
SELECT results_eq(
    $$SELECT worker, args, queue, state, priority, attempt, max_attempts, scheduled_at = now()
      FROM autopilot.jobs WHERE id = (SELECT id FROM tap_ids WHERE name = 'plain')$$,
    $$VALUES ('tap_worker'::text, '{"n": 1}'::jsonb, 'tap'::text, 'available'::text, 0::smallint, 0, 20, true)$$,
    'a job is available now, priority 0, no attempt yet, 20 attempts by default'
);

INSERT INTO tap_ids VALUES ('later', autopilot.enqueue(
    'tap_worker', p_queue => 'tap',
    p_scheduled_at => now() + interval '1 hour', p_priority => 3, p_max_attempts => 2, p_meta => '{"k": "v"}'
));
SELECT results_eq(
    $$SELECT state, scheduled_at - now(), priority, max_attempts, meta
      FROM autopilot.jobs WHERE id = (SELECT id FROM tap_ids WHERE name = 'later')$$,
    $$VALUES ('scheduled'::text, interval '1 hour', 3::smallint, 2, '{"k": "v"}'::jsonb)$$,
    'a job for later is scheduled, with its priority, attempts and meta'
);
INSERT INTO tap_ids VALUES ('past', autopilot.enqueue(
    'tap_worker', p_queue => 'tap',
    p_scheduled_at => now() - interval '1 day'
));
SELECT is(
    (
        SELECT j.state || ' ' || (j.scheduled_at = now())::text FROM autopilot.jobs AS j
        WHERE j.id = (
            SELECT t.id FROM tap_ids AS t
            WHERE t.name = 'past'
        )
    ),
    'available true', 'a run-at in the past means now'
);

-- unique keys
INSERT INTO tap_ids VALUES ('unique', autopilot.enqueue('tap_worker', p_queue => 'tap', p_unique_key => 'tap:one'));
SELECT is(
    autopilot.enqueue('tap_worker', '{"other": true}', 'tap', p_unique_key => 'tap:one'),
    (
        SELECT id FROM tap_ids
        WHERE name = 'unique'
    ),
    'a second enqueue with the key of an unfinished job returns that job'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE unique_key = 'tap:one'
    ), 1::bigint, '... and adds nothing'
);
UPDATE autopilot.jobs SET state = 'completed', completed_at = now()
WHERE id = (
    SELECT id FROM tap_ids
    WHERE name = 'unique'
);
SELECT isnt(
    autopilot.enqueue('tap_worker', p_queue => 'tap', p_unique_key => 'tap:one'),
    (
        SELECT id FROM tap_ids
        WHERE name = 'unique'
    ),
    'once that job is finished, the key is free: a new job'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.jobs
        WHERE unique_key = 'tap:one'
    ), 2::bigint, '... beside the finished one'
);

-- bad input
SELECT throws_ok($$SELECT autopilot.enqueue('')$$, '22023', 'a job needs a worker name', 'an empty worker: 22023');
SELECT throws_ok($$SELECT autopilot.enqueue(NULL)$$, '22023', NULL, 'no worker: 22023');
SELECT throws_ok(
    $$SELECT autopilot.enqueue('tap_worker', p_priority => 10)$$, '23514', NULL, 'priority 10 (0-9): check_violation'
);
SELECT throws_ok(
    $$SELECT autopilot.enqueue('tap_worker', p_max_attempts => 0)$$, '23514', NULL, 'max attempts 0: check_violation'
);
SELECT throws_ok(
    $$SELECT autopilot.enqueue('tap_worker', p_queue => '')$$, '23514', NULL, 'an empty queue name: check_violation'
);

-- many at once
CREATE TEMPORARY TABLE tap_many ON COMMIT DROP AS
SELECT ids.id
FROM autopilot.enqueue_many(
    '[{"worker": "tap_bulk", "queue": "tap", "args": {"i": 1}},
      {"worker": "tap_bulk", "queue": "tap", "args": {"i": 2}, "priority": 1},
      {"worker": "tap_bulk", "queue": "tap", "unique_key": "tap:one"},
      {"worker": "tap_bulk", "queue": "tap", "unique_key": "tap:two", "scheduled_at": "2999-01-01T00:00:00Z"}]'
) AS ids (id);
SELECT is((SELECT count(*) FROM tap_many), 3::bigint, 'enqueue_many adds what it can: 3 of 4 (one key is held)');
SELECT results_eq(
    $$SELECT j.args, j.priority, j.state FROM autopilot.jobs AS j JOIN tap_many AS m ON j.id = m.id
      ORDER BY j.id$$,
    $$VALUES ('{"i": 1}'::jsonb, 0::smallint, 'available'::text), ('{"i": 2}', 1::smallint, 'available'),
             ('{}', 0::smallint, 'scheduled')$$,
    '... each with its own args, priority and state'
);
SELECT throws_ok(
    $$SELECT autopilot.enqueue_many('{"worker": "x"}')$$, '22023', NULL, 'enqueue_many takes an array'
);
SELECT throws_ok(
    $$SELECT autopilot.enqueue_many('[{"args": {}}]')$$, '23502', NULL, 'a job without a worker: not_null_violation'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.enqueue_many('[]')$$, 'an empty array adds nothing'
);

-- NOTIFY: one per queue with jobs ready now, delivered at commit (pg_notification_queue_usage
-- cannot see it before): what enqueue and enqueue_many announce is tested in
-- tests/py/test_queue_notify.py; retries and rescues by the update trigger
SELECT hasnt_trigger(
    'autopilot', 'jobs', 'jobs_notify_insert_trg', 'no INSERT trigger: the enqueue functions NOTIFY themselves'
);
SELECT has_trigger('autopilot', 'jobs', 'jobs_notify_update_trg', 'jobs: retries and rescues NOTIFY');
SELECT trigger_is(
    'autopilot', 'jobs', 'jobs_notify_update_trg', 'autopilot', '_notify_jobs_available',
    'the update trigger calls _notify_jobs_available'
);

SELECT * FROM finish();
ROLLBACK;
