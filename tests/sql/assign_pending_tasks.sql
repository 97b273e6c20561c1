-- autopilot.assign_pending_tasks() (task-assignment): priority and age order,
-- skills, capacity, the least-loaded agent, capacity 0, unassignable tasks,
-- tasks taken back from silent agents, the summary and its notifications,
-- dependencies (autopilot.task_dependencies).
-- (Delivery of the NOTIFYs, concurrent runs and the sequential-greedy property
-- on random inputs: tests/py/test_task_assignment.py.)
BEGIN;
SELECT plan(45);

-- TRUNCATE ... CASCADE names every table it reaches: keep the TAP output clean
SET LOCAL client_min_messages = warning;

-- pg_cron runs task-assignment in this database every 2 minutes: hold the job's lock, so that a
-- scheduled run neither waits on this test's tables while holding it nor makes run_job skip
SELECT pg_advisory_xact_lock(autopilot._job_lock_key('task-assignment'));

SELECT has_function(
    'autopilot', 'assign_pending_tasks', ARRAY[]::text[], 'autopilot.assign_pending_tasks() exists'
);
SELECT function_returns(
    'autopilot', 'assign_pending_tasks', ARRAY[]::text[], 'jsonb', 'assign_pending_tasks returns a jsonb summary'
);
SELECT is(
    autopilot.get_setting('agents.silence_timeout')::interval, interval '10 minutes',
    'agents.silence_timeout defaults to 10 minutes'
);

CREATE TEMPORARY TABLE tap_summary (scenario text PRIMARY KEY, summary jsonb) ON COMMIT DROP;

-- an agent's name -> its id, a task's title -> its agent's name
CREATE FUNCTION pg_temp.agent_of(p_title text) RETURNS text LANGUAGE sql AS $$
    SELECT a.name FROM autopilot.tasks AS t LEFT JOIN autopilot.agents AS a ON t.agent_id = a.id
    WHERE t.title = p_title
$$;

-- ---------------------------------------------------------------------------
-- 1. highest priority first, then oldest, then lowest id
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('solo', 3, now());
INSERT INTO autopilot.tasks (title, priority, created_at) VALUES
('low, oldest', 1, now() - interval '1 hour'),
('high, new', 5, now() - interval '1 minute'),
('mid', 3, now() - interval '20 minutes'),
('high, old', 5, now() - interval '5 minutes'),
('high, new, same age, higher id', 5, now() - interval '1 minute');

INSERT INTO tap_summary (scenario, summary) VALUES ('order', autopilot.assign_pending_tasks());

SELECT set_eq(
    $$SELECT title FROM autopilot.tasks WHERE status = 'assigned'$$,
    ARRAY['high, old', 'high, new', 'high, new, same age, higher id'],
    'three slots: the three highest-priority tasks get them'
);
SELECT results_eq(
    $$SELECT status, agent_id IS NULL, assigned_at IS NULL FROM autopilot.tasks
      WHERE title IN ('low, oldest', 'mid') ORDER BY title$$,
    $$VALUES ('pending'::text, true, true), ('pending'::text, true, true)$$,
    'lower priorities wait, however old'
);
SELECT is_empty(
    $$SELECT title FROM autopilot.tasks
      WHERE status = 'assigned' AND (pg_temp.agent_of(title) <> 'solo' OR assigned_at <> now())$$,
    'an assigned task has its agent and assigned_at'
);
UPDATE autopilot.agents SET capacity = 4
WHERE name = 'solo';
SELECT is(
    (autopilot.assign_pending_tasks() ->> 'assigned')::integer, 1, 'one more slot: one more task'
);
SELECT is(pg_temp.agent_of('mid'), 'solo', '... the next in priority order (mid), not the oldest');
SELECT results_eq(
    $$SELECT (summary ->> 'rows_affected')::bigint, summary ->> 'message', (summary ->> 'pending')::bigint,
             (summary ->> 'waiting')::bigint
      FROM tap_summary WHERE scenario = 'order'$$,
    $$VALUES (
        3::bigint,
        'assigned 3 tasks to 1 agent; 0 taken back from silent agents; 2 still pending (0 unassignable)'::text,
        2::bigint, 2::bigint
    )$$,
    'the summary: rows_affected, a message, and the tasks still pending (waiting for a free slot)'
);

