-- autopilot.recalculate_all_pagerank() (pagerank): PageRank per codebase with
-- networkx's semantics and an absolute L1 stopping rule, and the two power
-- iterations behind it (the compiled _pagerank_kernel where installed, and
-- _pagerank_sql everywhere), which must agree. Expected scores below are
-- networkx.pagerank's (networkx 3.6, tol=1e-16) for the same graph.
-- (Large graphs against networkx and numpy/scipy: bench/pagerank.py.)
BEGIN;
SELECT plan(33);

SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock(autopilot._job_lock_key('pagerank'));

SELECT has_function(
    'autopilot', 'recalculate_all_pagerank', ARRAY[]::text[], 'autopilot.recalculate_all_pagerank() exists'
);
SELECT function_returns(
    'autopilot', 'recalculate_all_pagerank', ARRAY[]::text[], 'jsonb', 'it returns a jsonb summary'
);

TRUNCATE autopilot.graph_edges, autopilot.graph_nodes;

SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'nodes', s ->> 'iterations', s -> 'codebases'
      FROM autopilot.recalculate_all_pagerank() AS s$$,
    $$VALUES ('0'::text, '0'::text, '0'::text, '{}'::jsonb)$$,
    'an empty graph is fine: nothing to rank'
);

-- codebase a: weights, a self-loop, a dangling node (a5), an isolated node (a6);
-- codebase b: a 2-cycle and an edge into codebase a, which belongs to neither graph
INSERT INTO autopilot.graph_nodes (codebase, node_key)
VALUES ('a', 'a1'), ('a', 'a2'), ('a', 'a3'), ('a', 'a4'), ('a', 'a5'), ('a', 'a6'), ('b', 'b1'), ('b', 'b2');

CREATE FUNCTION pg_temp.node(p_key text) RETURNS bigint LANGUAGE sql AS $$
    SELECT id FROM autopilot.graph_nodes WHERE node_key = p_key
$$;

INSERT INTO autopilot.graph_edges (source_id, target_id, weight)
SELECT
    pg_temp.node(e.source) AS source_id,
    pg_temp.node(e.target) AS target_id,
    e.weight
FROM (
    VALUES
    ('a1', 'a2', 1), ('a1', 'a3', 3), ('a2', 'a3', 1), ('a3', 'a1', 1), ('a3', 'a3', 2), ('a4', 'a3', 1),
    ('a4', 'a5', 0.5), ('b1', 'b2', 1), ('b2', 'b1', 1), ('b1', 'a1', 1)
) AS e (source, target, weight);

CREATE TEMPORARY TABLE tap_summary ON COMMIT DROP AS
SELECT autopilot.recalculate_all_pagerank() AS s;

SELECT is(
    (
        SELECT count(*) FROM autopilot.graph_nodes AS n
        INNER JOIN (
            VALUES
            ('a1', 0.20501014879821222), ('a2', 0.08051805427923825), ('a3', 0.5931414746068029),
            ('a4', 0.03695339765961817), ('a5', 0.04742352699650999), ('a6', 0.03695339765961817)
        ) AS x (node_key, pagerank) ON n.node_key = x.node_key
        WHERE abs(n.pagerank - x.pagerank) < 1e-10
    ),
    6::bigint,
    'codebase a scores equal networkx.pagerank''s (weights, self-loop, dangling and isolated nodes) within 1e-10'
);
SELECT is(
    (
        SELECT array_agg(round(pagerank::numeric, 12) ORDER BY node_key) FROM autopilot.graph_nodes
        WHERE codebase = 'b'
    ),
    ARRAY[0.5, 0.5]::numeric[],
    'codebase b is ranked on its own: the edge into codebase a is not part of it'
);
SELECT is(
    (SELECT array_agg(t.total ORDER BY t.codebase) FROM (
        SELECT
            codebase,
            round(sum(pagerank)::numeric, 12) AS total
        FROM autopilot.graph_nodes
        GROUP BY codebase
    ) AS t),
    ARRAY[1.0, 1.0]::numeric[],
    'each codebase''s scores sum to 1'
);
SELECT is(s -> 'codebases' -> 'a' ->> 'nodes', '6', 'the summary counts codebase a''s nodes') FROM tap_summary;
SELECT is(s -> 'codebases' -> 'a' ->> 'edges', '7', '... and its edges') FROM tap_summary;
SELECT is(s -> 'codebases' -> 'b' ->> 'cross_codebase_edges', '1', '... and the edge b1 -> a1 as skipped')
FROM tap_summary;
SELECT ok(
    (s -> 'codebases' -> 'a' ->> 'final_change')::double precision < 1e-10
    AND (s -> 'codebases' -> 'a' ->> 'iterations')::integer > 1,
    'the run records its iterations and a final L1 change below pagerank.tolerance'
) FROM tap_summary;
SELECT is(s ->> 'rows_affected', '8', 'every node got its first score') FROM tap_summary;
SELECT matches(
    s ->> 'message', '^PageRank of 8 nodes in 2 codebases \(9 edges\) converged in at most \d+ iterations .*; '
    || '1 cross-codebase edges skipped$',
    'the message says what was ranked'
) FROM tap_summary;
SELECT is(
    s ->> 'kernel',
    CASE WHEN to_regproc('autopilot._pagerank_kernel') IS NULL THEN 'sql' ELSE 'compiled' END,
    'the summary names the kernel used: compiled where installed, else SQL'
) FROM tap_summary;

