-- autopilot.populate_code_graph() and autopilot._code_graph_nodes(): the code
-- graph from code-ingest's files and symbols, incremental by file. The ingest
-- and a real tree: tests/py/test_code_ingest.py.
BEGIN;
SELECT plan(11);

INSERT INTO autopilot.codebases (name, root_path) VALUES ('g', '/src/g');
INSERT INTO autopilot.code_files (codebase, file_path, language, module_name, content_hash, size_bytes)
VALUES
('g', 'app/main.py', 'python', 'app.main', 'm1', 10),
('g', 'app/util.py', 'python', 'app.util', 'u1', 10),
('g', 'app/other.py', 'python', 'app.other', 'o1', 10);
-- main.py calls helper twice: one reference row, its occurrences 2
INSERT INTO autopilot.code_symbols (codebase, file_path, role, name, kind, line, occurrences)
VALUES
('g', 'app/main.py', 'definition', 'main', 'function', 3, 1),
('g', 'app/main.py', 'import', 'app.util', NULL, 1, 1),
('g', 'app/main.py', 'reference', 'helper', 'call', 4, 2),
('g', 'app/util.py', 'definition', 'Helper', 'class', 1, 1),
('g', 'app/util.py', 'definition', 'Helper.helper', 'method', 2, 1),
('g', 'app/util.py', 'definition', 'helper', 'function', 9, 1),
('g', 'app/other.py', 'definition', 'unrelated', 'function', 1, 1);

SELECT is(
    array(
        SELECT n.node_key FROM autopilot._code_graph_nodes('g', ARRAY['app/util.py']) AS n
        ORDER BY 1
    ),
    ARRAY['app/util.py', 'app/util.py#Helper', 'app/util.py#Helper.helper', 'app/util.py#helper'],
    '_code_graph_nodes: a node per file and per definition'
);

SELECT is(
    autopilot.populate_code_graph('g') - 'nodes' - 'edges',
    '{"codebase": "g", "changed_files": 3, "relinked_files": 3, "nodes_deleted": 0, "nodes_written": 8,
      "edges_deleted": 0, "edges_written": 8}'::jsonb,
    'the first run takes every file into the graph'
);

CREATE TEMPORARY VIEW tap_edges AS
SELECT
    s.node_key AS source,
    t.node_key AS target,
    e.kind,
    e.weight
FROM autopilot.graph_edges AS e
INNER JOIN autopilot.graph_nodes AS s ON e.source_id = s.id
INNER JOIN autopilot.graph_nodes AS t ON e.target_id = t.id;

SELECT set_eq(
    $$SELECT source, target, kind, weight FROM tap_edges WHERE kind <> 'defined_in'$$,
    $$VALUES ('app/main.py', 'app/util.py', 'imports', 1::double precision),
             ('app/main.py', 'app/util.py#Helper.helper', 'calls', 1),
             ('app/main.py', 'app/util.py#helper', 'calls', 1)$$,
    'imports link files; two calls of a name defined twice are shared between its definitions'
);
SELECT is(
    (
        SELECT count(*) FROM tap_edges
        WHERE kind = 'defined_in'
    ),
    5::bigint,
    'every definition points to its file'
);
SELECT is(
    autopilot.populate_code_graph('g'),
    '{"codebase": "g", "changed_files": 0}'::jsonb,
    'nothing changed: nothing to do'
);

SELECT id AS main_id FROM autopilot.graph_nodes
WHERE node_key = 'app/main.py' \gset
-- util.py parsed again: the method is gone
DELETE FROM autopilot.code_symbols
WHERE file_path = 'app/util.py' AND name = 'Helper.helper';
UPDATE autopilot.code_files SET graph_pending = true
WHERE file_path = 'app/util.py';
SELECT is(
    autopilot.populate_code_graph('g') - 'nodes' - 'edges',
    '{"codebase": "g", "changed_files": 1, "relinked_files": 2, "nodes_deleted": 1, "nodes_written": 0,
      "edges_deleted": 5, "edges_written": 5}'::jsonb,
    'one changed file: its nodes and the edges of the files that call what it defines'
);
SELECT results_eq(
    $$SELECT target, weight FROM tap_edges WHERE kind = 'calls'$$,
    $$VALUES ('app/util.py#helper', 2::double precision)$$,
    'the calls now all go to the one definition left'
);
SELECT is(
    (
        SELECT id FROM autopilot.graph_nodes
        WHERE node_key = 'app/main.py'
    ),
    :main_id::bigint,
    'nodes of unchanged files keep their ids (and PageRank)'
);

UPDATE autopilot.code_files SET status = 'removed', graph_pending = true
WHERE file_path = 'app/util.py';
SELECT is(
    (autopilot.populate_code_graph('g') ->> 'nodes_deleted')::integer,
    3,
    'a removed file takes its nodes with it'
);
SELECT is_empty($$SELECT * FROM tap_edges WHERE target LIKE 'app/util.py%'$$, 'and the edges to them');
SELECT ok(
    NOT EXISTS (
        SELECT FROM autopilot.code_files
        WHERE codebase = 'g' AND graph_pending
    ),
    'every file is up to date afterwards'
);

SELECT * FROM finish();
ROLLBACK;