-- ---------------------------------------------------------------------------
-- 2. skills: every required skill, as a set; unassignable tasks stay pending
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at, status) VALUES
('sql only', '{sql}', 5, now(), 'active'),
('elixir and sql', '{sql,elixir}', 5, now(), 'active'),
('paused cobol', '{cobol}', 5, now(), 'paused');
INSERT INTO autopilot.tasks (title, required_skills, created_at) VALUES
('needs both', '{elixir,sql}', now() - interval '4 minutes'),
('needs elixir, twice', '{elixir,elixir}', now() - interval '3 minutes'),
('needs sql', '{sql}', now() - interval '2 minutes'),
('needs cobol', '{cobol}', now() - interval '1 minute'),
('needs a skill nobody has', '{fortran,sql}', now());

INSERT INTO tap_summary (scenario, summary) VALUES ('skills', autopilot.assign_pending_tasks());

SELECT is(pg_temp.agent_of('needs both'), 'elixir and sql', 'a task goes only to an agent with every skill');
SELECT is(
    pg_temp.agent_of('needs elixir, twice'), 'elixir and sql',
    'required skills are a set: {elixir,elixir} needs elixir'
);
SELECT is(
    pg_temp.agent_of('needs sql'), 'sql only',
    'a task both agents can do goes to the less loaded one (sql only: 0 of 5 against 2 of 5)'
);
SELECT results_eq(
    $$SELECT title, status FROM autopilot.tasks WHERE title ~ 'cobol|nobody' ORDER BY title$$,
    $$VALUES ('needs a skill nobody has'::text, 'pending'::text), ('needs cobol'::text, 'pending'::text)$$,
    'tasks no active agent can do stay pending (a paused agent''s skills do not count)'
);
SELECT results_eq(
    $$SELECT (summary ->> 'assigned')::int, (summary ->> 'unassignable')::int, (summary ->> 'waiting')::int,
             summary ->> 'message'
      FROM tap_summary WHERE scenario = 'skills'$$,
    $$VALUES (
        3, 2, 0, 'assigned 3 tasks to 2 agents; 0 taken back from silent agents; 2 still pending (2 unassignable)'::text
    )$$,
    'the summary counts them as unassignable, not as waiting'
);
SELECT is_empty(
    $$SELECT t.title FROM autopilot.tasks AS t INNER JOIN autopilot.agents AS a ON t.agent_id = a.id
      WHERE NOT t.required_skills <@ a.skills$$,
    'no task is held by an agent without its skills'
);

-- ---------------------------------------------------------------------------
-- 3. capacity and the least-loaded agent: lowest active_tasks / capacity, then lowest id
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES
('big', 4, now()), ('small', 2, now()), ('twin', 2, now()), ('zero', 0, now());
INSERT INTO autopilot.tasks (title, status, agent_id)
SELECT
    'running on big ' || g.n AS title,
    'running' AS status,
    a.id AS agent_id
FROM autopilot.agents AS a
CROSS JOIN generate_series(1, 2) AS g (n)
WHERE a.name = 'big';
INSERT INTO autopilot.tasks (title, created_at)
SELECT
    't' || g AS title,
    now() - interval '1 hour' + g * interval '1 minute' AS created_at
FROM generate_series(1, 7) AS g;

INSERT INTO tap_summary (scenario, summary) VALUES ('capacity', autopilot.assign_pending_tasks());

