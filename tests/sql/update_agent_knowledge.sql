-- autopilot.update_agent_knowledge(): the agent-knowledge-update job, and the
-- statement triggers on autopilot.tasks that feed it. Inside one transaction
-- no other transaction ends, so "a change committed earlier" is simulated by
-- rows with a small xid (analysis rows, pending rows) and by moving the
-- watermarks back; tests/py/test_pattern_learning.py does it with real sessions.
BEGIN;
SELECT plan(40);

SELECT has_function(
    'autopilot', 'update_agent_knowledge', ARRAY[]::text[], 'autopilot.update_agent_knowledge() exists'
);
SELECT function_returns(
    'autopilot', 'update_agent_knowledge', ARRAY[]::text[], 'jsonb',
    'update_agent_knowledge() returns the jsonb summary of a function job'
);
SELECT results_eq(
    $$SELECT name, value_type, default_value, min_value, max_value FROM autopilot.settings
      WHERE name LIKE 'agent\_knowledge.%' ORDER BY name$$,
    $$VALUES ('agent_knowledge.patterns_met_limit'::text, 'integer'::text, '200'::text, '1'::text, '100000'::text),
             ('agent_knowledge.top_patterns', 'integer', '10', '1', '1000')$$,
    'two typed, ranged settings: how many top patterns per type, how many patterns met'
);
SELECT throws_ok(
    $$SELECT autopilot.set_setting('agent_knowledge.top_patterns', '0')$$,
    '22023', NULL, 'agent_knowledge.top_patterns is at least 1'
);

DELETE FROM autopilot.learning_watermarks;
DELETE FROM autopilot.agent_knowledge;
DELETE FROM autopilot.learned_patterns;
DELETE FROM autopilot.analysis_results;

INSERT INTO autopilot.agents (name, skills, capacity)
VALUES ('tap-ada', '{sql,elixir}', 3), ('tap-bob', '{security}', 1), ('tap-cy', '{}', 1);
CREATE FUNCTION pg_temp.tap_agent(p_name text) RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT a.id FROM autopilot.agents AS a WHERE a.name = p_name $$;

-- the triggers: finished tasks queue their agent, other states do not
DELETE FROM autopilot.agent_knowledge_pending;
INSERT INTO autopilot.tasks (title, required_skills, status, agent_id)
SELECT
    'tap-' || t.title AS title,
    t.skills AS required_skills,
    t.status,
    pg_temp.tap_agent(t.agent) AS agent_id
FROM (
    VALUES
    ('t1', '{sql}'::text[], 'succeeded', 'tap-ada'),
    ('t2', '{sql,elixir}', 'succeeded', 'tap-ada'),
    ('t3', '{elixir}', 'failed', 'tap-ada'),
    ('t4', '{sql}', 'cancelled', 'tap-ada'),
    ('t5', '{sql}', 'running', 'tap-ada'),
    ('t6', '{}', 'failed', 'tap-bob'),
    ('t7', '{security}', 'assigned', 'tap-bob')
) AS t (title, skills, status, agent);

SELECT set_eq(
    $$SELECT p.agent_id FROM autopilot.agent_knowledge_pending AS p WHERE p.changed_xid = pg_current_xact_id()$$,
    $$SELECT id FROM autopilot.agents WHERE name IN ('tap-ada', 'tap-bob')$$,
    'inserting finished tasks queues their agents, once per agent and transaction'
);
DELETE FROM autopilot.agent_knowledge_pending;
UPDATE autopilot.tasks SET status = 'running'
WHERE title = 'tap-t7';
SELECT is_empty(
    $$SELECT 1 FROM autopilot.agent_knowledge_pending$$,
    'starting (or assigning) a task queues nobody'
);
UPDATE autopilot.tasks SET details = '{"note": 1}'
WHERE title = 'tap-t6';
SELECT is_empty(
    $$SELECT 1 FROM autopilot.agent_knowledge_pending$$,
    'changing what the summary does not use (details) of a finished task queues nobody'
);
UPDATE autopilot.tasks SET status = 'succeeded'
WHERE title = 'tap-t7';
SELECT set_eq(
    $$SELECT agent_id FROM autopilot.agent_knowledge_pending$$,
    $$SELECT pg_temp.tap_agent('tap-bob')$$,
    'a task that finishes queues its agent'
);
DELETE FROM autopilot.agent_knowledge_pending;
UPDATE autopilot.tasks SET status = 'failed'
WHERE title = 'tap-t7';
UPDATE autopilot.tasks SET status = 'succeeded'
WHERE title = 'tap-t7';
DELETE FROM autopilot.tasks
WHERE title = 'tap-t7';
SELECT is(
    (SELECT count(*)::integer FROM autopilot.agent_knowledge_pending), 1,
    'a task changing outcome, then deleted: its agent is queued once in the transaction'
);