SELECT is(
    autopilot.recalculate_all_pagerank() ->> 'rows_affected', '0',
    'a second run over the same graph rewrites no score'
);

-- a new edge changes the scores; a node added later is ranked by the next run
INSERT INTO autopilot.graph_nodes (codebase, node_key) VALUES ('a', 'a7');
INSERT INTO autopilot.graph_edges (source_id, target_id) VALUES (pg_temp.node('a7'), pg_temp.node('a1'));
SELECT is(
    autopilot.recalculate_all_pagerank() -> 'codebases' -> 'a' ->> 'nodes', '7', 'a new node joins its codebase'
);
SELECT ok(
    (
        SELECT pagerank FROM autopilot.graph_nodes
        WHERE node_key = 'a7'
    ) IS NOT NULL,
    '... and is ranked'
);

-- settings: damping
DELETE FROM autopilot.graph_nodes
WHERE node_key = 'a7';
SELECT autopilot.set_setting('pagerank.damping', '0.5');
SELECT autopilot.recalculate_all_pagerank();
SELECT is(
    (
        SELECT count(*) FROM autopilot.graph_nodes AS n
        INNER JOIN (
            VALUES
            ('a1', 0.16651798988997912), ('a2', 0.12250966399048469), ('a3', 0.38893844781445125),
            ('a4', 0.1016949152542373), ('a5', 0.11864406779661019), ('a6', 0.1016949152542373)
        ) AS x (node_key, pagerank) ON n.node_key = x.node_key
        WHERE abs(n.pagerank - x.pagerank) < 1e-10
    ),
    6::bigint,
    'pagerank.damping = 0.5 gives networkx''s scores for alpha = 0.5'
);
SELECT autopilot.reset_setting('pagerank.damping');

-- too few iterations: a clear error, and nothing written
SELECT autopilot.set_setting('pagerank.max_iterations', '3');
UPDATE autopilot.graph_nodes SET pagerank = NULL
WHERE codebase = 'b';
SELECT throws_ok(
    'SELECT autopilot.recalculate_all_pagerank()',
    '54000',
    NULL,
    'pagerank.max_iterations too low: the run fails (program_limit_exceeded)'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.graph_nodes
        WHERE codebase = 'b' AND pagerank IS NOT NULL
    ),
    0::bigint,
    '... and writes no score at all (codebase b converged, but the run is one transaction)'
);
SELECT autopilot.reset_setting('pagerank.max_iterations');
SELECT throws_ok(
    $$SELECT autopilot.set_setting('pagerank.damping', '1')$$,
    '22023',
    NULL,
    'a damping of 1 (never converges) is refused by the setting''s range'
);

-- both kernels on a larger graph (200 nodes, 1,180 edges, a few dangling): the same scores
CREATE TEMPORARY TABLE tap_graph ON COMMIT DROP AS
SELECT
    (SELECT array_agg(g::bigint ORDER BY g) FROM generate_series(1, 200) AS g) AS node_ids,
    array_agg(e.source ORDER BY e.source, e.target) AS sources,
    array_agg(e.target ORDER BY e.source, e.target) AS targets,
    array_agg(1 + (e.source * 31 + e.target * 17) % 7 ORDER BY e.source, e.target)::double precision[] AS weights
FROM (
    SELECT DISTINCT
        s::bigint AS source,
        (1 + (s * k * 37 + k * k) % 200)::bigint AS target
    FROM generate_series(1, 200) AS s, generate_series(1, 6) AS k
    WHERE s % 23 <> 0
) AS e;