-- big 2/4, small 0/2, twin 0/2: t1 small (0, lower id), t2 twin (0), t3 big (1/2, lowest id),
-- t4 small (1/2), t5 twin (1/2), t6 big (3/4), t7 waits: everyone is full
SELECT results_eq(
    $$SELECT title, pg_temp.agent_of(title) FROM autopilot.tasks WHERE title ~ '^t\d$' ORDER BY title$$,
    $$VALUES ('t1'::text, 'small'::text), ('t2', 'twin'), ('t3', 'big'), ('t4', 'small'), ('t5', 'twin'),
             ('t6', 'big'), ('t7', NULL)$$,
    'each task goes to the least-loaded agent (load ratio, then id); the last one waits'
);
SELECT results_eq(
    $$SELECT name, active_tasks, capacity FROM autopilot.agents ORDER BY id$$,
    $$VALUES ('big'::text, 4, 4), ('small', 2, 2), ('twin', 2, 2), ('zero', 0, 0)$$,
    'every agent is filled to its capacity and not beyond; capacity 0 gets nothing'
);
SELECT results_eq(
    $$SELECT (summary ->> 'assigned')::int, (summary ->> 'agents')::int, (summary ->> 'waiting')::int,
             (summary ->> 'unassignable')::int, (summary ->> 'notifications')::int
      FROM tap_summary WHERE scenario = 'capacity'$$,
    $$VALUES (6, 3, 1, 0, 3)$$,
    'summary: 6 assigned to 3 agents (one notification each), 1 waiting'
);
SELECT is(
    autopilot.assign_pending_tasks() ->> 'assigned', '0', 'a second run with every agent full assigns nothing'
);

-- an agent with capacity 0 never gets a task, even when it is the only one with the skill
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at) VALUES ('zero', '{rare}', 0, now());
INSERT INTO autopilot.tasks (title, required_skills) VALUES ('rare', '{rare}'), ('any', '{}');
SELECT results_eq(
    $$SELECT (s ->> 'assigned')::int, (s ->> 'unassignable')::int
      FROM autopilot.assign_pending_tasks() AS s$$,
    $$VALUES (0, 2)$$,
    'capacity 0: no task, and tasks only it could do are unassignable'
);

-- ---------------------------------------------------------------------------
-- 4. only active agents seen within agents.silence_timeout get tasks
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, status, last_seen_at) VALUES
('paused', 5, 'paused', now()),
('retired', 5, 'retired', now()),
('never seen', 5, 'active', NULL),
('silent', 5, 'active', now() - interval '11 minutes'),
('seen 9 minutes ago', 1, 'active', now() - interval '9 minutes');
INSERT INTO autopilot.tasks (title, created_at) VALUES ('first', now() - interval '2 minutes'), ('second', now());
SELECT results_eq(
    $$SELECT (s ->> 'assigned')::int, (s ->> 'waiting')::int FROM autopilot.assign_pending_tasks() AS s$$,
    $$VALUES (1, 1)$$,
    'paused, retired, never seen and silent agents get nothing'
);
SELECT is(pg_temp.agent_of('first'), 'seen 9 minutes ago', '... the one recently seen agent gets the first task');

-- ---------------------------------------------------------------------------
-- 5. tasks assigned to silent agents go back to pending first (running ones stay)
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES
('ghost', 3, now() - interval '30 minutes'),
('never seen', 3, NULL),
('alive', 1, now());
INSERT INTO autopilot.tasks (title, status, agent_id, assigned_at, started_at, created_at)
SELECT
    v.title,
    v.status,
    a.id AS agent_id,
    now() - interval '40 minutes' AS assigned_at,
    v.started_at,
    now() - v.age AS created_at
FROM (
    VALUES
    ('ghost assigned', 'assigned', 'ghost', NULL::timestamptz, interval '3 hours'),
    ('ghost running', 'running', 'ghost', now() - interval '35 minutes', interval '4 hours'),
    ('never seen assigned', 'assigned', 'never seen', NULL, interval '2 hours')
) AS v (title, status, agent, started_at, age)
INNER JOIN autopilot.agents AS a ON v.agent = a.name;

-- with a one-hour timeout, only the agent never seen is silent
SELECT autopilot.set_setting('agents.silence_timeout', '1 hour');
INSERT INTO tap_summary (scenario, summary) VALUES ('reclaim 1h', autopilot.assign_pending_tasks());
SELECT results_eq(
    $$SELECT (summary ->> 'reclaimed')::int, (summary ->> 'assigned')::int FROM tap_summary
      WHERE scenario = 'reclaim 1h'$$,
    $$VALUES (1, 1)$$,
    'agents.silence_timeout 1 hour: the task of the agent never seen (last_seen_at NULL) is taken back...'
);
SELECT is(
    pg_temp.agent_of('never seen assigned'), 'alive',
    '... and, pending again, given in the same run to an agent that is alive'
);
SELECT is(pg_temp.agent_of('ghost assigned'), 'ghost', 'the ghost (seen 30 minutes ago) keeps its task');

