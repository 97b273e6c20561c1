-- vector-stats through run_job: rows, rows without an embedding, rows per
-- dimension and per model, recorded per embedding column.
BEGIN;
SELECT plan(9);

DELETE FROM autopilot.vector_stats_history;
DELETE FROM autopilot.knowledge_artifacts;
DELETE FROM autopilot.code_chunks;

-- knowledge artifacts: 3 rows of 4 dimensions (model m1), 1 of 8 (model m2),
-- 1 with an embedding but no model, 1 without an embedding
INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, embedding, embedding_model)
VALUES
('template', 'a1', ARRAY[0.1, 0.2, 0.3, 0.4]::real[], 'm1'),
('template', 'a2', ARRAY[0.1, 0.2, 0.3, 0.4]::real[], 'm1'),
('template', 'a3', ARRAY[0.5, 0.2, 0.3, 0.4]::real[], 'm1'),
('template', 'a4', ARRAY[1, 2, 3, 4, 5, 6, 7, 8]::real[], 'm2'),
('template', 'a5', ARRAY[1, 2, 3, 4]::real[], NULL),
('template', 'a6', NULL, NULL);

-- an embedding column without a model column, a *_embedding name, and an
-- "embedding" column that is not an array (not measured)
CREATE TABLE autopilot.tap_vectors (id integer PRIMARY KEY, title_embedding real[]);
INSERT INTO autopilot.tap_vectors VALUES (1, '{1,2}'), (2, '{1,2}'), (3, '{1,2,3}'), (4, NULL);
CREATE TABLE autopilot.tap_not_vectors (id integer PRIMARY KEY, embedding text);
INSERT INTO autopilot.tap_not_vectors VALUES (1, 'not an array');

CREATE TEMPORARY TABLE tap_run ON COMMIT DROP AS
SELECT * FROM autopilot.run_job('vector-stats');

SELECT is((SELECT status FROM tap_run), 'succeeded', 'vector-stats succeeds');
SELECT is((SELECT rows_affected FROM tap_run), 3::bigint, 'three embedding columns were measured');
SELECT is(
    (SELECT details -> 'tables' FROM tap_run), '["code_chunks", "knowledge_artifacts", "tap_vectors"]'::jsonb,
    'the tables holding them are listed (and analyzed)'
);

SELECT results_eq(
    $$SELECT row_count, missing_count, dimensions, models FROM autopilot.vector_stats_history
      WHERE table_name = 'knowledge_artifacts' AND column_name = 'embedding'$$,
    $$VALUES (6::bigint, 1::bigint, '{"4": 4, "8": 1}'::jsonb, '{"m1": 3, "m2": 1, "(unknown)": 1}'::jsonb)$$,
    'knowledge_artifacts.embedding: rows, missing, rows per dimension and per model'
);
SELECT results_eq(
    $$SELECT row_count, missing_count, dimensions, models FROM autopilot.vector_stats_history
      WHERE table_name = 'code_chunks' AND column_name = 'embedding'$$,
    $$VALUES (0::bigint, 0::bigint, '{}'::jsonb, '{}'::jsonb)$$,
    'an empty table is recorded with zero counts'
);
SELECT results_eq(
    $$SELECT row_count, missing_count, dimensions, models FROM autopilot.vector_stats_history
      WHERE table_name = 'tap_vectors' AND column_name = 'title_embedding'$$,
    $$VALUES (4::bigint, 1::bigint, '{"2": 2, "3": 1}'::jsonb, '{"(unknown)": 3}'::jsonb)$$,
    'a *_embedding column without a model column: every embedded row is of an unknown model'
);
SELECT is_empty(
    $$SELECT FROM autopilot.vector_stats_history WHERE table_name = 'tap_not_vectors'$$,
    'a column named embedding that is not an array is not measured'
);
SELECT is(
    (
        SELECT reltuples FROM pg_class
        WHERE oid = 'autopilot.tap_vectors'::regclass
    ),
    4::real,
    'the embedding tables are analyzed'
);

SELECT is(
    (SELECT count(*)::integer FROM autopilot.vector_stats_history), 3,
    'one history row per embedding column and run'
);

SELECT * FROM finish();
ROLLBACK;
