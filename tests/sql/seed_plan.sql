-- autopilot.seed_plan(items) (planning-seed): each item once, by its key; dependencies; items
-- already seeded left as they are; an invalid plan refused whole, naming the item.
-- (The plan file, the worker and the runner: tests/py/test_planning_seed.py.)
BEGIN;
SELECT plan(24);

SET LOCAL client_min_messages = warning;
TRUNCATE autopilot.tasks, autopilot.agents CASCADE;

SELECT has_function('autopilot', 'seed_plan', ARRAY['jsonb'], 'autopilot.seed_plan(jsonb) exists');
SELECT function_returns('autopilot', 'seed_plan', ARRAY['jsonb'], 'jsonb', 'seed_plan returns a jsonb summary');

CREATE TEMPORARY TABLE tap_plan (name text PRIMARY KEY, items jsonb) ON COMMIT DROP;
INSERT INTO tap_plan (name, items) VALUES
(
    'first',
    '[{"key": "audit", "title": "Audit the schema", "required_skills": ["sql"], "priority": 5,
       "details": {"ticket": "OPS-1"}},
      {"key": "review", "title": "Review the indexes", "required_skills": ["sql", "review"],
       "depends_on": ["audit"]}]'
),
(
    'extended',
    '[{"key": "audit", "title": "Audit the schema, again", "required_skills": ["sql"], "priority": 5,
       "details": {"ticket": "OPS-1"}},
      {"key": "review", "title": "Review the indexes", "required_skills": ["sql", "review"],
       "depends_on": ["audit"]},
      {"key": "report", "title": "Write the report", "depends_on": ["review", "audit", "audit"],
       "priority": null}]'
);

-- 1. a new plan
SELECT results_eq(
    $$SELECT (s ->> 'added')::int, (s ->> 'dependencies_added')::int, (s ->> 'existing')::int, s ->> 'message'
      FROM autopilot.seed_plan((SELECT items FROM tap_plan WHERE name = 'first')) AS s$$,
    $$VALUES (2, 1, 0, 'plan of 2 items: 2 tasks added (1 dependency), 0 already seeded'::text)$$,
    'a new plan: every item is added, with its dependency'
);
SELECT results_eq(
    $$SELECT plan_key, title, required_skills, priority, status, details FROM autopilot.tasks ORDER BY id$$,
    $$VALUES
        ('audit'::text, 'Audit the schema'::text, '{sql}'::text[], 5, 'pending'::text, '{"ticket": "OPS-1"}'::jsonb),
        ('review', 'Review the indexes', '{sql,review}', 0, 'pending', '{}')$$,
    'each item is a pending task with its fields (priority 0 and empty details by default), in plan order'
);
SELECT results_eq(
    $$SELECT t.plan_key, d.plan_key FROM autopilot.task_dependencies AS x
      INNER JOIN autopilot.tasks AS t ON x.task_id = t.id
      INNER JOIN autopilot.tasks AS d ON x.depends_on_task_id = d.id$$,
    $$VALUES ('review'::text, 'audit'::text)$$,
    'depends_on becomes a row of task_dependencies'
);

-- 2. the same plan again: nothing changes
SELECT results_eq(
    $$SELECT (s ->> 'added')::int, (s ->> 'existing')::int, s -> 'differing'
      FROM autopilot.seed_plan((SELECT items FROM tap_plan WHERE name = 'first')) AS s$$,
    $$VALUES (0, 2, '[]'::jsonb)$$,
    'seeding the same plan again adds nothing'
);
SELECT is((SELECT count(*) FROM autopilot.tasks), 2::bigint, '... still two tasks');