-- back to 10 minutes: the ghost is silent
SELECT autopilot.reset_setting('agents.silence_timeout');
INSERT INTO tap_summary (scenario, summary) VALUES ('reclaim', autopilot.assign_pending_tasks());
SELECT results_eq(
    $$SELECT status, agent_id, assigned_at FROM autopilot.tasks WHERE title = 'ghost assigned'$$,
    $$VALUES ('pending'::text, NULL::bigint, NULL::timestamptz)$$,
    'the silent agent''s assigned task is pending again, agent_id and assigned_at cleared'
);
SELECT results_eq(
    $$SELECT status, pg_temp.agent_of(title) FROM autopilot.tasks WHERE title = 'ghost running'$$,
    $$VALUES ('running'::text, 'ghost'::text)$$,
    'its running task stays: it may have started work'
);
SELECT results_eq(
    $$SELECT (summary ->> 'reclaimed')::int, (summary ->> 'assigned')::int, (summary ->> 'waiting')::int
      FROM tap_summary WHERE scenario = 'reclaim'$$,
    $$VALUES (1, 0, 1)$$,
    'the summary counts it; it waits (the only live agent is full)'
);
SELECT results_eq(
    $$SELECT name, active_tasks FROM autopilot.agents ORDER BY id$$,
    $$VALUES ('ghost'::text, 1), ('never seen', 0), ('alive', 1)$$,
    'the agents'' active_tasks follow'
);

-- ---------------------------------------------------------------------------
-- 6. notifications: one per agent and at most 256 task ids each
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('busy', 300, now()), ('never seen', 1, NULL);
INSERT INTO autopilot.tasks (title) SELECT 'bulk ' || g FROM generate_series(1, 300) AS g;
SELECT results_eq(
    $$SELECT (s ->> 'assigned')::int, (s ->> 'agents')::int, (s ->> 'notifications')::int
      FROM autopilot.assign_pending_tasks() AS s$$,
    $$VALUES (300, 1, 2)$$,
    '300 tasks for one agent: two notifications (256 task ids, then 44)'
);

-- ---------------------------------------------------------------------------
-- 7. the catalog job
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('cron', 2, now());
INSERT INTO autopilot.tasks (title) VALUES ('a'), ('b'), ('c');
SELECT is(
    (
        SELECT unavailable_reason FROM autopilot.job_definitions
        WHERE name = 'task-assignment'
    ), NULL,
    'task-assignment can run in this version'
);
CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS SELECT * FROM autopilot.run_job('task-assignment');
SELECT results_eq(
    $$SELECT status, rows_affected, message FROM tap_run$$,
    $$VALUES ('succeeded'::text, 2::bigint,
              'assigned 2 tasks to 1 agent; 0 taken back from silent agents; 1 still pending (0 unassignable)'::text)$$,
    'run_job(''task-assignment''): succeeded, rows_affected = tasks assigned, the message'
);
SELECT results_eq(
    $$SELECT (details ->> 'waiting')::int, (details ->> 'notifications')::int, (details ->> 'batches')::int
      FROM tap_run$$,
    $$VALUES (1, 1, 1)$$,
    'the summary''s other keys land in the ledger''s details'
);

-- ---------------------------------------------------------------------------
-- 8. tasks held elsewhere are not touched; a task's agent never changes behind its back
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('one', 5, now()), ('two', 5, now());
INSERT INTO autopilot.tasks (title, status, agent_id, finished_at)
SELECT
    v.title,
    v.status,
    a.id,
    v.finished_at