-- analysis rows (transaction 5, long over), folded by pattern learning
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, agent_id, created_xid)
SELECT
    r.codebase,
    'tap' AS analyzer,
    r.pattern_type,
    r.pattern_key,
    r.outcome,
    pg_temp.tap_agent(r.agent) AS agent_id,
    '5' AS created_xid
FROM (
    VALUES
    ('app', 'naming', 'snake', 'success', 'tap-ada'),
    ('app', 'naming', 'snake', 'success', 'tap-ada'),
    ('app', 'naming', 'camel', 'failure', 'tap-ada'),
    ('web', 'security', 'sqli', 'failure', 'tap-bob')
) AS r (codebase, pattern_type, pattern_key, outcome, agent);
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, created_xid)
SELECT
    'lib' AS codebase,
    'tap' AS analyzer,
    'naming' AS pattern_type,
    'kebab' AS pattern_key,
    'success' AS outcome,
    '5' AS created_xid
FROM generate_series(1, 20);
SELECT lives_ok($$SELECT autopilot.learn_patterns_from_analysis()$$, 'pattern learning folds the rows');

CREATE TEMPORARY TABLE tap_run (n integer, summary jsonb) ON COMMIT DROP;
INSERT INTO tap_run (n, summary) VALUES (1, autopilot.update_agent_knowledge());

SELECT ok((
    SELECT (summary ->> 'full')::boolean FROM tap_run
    WHERE n = 1
), 'the first run recomputes every agent');
SELECT set_eq(
    $$SELECT agent_id FROM autopilot.agent_knowledge$$,
    $$SELECT id FROM autopilot.agents$$,
    'every agent has a summary, even one without tasks or patterns'
);
SELECT is(
    (
        SELECT summary -> 'tasks' FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-ada')
    ),
    '{"succeeded": 2, "failed": 1, "success_rate": 0.6666666666666666}'::jsonb,
    'task outcomes: succeeded and failed counted, cancelled and running not; success rate 2/3'
);
SELECT is(
    (
        SELECT summary -> 'skills' FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-ada')
    ),
    '{"sql": {"succeeded": 2, "failed": 0, "success_rate": 1},
      "elixir": {"succeeded": 1, "failed": 1, "success_rate": 0.5}}'::jsonb,
    'per skill: a task requiring two skills counts for both'
);
SELECT is(
    (
        SELECT summary -> 'skills' FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-bob')
    ),
    '{}'::jsonb,
    'a task requiring no skill counts only overall'
);
SELECT is(
    (
        SELECT summary - 'pattern_types' - 'patterns_met' - 'top_patterns' - 'patterns_met_total'
        FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-cy')
    ),
    '{"tasks": {"succeeded": 0, "failed": 0, "success_rate": null}, "skills": {},
      "top_patterns_limit": 10, "patterns_met_limit": 200}'::jsonb,
    'an agent without finished tasks: zero counts, no success rate; the settings it was built with'
);
SELECT is(
    (
        SELECT summary -> 'pattern_types' FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-ada')
    ),
    '["naming"]'::jsonb,
    'pattern types: those of its analysis rows'
);
SELECT is(
    (
        SELECT jsonb_path_query_array(summary, '$.patterns_met[*].pattern_key') FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-ada')
    ),
    '["snake", "camel"]'::jsonb,
    'patterns met, most confident first'
);
SELECT ok(
    (SELECT
        (p ->> 'met')::integer = 2 AND (p ->> 'successes')::integer = 2 AND (p ->> 'failures')::integer = 0
        AND abs((p ->> 'confidence')::double precision - 0.342372) < 1e-6
    FROM autopilot.agent_knowledge AS k, jsonb_array_elements(k.summary -> 'patterns_met') AS p
    WHERE k.agent_id = pg_temp.tap_agent('tap-ada') AND p ->> 'pattern_key' = 'snake'),
    'a pattern met: its own rows (2 successes) and the learned confidence (Wilson of 2 in 2 = 0.342372)'
);
SELECT is(
    (
        SELECT jsonb_path_query_array(summary, '$.top_patterns.naming[*].pattern_key') FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-ada')
    ),
    '["kebab", "snake"]'::jsonb,
    'top patterns of its types: the most confident learned ones, whoever met them (camel, confidence 0, left out)'
);
SELECT is(
    (
        SELECT summary -> 'top_patterns' ? 'security' FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-ada')
    ),
    false,
    'no top list for a pattern type the agent does not work with'
);