-- 3. progress is kept, the plan extended
INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at) VALUES ('dba', '{sql}', 1, now());
UPDATE autopilot.tasks SET status = 'running', agent_id = (SELECT id FROM autopilot.agents), started_at = now()
WHERE plan_key = 'audit';
SELECT results_eq(
    $$SELECT (s ->> 'added')::int, (s ->> 'dependencies_added')::int, (s ->> 'existing')::int,
             s -> 'differing', s ->> 'message'
      FROM autopilot.seed_plan((SELECT items FROM tap_plan WHERE name = 'extended')) AS s$$,
    $$VALUES (1, 2, 2, '["audit"]'::jsonb,
              'plan of 3 items: 1 task added (2 dependencies), 2 already seeded; '
              || '1 of them differs from the plan and is kept as seeded: "audit"')$$,
    'an extended plan adds only the new item; a changed item is named, not changed'
);
SELECT results_eq(
    $$SELECT plan_key, title, status, agent_id IS NOT NULL FROM autopilot.tasks ORDER BY id$$,
    $$VALUES ('audit'::text, 'Audit the schema'::text, 'running'::text, true),
             ('review', 'Review the indexes', 'pending', false),
             ('report', 'Write the report', 'pending', false)$$,
    'the running task keeps its title, status and agent; the new one is pending'
);
SELECT set_eq(
    $$SELECT d.plan_key FROM autopilot.task_dependencies AS x
      INNER JOIN autopilot.tasks AS t ON x.task_id = t.id
      INNER JOIN autopilot.tasks AS d ON x.depends_on_task_id = d.id
      WHERE t.plan_key = 'report'$$,
    ARRAY['review', 'audit'],
    'the new item depends on both (a key named twice counts once; a null field is absent)'
);
SELECT is(
    (
        SELECT priority FROM autopilot.tasks
        WHERE plan_key = 'report'
    ), 0, 'priority: null is the default'
);

-- 4. an item may depend on a task seeded by an earlier plan
SELECT is(
    (autopilot.seed_plan('[{"key": "follow-up", "title": "Follow up", "depends_on": ["report"]}]') ->> 'added')::int,
    1, 'a dependency on a task seeded before'
);

-- 5. invalid plans: refused whole, the item named
CREATE TEMPORARY TABLE tap_before ON COMMIT DROP AS SELECT count(*) AS n FROM autopilot.tasks;
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": "new-1", "title": "ok"}, {"key": "x", "title": "X", "titel": "typo"}]')$$,
    '22023', 'plan item "x": unknown field "titel"', 'an unknown field names the item and the field'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan(
        '[{"key": "a1", "title": "A"}, {"key": "b1", "title": "B"}, {"key": "a1", "title": "C"}]'
    )$$,
    '22023', 'plan item "a1" appears more than once (items #1, #3)', 'a duplicate key names both items'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": "x", "title": "X", "depends_on": ["z"]},
                                   {"key": "y", "title": "Y", "depends_on": ["x"]},
                                   {"key": "z", "title": "Z", "depends_on": ["y"]},
                                   {"key": "w", "title": "W", "depends_on": ["x"]}]')$$,
    '22023', 'plan items form a dependency cycle: "x" -> "z" -> "y" -> "x"', 'a cycle is named, arrow by arrow'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": "self", "title": "S", "depends_on": ["self"]}]')$$,
    '22023', 'plan items form a dependency cycle: "self" -> "self"', 'an item depending on itself is a cycle'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": "lost", "title": "L", "depends_on": ["nowhere"]}]')$$,
    '22023', 'plan item "lost" depends on "nowhere", which is neither in the plan nor seeded before',
    'an unknown dependency'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"title": "no key"}]')$$, '22023', 'plan item #1: no key', 'an item without a key'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": 7, "title": "T"}]')$$, '22023', NULL, 'a key that is not a string'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": "p", "title": "P", "priority": 2.5}]')$$,
    '22023', 'plan item "p": priority must be a whole number (a 32-bit integer)', 'a fractional priority'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[{"key": "s", "title": "S", "required_skills": "sql"}]')$$,
    '22023', 'plan item "s": required_skills must be a list of non-empty strings', 'skills that are not a list'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('[["not", "a", "mapping"]]')$$,
    '22023', 'plan item #1 is not a mapping of fields but a list', 'an item that is not a mapping'
);
SELECT throws_ok(
    $$SELECT autopilot.seed_plan('{"items": []}')$$, '22023', 'a plan is a list of items, not a mapping',
    'a plan that is not a list'
);
SELECT is((SELECT count(*) FROM autopilot.tasks), (SELECT n FROM tap_before), 'nothing was written by any of them');

SELECT * FROM finish();
ROLLBACK;