FROM (
    VALUES
    ('held by two', 'assigned', NULL::timestamptz),
    ('done by two', 'succeeded', now()),
    ('failed by two', 'failed', now())
) AS v (title, status, finished_at)
CROSS JOIN autopilot.agents AS a
WHERE a.name = 'two';
INSERT INTO autopilot.tasks (title, status) VALUES ('cancelled', 'cancelled'), ('new', 'pending');
SELECT is((autopilot.assign_pending_tasks() ->> 'assigned')::int, 1, 'only the pending task is assigned');
SELECT results_eq(
    $$SELECT title, status, pg_temp.agent_of(title) FROM autopilot.tasks ORDER BY title$$,
    $$VALUES ('cancelled'::text, 'cancelled'::text, NULL::text), ('done by two', 'succeeded', 'two'),
             ('failed by two', 'failed', 'two'), ('held by two', 'assigned', 'two'), ('new', 'assigned', 'one')$$,
    'assigned, finished and cancelled tasks keep their state and agent; the new one goes to the less loaded agent'
);

-- ---------------------------------------------------------------------------
-- 9. nothing to do
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'message' FROM autopilot.assign_pending_tasks() AS s$$,
    $$VALUES (
        '0'::text, 'assigned 0 tasks to 0 agents; 0 taken back from silent agents; 0 still pending (0 unassignable)'::text
    )$$,
    'no agents, no tasks: a run that does nothing'
);
INSERT INTO autopilot.tasks (title) VALUES ('lonely');
SELECT results_eq(
    $$SELECT (s ->> 'assigned')::int, (s ->> 'unassignable')::int FROM autopilot.assign_pending_tasks() AS s$$,
    $$VALUES (0, 1)$$,
    'tasks but no agent: unassignable'
);
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('late', 1, now());
SELECT is(
    (autopilot.assign_pending_tasks() ->> 'assigned')::int, 1, 'an agent arrives: the task is assigned'
);

-- ---------------------------------------------------------------------------
-- 10. dependencies: a task waits until every task it depends on has succeeded
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;
INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('worker', 10, now());
INSERT INTO autopilot.tasks (title, priority) VALUES ('first', 0), ('second', 9), ('third', 9), ('free', 0);
INSERT INTO autopilot.task_dependencies (task_id, depends_on_task_id)
SELECT
    t.id AS task_id,
    d.id AS depends_on_task_id
FROM autopilot.tasks AS t
INNER JOIN autopilot.tasks AS d ON (t.title, d.title) IN (('second', 'first'), ('third', 'first'), ('third', 'second'));
SELECT results_eq(
    $$SELECT (s ->> 'assigned')::int, (s ->> 'blocked')::int, (s ->> 'pending')::int, s ->> 'message'
      FROM autopilot.assign_pending_tasks() AS s$$,
    $$VALUES (2, 2, 2, 'assigned 2 tasks to 1 agent; 0 taken back from silent agents; 2 still pending '
                       || '(0 unassignable, 2 waiting for their dependencies)')$$,
    'tasks whose dependencies have not succeeded are blocked, however high their priority; the others go'
);
SELECT set_eq(
    $$SELECT title FROM autopilot.tasks WHERE status = 'assigned'$$, ARRAY['first', 'free'],
    'only the tasks without unfinished dependencies are assigned'
);
UPDATE autopilot.tasks SET status = 'running', started_at = now()
WHERE title = 'first';
SELECT is(
    (autopilot.assign_pending_tasks() ->> 'assigned')::int, 0, 'a running dependency still blocks'
);
UPDATE autopilot.tasks SET status = 'failed', finished_at = now()
WHERE title = 'first';
SELECT is(
    (autopilot.assign_pending_tasks() ->> 'blocked')::int, 2, 'a failed dependency blocks too (it may be retried)'
);
UPDATE autopilot.tasks SET status = 'succeeded'
WHERE title = 'first';
SELECT is(
    (autopilot.assign_pending_tasks() ->> 'assigned')::int, 1,
    'the dependency succeeded: second goes; third still waits for second'
);
SELECT is(pg_temp.agent_of('third'), NULL, '... third is not assigned');
UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now()
WHERE title = 'second';
DELETE FROM autopilot.tasks
WHERE title = 'free';
SELECT is(
    (autopilot.assign_pending_tasks() ->> 'assigned')::int, 1, 'every dependency succeeded: third goes'
);

SELECT * FROM finish();
ROLLBACK;
