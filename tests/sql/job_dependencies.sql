-- Job dependencies (autopilot.jobs.depends_on): enqueue() and enqueue_many() make a job
-- waiting until the jobs it names have completed; complete_many() releases it; a discarded
-- dependency holds it until retried; cancel() and old-job-cleanup know waiting jobs.
-- (A dependency completing while a dependent is enqueued: tests/py/test_queue.py.)
BEGIN;
SELECT plan(17);

SELECT has_function(
    'autopilot', '_dependencies_met', ARRAY['bigint[]'], 'autopilot._dependencies_met(bigint[]) exists'
);
SELECT has_function(
    'autopilot', '_release_dependents', ARRAY['bigint[]'], 'autopilot._release_dependents(bigint[]) exists'
);
CREATE TEMPORARY TABLE tap_ids (name text PRIMARY KEY, id bigint);
INSERT INTO tap_ids VALUES ('a', autopilot.enqueue('w', '{"n": "a"}', 'tap'));
INSERT INTO tap_ids VALUES ('b', autopilot.enqueue('w', '{"n": "b"}', 'tap'));
CREATE FUNCTION pg_temp.id(p_name text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM tap_ids WHERE name = p_name
$$;
CREATE FUNCTION pg_temp.state(p_name text) RETURNS text LANGUAGE sql AS $$
    SELECT state FROM autopilot.jobs WHERE id = (SELECT id FROM tap_ids WHERE name = p_name)
$$;
INSERT INTO tap_ids VALUES ('c', autopilot.enqueue(
    'w', '{"n": "c"}', 'tap', p_depends_on => ARRAY[pg_temp.id('a'), pg_temp.id('b')]
));
INSERT INTO tap_ids VALUES ('none', autopilot.enqueue('w', '{"n": "none"}', 'tap', p_depends_on => '{}'));

SELECT is(pg_temp.state('c'), 'waiting', 'a job with unfinished dependencies is waiting');
SELECT is(
    (
        SELECT depends_on FROM autopilot.jobs
        WHERE id = pg_temp.id('none')
    ), NULL,
    'an empty depends_on is none: available at once'
);
SELECT is(
    (SELECT array_agg(c.args ->> 'n' ORDER BY c.id) FROM autopilot.claim('tap', 'node-1', 10) AS c),
    ARRAY['a', 'b', 'none'], 'claim never takes a waiting job'
);
SELECT is(autopilot.complete(pg_temp.id('a'), 1), true, 'one dependency completes');
SELECT is(pg_temp.state('c'), 'waiting', '... the job still waits for the other');
SELECT is(autopilot.fail(pg_temp.id('b'), 1, 'broken', true), 'discarded', 'the other is discarded');
SELECT is(pg_temp.state('c'), 'waiting', '... and holds the job');

-- old-job-cleanup keeps a job that a waiting job depends on, long past its retention
UPDATE autopilot.jobs SET discarded_at = now() - interval '1 year'
WHERE id = pg_temp.id('b');
SELECT autopilot._cleanup_old_jobs_batch('{}', 100);
SELECT ok(
    EXISTS (
        SELECT FROM autopilot.jobs
        WHERE id = pg_temp.id('b')
    ),
    'old-job-cleanup keeps a discarded job that a waiting job depends on'
);

SELECT is(autopilot.retry(pg_temp.id('b')), true, 'retrying the discarded dependency...');
SELECT is(
    autopilot.complete(pg_temp.id('b'), (SELECT attempt FROM autopilot.claim('tap', 'node-1', 1))),
    true, '... which then completes'
);
SELECT is(pg_temp.state('c'), 'available', '... releases the waiting job');

-- enqueue_many: depends_on per job; an unknown dependency is an error naming it
CREATE TEMPORARY TABLE tap_many AS
SELECT m.id
FROM autopilot.enqueue_many(format(
    '[{"worker": "w", "queue": "tap", "depends_on": [%s]},'
    ' {"worker": "w", "queue": "tap", "depends_on": [%s]}, {"worker": "w", "queue": "tap"}]',
    pg_temp.id('a'), pg_temp.id('c')
)::jsonb) AS m (id);
SELECT is(
    (SELECT array_agg(j.state ORDER BY j.id) FROM tap_many AS m INNER JOIN autopilot.jobs AS j ON m.id = j.id),
    ARRAY['available', 'waiting', 'available'],
    'enqueue_many: a job whose dependencies completed is available, one whose did not is waiting'
);
SELECT throws_ok(
    $$SELECT autopilot.enqueue('w', p_depends_on => ARRAY[-1]::bigint[])$$,
    '23503', 'job -1 named as a dependency does not exist', 'an unknown dependency: foreign_key_violation'
);

-- cancel: a waiting job can be cancelled; retry of a job whose dependencies are unfinished: waiting
INSERT INTO tap_ids VALUES ('d', autopilot.enqueue('w', '{"n": "d"}', 'tap', p_depends_on => ARRAY[pg_temp.id('c')]));
SELECT is(autopilot.cancel(pg_temp.id('d'), 'not needed'), true, 'a waiting job can be cancelled');
SELECT is(
    autopilot.retry(pg_temp.id('d')) AND pg_temp.state('d') = 'waiting', true,
    'retrying a job whose dependencies are unfinished makes it wait again'
);

SELECT * FROM finish();
ROLLBACK;
