CREATE FUNCTION autopilot.recalculate_all_pagerank()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pagerank. PageRank of every node of autopilot.graph_nodes, per codebase, over
-- the weighted edges of autopilot.graph_edges, with networkx.pagerank's
-- semantics: damping pagerank.damping, edge weights normalised per source, the
-- rank of dangling nodes spread uniformly over the codebase, isolated nodes
-- included (they keep the teleport share). It stops when the absolute L1 change
-- of an iteration is below pagerank.tolerance (not networkx's N * tol, which
-- stops far from convergence on large graphs) and fails, writing nothing, when
-- pagerank.max_iterations are not enough. An edge whose target is in another
-- codebase is not part of either graph: skipped, and counted in the summary.
--
-- Each codebase's nodes and edges are read in one statement (one snapshot);
-- the power iteration runs in the compiled autopilot._pagerank_kernel where it
-- is installed, else in autopilot._pagerank_sql; the scores are written back
-- in this transaction, so readers see all of a run's scores or none of them.
DECLARE
    v_damping double precision := autopilot.get_setting('pagerank.damping')::double precision;
    v_tolerance double precision := autopilot.get_setting('pagerank.tolerance')::double precision;
    v_max_iterations integer := autopilot.get_setting('pagerank.max_iterations')::integer;
    v_kernel regproc := to_regprocedure(
        'autopilot._pagerank_kernel(bigint[], bigint[], bigint[], double precision[], '
        || 'double precision, double precision, integer)'
    )::regproc;
    v_compiled boolean := v_kernel IS NOT NULL;
    v_codebase text;
    v_node_ids bigint [];
    v_sources bigint [];
    v_targets bigint [];
    v_weights double precision [];
    v_ranks double precision [];
    v_iterations integer;
    v_delta double precision;
    v_skipped bigint;
    v_written bigint;
    v_codebases jsonb := '{}'::jsonb;
    v_codebase_count integer := 0;
    v_nodes bigint := 0;
    v_edges bigint := 0;
    v_ignored bigint := 0;
    v_updated bigint := 0;
    v_max_iterations_used integer := 0;
    v_max_delta double precision := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('pagerank'));

    FOR v_codebase IN SELECT DISTINCT n.codebase FROM autopilot.graph_nodes AS n ORDER BY n.codebase LOOP
        WITH nodes AS MATERIALIZED (
            SELECT n.id
            FROM autopilot.graph_nodes AS n
            WHERE n.codebase = v_codebase
        )

        SELECT
            (SELECT coalesce(array_agg(n.id ORDER BY n.id), '{}') FROM nodes AS n),
            coalesce(array_agg(e.source_id), '{}'),
            coalesce(array_agg(e.target_id), '{}'),
            coalesce(array_agg(e.weight), '{}')
        INTO v_node_ids, v_sources, v_targets, v_weights
        FROM autopilot.graph_edges AS e
        INNER JOIN nodes AS s ON e.source_id = s.id;

        IF v_compiled THEN
            -- dynamic, only because the function does not exist in every install (nothing may
            -- resolve its name where it is absent); v_kernel is its regproc, not user input
            EXECUTE format(
                'SELECT k.ranks, k.iterations, k.delta, k.ignored_edges FROM %s($1, $2, $3, $4, $5, $6, $7) AS k',
                v_kernel
            )
            INTO v_ranks, v_iterations, v_delta, v_skipped
            USING v_node_ids, v_sources, v_targets, v_weights, v_damping, v_tolerance, v_max_iterations;
        ELSE
            SELECT k.ranks, k.iterations, k.delta, k.ignored_edges
            INTO v_ranks, v_iterations, v_delta, v_skipped
            FROM autopilot._pagerank_sql(
                v_node_ids, v_sources, v_targets, v_weights, v_damping, v_tolerance, v_max_iterations
            ) AS k;
        END IF;

        IF v_delta >= v_tolerance THEN
            -- the remedy is in the message itself: the ledger (job_runs.message) keeps only that
            RAISE EXCEPTION
                'pagerank of codebase % did not converge in % iterations (pagerank.max_iterations): '
                'the last changed the ranks by % (L1), pagerank.tolerance is %; no score was written',
                v_codebase, v_iterations, v_delta, v_tolerance
            USING
                ERRCODE = 'program_limit_exceeded',
                HINT = 'Raise pagerank.max_iterations (or pagerank.tolerance) with autopilot.set_setting().';
        END IF;

        UPDATE autopilot.graph_nodes AS n
        SET pagerank = r.pagerank
        FROM unnest(v_node_ids, v_ranks) AS r (id, pagerank)
        WHERE n.id = r.id AND n.pagerank IS DISTINCT FROM r.pagerank;
        GET DIAGNOSTICS v_written = ROW_COUNT;

        v_codebases := v_codebases || jsonb_build_object(v_codebase, jsonb_build_object(
            'nodes', cardinality(v_node_ids),
            'edges', cardinality(v_sources) - v_skipped,
            'cross_codebase_edges', v_skipped,
            'iterations', v_iterations,
            'final_change', v_delta
        ));
        v_codebase_count := v_codebase_count + 1;
        v_nodes := v_nodes + cardinality(v_node_ids);
        v_edges := v_edges + cardinality(v_sources) - v_skipped;
        v_ignored := v_ignored + v_skipped;
        v_updated := v_updated + v_written;
        v_max_iterations_used := greatest(v_max_iterations_used, v_iterations);
        v_max_delta := greatest(v_max_delta, v_delta);
    END LOOP;

    RETURN jsonb_build_object(
        'rows_affected', v_updated,
        'message', format(
            'PageRank of %s %s in %s %s (%s edges) converged in at most %s iterations (final L1 change %s)%s',
            v_nodes, CASE WHEN v_nodes = 1 THEN 'node' ELSE 'nodes' END,
            v_codebase_count, CASE WHEN v_codebase_count = 1 THEN 'codebase' ELSE 'codebases' END,
            v_edges, v_max_iterations_used, v_max_delta,
            CASE WHEN v_ignored > 0 THEN format('; %s cross-codebase edges skipped', v_ignored) ELSE '' END
        ),
        'kernel', CASE WHEN v_compiled THEN 'compiled' ELSE 'sql' END,
        'nodes', v_nodes,
        'edges', v_edges,
        'cross_codebase_edges', v_ignored,
        'iterations', v_max_iterations_used,
        'final_change', v_max_delta,
        'damping', v_damping,
        'tolerance', v_tolerance,
        'codebases', v_codebases
    );
END;
$$;

COMMENT ON FUNCTION autopilot.recalculate_all_pagerank() IS
'pagerank job: PageRank of every graph node per codebase (networkx semantics, L1 stopping rule: settings '
'pagerank.damping, pagerank.tolerance, pagerank.max_iterations), written back in one transaction; returns the '
'iterations and final change per codebase.';