CREATE FUNCTION pg_temp.kernel(p_name text, p_max_iterations integer DEFAULT 1000)
RETURNS TABLE (ranks double precision[], iterations integer, delta double precision, ignored_edges bigint)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT k.* FROM tap_graph AS g, '
        || 'autopilot.%I(g.node_ids, g.sources, g.targets, g.weights, 0.85, 1e-12, $1) AS k',
        p_name
    ) USING p_max_iterations;
END;
$$;

SELECT ok(
    (
        SELECT abs((SELECT sum(r) FROM unnest(k.ranks) AS r) - 1) < 1e-12 AND k.delta < 1e-12
        FROM pg_temp.kernel('_pagerank_sql') AS k
    ),
    '_pagerank_sql converges, and its ranks sum to 1'
);
SELECT CASE
    WHEN to_regproc('autopilot._pagerank_kernel') IS NULL
        THEN skip('the compiled kernel is not installed here (plain schema install)', 2)
    ELSE
        collect_tap(
            ok(
                (
                    SELECT max(abs(u.compiled - u.in_sql)) < 1e-15
                    FROM pg_temp.kernel('_pagerank_kernel') AS k, pg_temp.kernel('_pagerank_sql') AS q,
                        unnest(k.ranks, q.ranks) AS u (compiled, in_sql)
                ),
                'the compiled kernel and _pagerank_sql give the same ranks'
            ),
            ok(
                (
                    SELECT k.iterations = q.iterations AND k.ignored_edges = 0
                    FROM pg_temp.kernel('_pagerank_kernel') AS k, pg_temp.kernel('_pagerank_sql') AS q
                ),
                '... in the same number of iterations'
            )
        )
END;
SELECT is(
    (SELECT row(k.iterations, k.delta >= 1e-12) FROM pg_temp.kernel('_pagerank_sql', 2) AS k),
    row(2, true),
    'stopped by max_iterations, a kernel returns its last iterate with delta >= tolerance (the caller raises)'
);

-- bad arguments: the same errors from both kernels
CREATE FUNCTION pg_temp.call(p_name text, p_args text) RETURNS text LANGUAGE sql AS $$
    SELECT format('SELECT * FROM autopilot.%I(%s)', p_name, p_args)
$$;
CREATE FUNCTION pg_temp.raises(p_sql text, p_errcode text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE p_sql;
    RETURN false;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE = p_errcode;
END;
$$;
CREATE TEMPORARY TABLE tap_bad (description text, args text, errcode text) ON COMMIT DROP;
INSERT INTO tap_bad VALUES
('node ids out of order', $$'{2,1}', '{}', '{}', '{}', 0.85, 1e-10, 100$$, '22023'),
('damping 1', $$'{1,2}', '{1}', '{2}', '{1}', 1, 1e-10, 100$$, '22023'),
('tolerance 0', $$'{1,2}', '{1}', '{2}', '{1}', 0.85, 0, 100$$, '22023'),
('max_iterations 0', $$'{1,2}', '{1}', '{2}', '{1}', 0.85, 1e-10, 0$$, '22023'),
('a NULL argument', $$NULL, '{1}', '{2}', '{1}', 0.85, 1e-10, 100$$, '22004'),
('a NULL edge end', $$'{1,2}', '{1,NULL}', '{2,1}', '{1,1}', 0.85, 1e-10, 100$$, '22004'),
('arrays of different lengths', $$'{1,2}', '{1,2}', '{2}', '{1,1}', 0.85, 1e-10, 100$$, '2202E'),
('a weight of 0', $$'{1,2}', '{1}', '{2}', '{0}', 0.85, 1e-10, 100$$, '22023');

SELECT throws_ok(pg_temp.call('_pagerank_sql', b.args), b.errcode, NULL, '_pagerank_sql refuses ' || b.description)
FROM tap_bad AS b
ORDER BY b.description;
SELECT CASE
    WHEN to_regproc('autopilot._pagerank_kernel') IS NULL
        THEN skip('the compiled kernel is not installed here (plain schema install)', 1)
    ELSE
        is_empty(
            $$SELECT b.description FROM tap_bad AS b
          WHERE NOT pg_temp.raises(pg_temp.call('_pagerank_kernel', b.args), b.errcode)$$,
            'the compiled kernel refuses the same arguments with the same SQLSTATEs'
        )
END;

SELECT * FROM finish();
ROLLBACK;
