-- What the schema guarantees about agents and their tasks, whoever writes them
-- (autopilot._track_agent_load on tasks, autopilot._guard_agent on agents):
-- agents.active_tasks counts the assigned and running tasks, never exceeds
-- capacity, and a held task's skills are always among its agent's.
BEGIN;
SELECT plan(27);

-- TRUNCATE ... CASCADE names every table it reaches: keep the TAP output clean
SET LOCAL client_min_messages = warning;

TRUNCATE autopilot.tasks, autopilot.agents CASCADE;

CREATE FUNCTION pg_temp.agent(p_name text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM autopilot.agents WHERE name = p_name
$$;
CREATE FUNCTION pg_temp.held(p_name text) RETURNS integer LANGUAGE sql AS $$
    SELECT active_tasks FROM autopilot.agents WHERE name = p_name
$$;

SELECT col_not_null('autopilot', 'agents', 'active_tasks', 'agents.active_tasks is NOT NULL');
SELECT col_has_check(
    'autopilot', 'agents', ARRAY['active_tasks', 'capacity'], 'agents_active_tasks_check: 0 <= active_tasks <= capacity'
);

-- a new agent holds nothing, whatever the INSERT says
INSERT INTO autopilot.agents (name, skills, capacity, active_tasks) VALUES ('coder', '{elixir,sql}', 3, 7);
INSERT INTO autopilot.agents (name, skills, capacity) VALUES ('reviewer', '{review}', 1), ('idle', '{elixir,sql}', 0);
SELECT is(pg_temp.held('coder'), 0, 'a new agent starts at active_tasks 0 (an INSERT cannot set it)');

-- the count follows every change
INSERT INTO autopilot.tasks (title, required_skills, status, agent_id)
VALUES ('a', '{sql}', 'assigned', pg_temp.agent('coder')), ('b', '{}', 'running', pg_temp.agent('coder')),
('pending with an agent', '{}', 'pending', pg_temp.agent('coder'));
SELECT is(pg_temp.held('coder'), 2, 'inserted assigned and running tasks count; a pending one does not');
UPDATE autopilot.tasks SET status = 'running', started_at = now()
WHERE title = 'a';
SELECT is(pg_temp.held('coder'), 2, 'assigned -> running: still held');
UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now()
WHERE title = 'a';
SELECT is(pg_temp.held('coder'), 1, 'running -> succeeded: no longer held');
UPDATE autopilot.tasks SET details = '{"progress": 50}'
WHERE title = 'b';
SELECT is(pg_temp.held('coder'), 1, 'an update that changes neither status nor agent changes nothing');
UPDATE autopilot.tasks SET agent_id = pg_temp.agent('reviewer')
WHERE title = 'b';
SELECT results_eq(
    $$SELECT pg_temp.held('coder'), pg_temp.held('reviewer')$$, $$VALUES (0, 1)$$,
    'moving a held task to another agent moves the count'
);
DELETE FROM autopilot.tasks
WHERE title = 'b';
SELECT is(pg_temp.held('reviewer'), 0, 'deleting a held task releases it');
INSERT INTO autopilot.tasks (title, status, agent_id)
SELECT
    'bulk ' || g AS title,
    'assigned' AS status,
    pg_temp.agent('coder') AS agent_id
FROM generate_series(1, 3) AS g;
SELECT is(pg_temp.held('coder'), 3, 'a multi-row statement counts every row');
TRUNCATE autopilot.tasks CASCADE;
SELECT is(
    (SELECT sum(active_tasks)::integer FROM autopilot.agents), 0, 'TRUNCATE of the tasks: nobody holds anything'
);

-- capacity: never exceeded, by any statement
INSERT INTO autopilot.tasks (title, status, agent_id)
SELECT
    'fill ' || g AS title,
    'assigned' AS status,
    pg_temp.agent('coder') AS agent_id
FROM generate_series(1, 3) AS g;
SELECT throws_ok(
    $$INSERT INTO autopilot.tasks (title, status, agent_id)
      VALUES ('one too many', 'assigned', pg_temp.agent('coder'))$$,
    '23514', NULL, 'a fourth task for an agent of capacity 3 is refused (check_violation)'
);
INSERT INTO autopilot.tasks (title) VALUES ('waiting');
SELECT throws_ok(
    $$UPDATE autopilot.tasks SET status = 'assigned', agent_id = pg_temp.agent('coder') WHERE title = 'waiting'$$,
    '23514', NULL, '... and so is assigning one by UPDATE'
);
SELECT throws_ok(
    $$UPDATE autopilot.tasks SET status = 'assigned', agent_id = pg_temp.agent('idle') WHERE title = 'waiting'$$,
    '23514', NULL, 'an agent with capacity 0 can hold no task'
);
SELECT throws_ok(
    $$UPDATE autopilot.tasks SET agent_id = pg_temp.agent('reviewer') WHERE title LIKE 'fill %'$$,
    '23514', NULL, 'moving three held tasks to an agent of capacity 1 is refused as a whole'
);
SELECT is(pg_temp.held('coder'), 3, '... and nothing moved');
SELECT throws_ok(
    $$UPDATE autopilot.agents SET capacity = 2 WHERE name = 'coder'$$,
    '23514', NULL, 'capacity cannot drop below the tasks the agent holds'
);
SELECT lives_ok(
    $$UPDATE autopilot.agents SET capacity = 5 WHERE name = 'coder'$$,
    'capacity can be raised'
);
SELECT lives_ok(
    $$UPDATE autopilot.tasks SET status = 'assigned', agent_id = pg_temp.agent('coder') WHERE title = 'waiting'$$,
    '... and then the task fits'
);
SELECT throws_ok(
    $$UPDATE autopilot.agents SET active_tasks = 0 WHERE name = 'coder'$$,
    '428C9', NULL, 'active_tasks cannot be set directly (generated_always)'
);

-- skills: a held task's required skills are all among its agent's
SELECT throws_ok(
    $$INSERT INTO autopilot.tasks (title, required_skills, status, agent_id)
      VALUES ('review it', '{review}', 'assigned', pg_temp.agent('coder'))$$,
    '23514', NULL, 'a task cannot be given to an agent without its skills'
);
SELECT throws_ok(
    $$UPDATE autopilot.tasks SET required_skills = '{sql,rust}' WHERE title = 'fill 1'$$,
    '23514', NULL, 'a held task cannot be made to require a skill its agent lacks'
);
SELECT lives_ok(
    $$INSERT INTO autopilot.tasks (title, required_skills) VALUES ('later', '{cobol}')$$,
    'a pending task may require any skill'
);
UPDATE autopilot.tasks SET required_skills = '{elixir}'
WHERE title = 'fill 2';
SELECT throws_ok(
    $$UPDATE autopilot.agents SET skills = '{sql}' WHERE name = 'coder'$$,
    '23514', NULL, 'an agent cannot lose a skill a task it holds requires'
);
SELECT lives_ok(
    $$UPDATE autopilot.agents SET skills = '{elixir,sql,rust}' WHERE name = 'coder'$$,
    'an agent can gain skills'
);
UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now()
WHERE title = 'fill 2';
SELECT lives_ok(
    $$UPDATE autopilot.agents SET skills = '{sql,rust}' WHERE name = 'coder'$$,
    '... and lose one no held task requires (finished tasks do not count)'
);
SELECT results_eq(
    $$SELECT a.name, a.active_tasks,
             (SELECT count(*)::integer FROM autopilot.tasks AS t
              WHERE t.agent_id = a.id AND t.status IN ('assigned', 'running'))
      FROM autopilot.agents AS a ORDER BY a.id$$,
    $$VALUES ('coder'::text, 3, 3), ('reviewer', 0, 0), ('idle', 0, 0)$$,
    'after all that, active_tasks is exactly the count of held tasks'
);

SELECT * FROM finish();
ROLLBACK;
