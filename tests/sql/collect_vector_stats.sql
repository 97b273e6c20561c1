-- autopilot.collect_vector_stats(): the vector-stats job's function. The
-- detailed numbers are checked in vector_stats.sql.
BEGIN;
SELECT plan(6);

SELECT has_function(
    'autopilot', 'collect_vector_stats', ARRAY[]::text[], 'autopilot.collect_vector_stats() exists'
);
SELECT function_returns(
    'autopilot', 'collect_vector_stats', ARRAY[]::text[], 'jsonb', 'collect_vector_stats() returns jsonb'
);

DELETE FROM autopilot.vector_stats_history;

CREATE TEMPORARY TABLE tap_summary ON COMMIT DROP AS
SELECT autopilot.collect_vector_stats() AS summary;

SELECT is(
    (SELECT summary -> 'tables' FROM tap_summary), '["code_chunks", "knowledge_artifacts"]'::jsonb,
    'the embedding tables of autopilot are code_chunks and knowledge_artifacts'
);
SELECT is(
    (SELECT (summary ->> 'rows_affected')::integer FROM tap_summary), 2,
    'rows_affected counts the embedding columns measured'
);
SELECT set_eq(
    $$SELECT table_name, column_name FROM autopilot.vector_stats_history$$,
    $$VALUES ('code_chunks'::text, 'embedding'::text), ('knowledge_artifacts', 'embedding')$$,
    'one history row per embedding column'
);
SELECT matches(
    (SELECT summary ->> 'message' FROM tap_summary),
    '^2 embedding columns measured; analyzed code_chunks, knowledge_artifacts$',
    'the message says what was measured and analyzed'
);

SELECT * FROM finish();
ROLLBACK;