-- nothing changed: nobody is recomputed
UPDATE autopilot.agent_knowledge SET computed_at = '2000-01-01 00:00+00';
INSERT INTO tap_run (n, summary) VALUES (2, autopilot.update_agent_knowledge());
SELECT results_eq(
    $$SELECT (summary ->> 'rows_affected')::integer, (summary ->> 'full')::boolean FROM tap_run WHERE n = 2$$,
    $$VALUES (0, false)$$,
    'a run without changes recomputes nobody'
);
SELECT is_empty(
    $$SELECT 1 FROM autopilot.agent_knowledge WHERE computed_at <> '2000-01-01 00:00+00'$$,
    'no summary was rewritten'
);
SELECT is(
    (SELECT count(*)::integer FROM autopilot.agent_knowledge_pending), 1,
    'the queue entry of this still open transaction waits for a later run'
);

-- a task change committed earlier (transaction 7) for tap-bob only
INSERT INTO autopilot.agent_knowledge_pending (changed_xid, agent_id)
VALUES ('7', pg_temp.tap_agent('tap-bob'));
INSERT INTO tap_run (n, summary) VALUES (3, autopilot.update_agent_knowledge());
SELECT is(
    (
        SELECT summary -> 'agents' FROM tap_run
        WHERE n = 3
    ),
    jsonb_build_array(pg_temp.tap_agent('tap-bob')),
    'a queued agent, and only it, is recomputed'
);
SELECT set_eq(
    $$SELECT k.agent_id FROM autopilot.agent_knowledge AS k WHERE k.computed_at = now()$$,
    $$SELECT pg_temp.tap_agent('tap-bob')$$,
    'the other summaries are untouched'
);
SELECT is_empty(
    $$SELECT 1 FROM autopilot.agent_knowledge_pending WHERE changed_xid = '7'$$,
    'the queue entry is consumed'
);
SELECT is(
    (
        SELECT summary -> 'tasks' FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-bob')
    ),
    '{"succeeded": 0, "failed": 1, "success_rate": 0}'::jsonb,
    'the recomputed summary reflects the tasks now'
);

-- pattern learning folded new rows (transaction 9): a security pattern met by
-- nobody, and tap-cy's first pattern. As if both watermarks were at 8.
UPDATE autopilot.agent_knowledge SET computed_at = '2000-01-01 00:00+00';
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, agent_id, created_xid)
VALUES
('web', 'tap', 'security', 'xss', 'success', NULL, '9'),
('web', 'tap', 'style', 'tabs', 'neutral', pg_temp.tap_agent('tap-cy'), '9');
UPDATE autopilot.learning_watermarks SET horizon = '8';
SELECT lives_ok($$SELECT autopilot.learn_patterns_from_analysis()$$, 'pattern learning folds the new rows');
INSERT INTO tap_run (n, summary) VALUES (4, autopilot.update_agent_knowledge());
SELECT set_eq(
    $$SELECT jsonb_array_elements_text(summary -> 'pattern_types_changed') FROM tap_run WHERE n = 4$$,
    ARRAY['security', 'style'],
    'the run sees which pattern types changed'
);
SELECT set_eq(
    $$SELECT k.agent_id FROM autopilot.agent_knowledge AS k WHERE k.computed_at = now()$$,
    $$SELECT id FROM autopilot.agents WHERE name IN ('tap-bob', 'tap-cy')$$,
    'recomputed: the agent working with the changed type, and the agent with new rows; not the others'
);
SELECT is(
    (
        SELECT jsonb_path_query_array(summary, '$.top_patterns.security[*].pattern_key') FROM autopilot.agent_knowledge
        WHERE agent_id = pg_temp.tap_agent('tap-bob')
    ),
    '["xss"]'::jsonb,
    'its top list now holds the new confident pattern'
);

-- a new agent
INSERT INTO autopilot.agents (name) VALUES ('tap-dee');
UPDATE autopilot.agent_knowledge SET computed_at = '2000-01-01 00:00+00';
INSERT INTO tap_run (n, summary) VALUES (5, autopilot.update_agent_knowledge());
SELECT is(
    (
        SELECT summary -> 'agents' FROM tap_run
        WHERE n = 5
    ),
    jsonb_build_array(pg_temp.tap_agent('tap-dee')),
    'a new agent gets its summary at the next run, the others are left alone'
);

-- changed settings: everyone is recomputed with them
SELECT
    autopilot.set_setting('agent_knowledge.top_patterns', '1') AS top_patterns,
    autopilot.set_setting('agent_knowledge.patterns_met_limit', '1') AS patterns_met_limit;
INSERT INTO tap_run (n, summary) VALUES (6, autopilot.update_agent_knowledge());
SELECT is(
    (
        SELECT (summary ->> 'rows_affected')::bigint FROM tap_run
        WHERE n = 6
    ),
    (SELECT count(*) FROM autopilot.agents),
    'a changed setting recomputes every agent'
);
SELECT results_eq(
    $$SELECT jsonb_array_length(summary -> 'patterns_met'), (summary ->> 'patterns_met_total')::integer,
             jsonb_array_length(summary #> '{top_patterns,naming}')
      FROM autopilot.agent_knowledge WHERE agent_id = pg_temp.tap_agent('tap-ada')$$,
    $$VALUES (1, 2, 1)$$,
    'the lists are cut to the settings; patterns_met_total still counts every pattern met'
);

-- restored into another cluster
UPDATE autopilot.learning_watermarks SET system_identifier = 42
WHERE name = 'pattern-learning';
INSERT INTO tap_run (n, summary) VALUES (7, autopilot.update_agent_knowledge());
SELECT results_eq(
    $$SELECT (summary ->> 'rows_affected')::integer, summary ->> 'message' FROM tap_run WHERE n = 7$$,
    $$VALUES (0, 'waiting for pattern-learning: it has not run since this database was restored '
                 'into another cluster')$$,
    'until pattern learning has rebased after a restore into another cluster, the run waits'
);
UPDATE autopilot.learning_watermarks SET system_identifier = (pg_control_system()).system_identifier
WHERE name = 'pattern-learning';
UPDATE autopilot.learning_watermarks SET system_identifier = 42
WHERE name = 'agent-knowledge-update';
INSERT INTO autopilot.agent_knowledge_pending (changed_xid, agent_id) VALUES ('9000000000', 1);
INSERT INTO tap_run (n, summary) VALUES (8, autopilot.update_agent_knowledge());
SELECT results_eq(
    $$SELECT (summary ->> 'full')::boolean, (summary ->> 'rows_affected')::bigint FROM tap_run WHERE n = 8$$,
    $$SELECT true, count(*) FROM autopilot.agents$$,
    'its own watermark from another cluster: every agent is recomputed'
);
SELECT is_empty(
    $$SELECT 1 FROM autopilot.agent_knowledge_pending$$,
    'and the whole queue, another cluster''s transaction ids included, is consumed'
);

-- emptying autopilot.tasks queues every agent (quietly: it cascades to analysis_results)
SET LOCAL client_min_messages = warning;
TRUNCATE autopilot.tasks CASCADE;
SELECT set_eq(
    $$SELECT agent_id FROM autopilot.agent_knowledge_pending$$,
    $$SELECT id FROM autopilot.agents$$,
    'TRUNCATE of autopilot.tasks queues every agent'
);

-- the catalog job runs it
SELECT is(
    (SELECT status FROM autopilot.run_job('agent-knowledge-update')), 'succeeded',
    'the agent-knowledge-update job runs update_agent_knowledge() and succeeds'
);

SELECT * FROM finish();
ROLLBACK;
