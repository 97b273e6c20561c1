CREATE FUNCTION autopilot.populate_code_graph(p_codebase text)
RETURNS jsonb
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- graph-populate for one codebase, set-based and incremental by file: only
-- the files code-ingest marked graph_pending (parsed again, removed, skipped)
-- get their nodes rewritten, and only the files whose edges can have changed
-- get their edges rebuilt: the changed files, the files referring to a name
-- a changed file defines or defined, and the files importing a changed file.
--
-- Nodes: one per file (kind 'file', key its path) and one per definition
-- (kind function / class / method ..., key path#Qualified.name). Edges, which
-- PageRank follows from source to target:
--   file -> file        imports (weight: import statements)
--   file -> definition  calls (weight: uses of the name, shared among
--                       the definitions of that name; names defined in more
--                       than 20 places are too common to say anything)
--   definition -> file  defined_in (a file is as central as what it defines)
-- Node ids and their PageRank survive a run; one transaction, so readers see
-- a graph before or after the run, never half of it.
DECLARE
    v_changed text [];
    v_names text [];
    v_sources text [];
    v_nodes_deleted bigint;
    v_nodes_written bigint;
    v_edges_deleted bigint;
    v_edges_written bigint := 0;
    v_count bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('graph-populate:' || p_codebase));

    SELECT coalesce(array_agg(f.file_path ORDER BY f.file_path), '{}')
    INTO v_changed
    FROM autopilot.code_files AS f
    WHERE f.codebase = p_codebase AND f.graph_pending;
    IF cardinality(v_changed) = 0 THEN
        RETURN jsonb_build_object('codebase', p_codebase, 'changed_files', 0);
    END IF;

    -- names the changed files define, before this run (their nodes) and after (their symbols)
    SELECT coalesce(array_agg(DISTINCT d.name), '{}')
    INTO v_names
    FROM (
        SELECT n.attributes ->> 'name' AS name
        FROM autopilot.graph_nodes AS n
        WHERE n.codebase = p_codebase AND n.attributes ->> 'file' = ANY(v_changed) AND n.kind <> 'file'
        UNION ALL
        SELECT regexp_replace(s.name, '^.*[.]', '')
        FROM autopilot.code_symbols AS s
        WHERE s.codebase = p_codebase AND s.file_path = ANY(v_changed) AND s.role = 'definition'
    ) AS d;

    SELECT coalesce(array_agg(DISTINCT x.file_path), '{}')
    INTO v_sources
    FROM (
        SELECT unnest(v_changed) AS file_path
        UNION ALL
        SELECT s.file_path
        FROM autopilot.code_symbols AS s
        WHERE s.codebase = p_codebase AND s.role = 'reference' AND s.name = ANY(v_names)
        UNION ALL
        SELECT s.file_path
        FROM autopilot.code_symbols AS s
        INNER JOIN autopilot.code_files AS f
            ON s.codebase = f.codebase AND s.name = f.module_name
        WHERE s.codebase = p_codebase AND s.role = 'import' AND f.file_path = ANY(v_changed)
    ) AS x;

    DELETE FROM autopilot.graph_nodes AS n
    WHERE n.codebase = p_codebase AND n.attributes ->> 'file' = ANY(v_changed)
        AND NOT EXISTS (
            SELECT FROM autopilot._code_graph_nodes(p_codebase, v_changed) AS w WHERE w.node_key = n.node_key
        );
    GET DIAGNOSTICS v_nodes_deleted = ROW_COUNT;

    INSERT INTO autopilot.graph_nodes AS n (codebase, node_key, kind, attributes)
    SELECT p_codebase, w.node_key, w.kind, w.attributes
    FROM autopilot._code_graph_nodes(p_codebase, v_changed) AS w
    ON CONFLICT (codebase, node_key) DO UPDATE
    SET kind = excluded.kind, attributes = excluded.attributes, updated_at = now()
    WHERE (n.kind, n.attributes) IS DISTINCT FROM (excluded.kind, excluded.attributes);
    GET DIAGNOSTICS v_nodes_written = ROW_COUNT;

    DELETE FROM autopilot.graph_edges AS e
    USING autopilot.graph_nodes AS n
    WHERE e.source_id = n.id AND n.codebase = p_codebase AND n.attributes ->> 'file' = ANY(v_sources);
    GET DIAGNOSTICS v_edges_deleted = ROW_COUNT;

    -- definition -> its file
    INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind)
    SELECT d.id, f.id, 1, 'defined_in'
    FROM autopilot.graph_nodes AS d
    INNER JOIN autopilot.graph_nodes AS f
        ON d.codebase = f.codebase AND f.node_key = d.attributes ->> 'file'
    WHERE d.codebase = p_codebase AND d.kind <> 'file' AND d.attributes ->> 'file' = ANY(v_sources);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_edges_written := v_edges_written + v_count;

    -- file -> the files it imports
    INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind)
    SELECT src.id, dst.id, count(*), 'imports'
    FROM autopilot.code_symbols AS s
    INNER JOIN autopilot.code_files AS target
        ON s.codebase = target.codebase AND s.name = target.module_name AND target.status = 'ingested'
    INNER JOIN autopilot.graph_nodes AS src ON s.codebase = src.codebase AND s.file_path = src.node_key
    INNER JOIN autopilot.graph_nodes AS dst
        ON target.codebase = dst.codebase AND target.file_path = dst.node_key
    WHERE s.codebase = p_codebase AND s.role = 'import' AND s.file_path = ANY(v_sources) AND src.id <> dst.id
    GROUP BY src.id, dst.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_edges_written := v_edges_written + v_count;

    -- file -> the definitions it refers to by name
    INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind)
    WITH refs AS (
        SELECT s.file_path, s.name, sum(s.occurrences) AS uses
        FROM autopilot.code_symbols AS s
        WHERE s.codebase = p_codebase AND s.role = 'reference' AND s.file_path = ANY(v_sources)
        GROUP BY s.file_path, s.name
    ),

    candidates AS (
        SELECT
            d.id,
            d.attributes ->> 'name' AS name,
            count(*) OVER (PARTITION BY d.attributes ->> 'name') AS sharing
        FROM autopilot.graph_nodes AS d
        WHERE d.codebase = p_codebase AND d.kind <> 'file'
            AND d.attributes ->> 'name' IN (SELECT r.name FROM refs AS r)
    )

    SELECT src.id, c.id, sum(r.uses::double precision / c.sharing), 'calls'
    FROM refs AS r
    INNER JOIN candidates AS c ON r.name = c.name AND c.sharing <= 20
    INNER JOIN autopilot.graph_nodes AS src ON src.codebase = p_codebase AND r.file_path = src.node_key
    GROUP BY src.id, c.id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    v_edges_written := v_edges_written + v_count;

    UPDATE autopilot.code_files AS f
    SET graph_pending = false
    WHERE f.codebase = p_codebase AND f.file_path = ANY(v_changed);

    RETURN jsonb_build_object(
        'codebase', p_codebase,
        'changed_files', cardinality(v_changed),
        'relinked_files', cardinality(v_sources),
        'nodes_deleted', v_nodes_deleted,
        'nodes_written', v_nodes_written,
        'edges_deleted', v_edges_deleted,
        'edges_written', v_edges_written,
        'nodes', (SELECT count(*) FROM autopilot.graph_nodes AS n WHERE n.codebase = p_codebase),
        'edges', (
            SELECT count(*) FROM autopilot.graph_edges AS e
            INNER JOIN autopilot.graph_nodes AS n ON e.source_id = n.id
            WHERE n.codebase = p_codebase
        )
    );
END;
$$;

COMMENT ON FUNCTION autopilot.populate_code_graph(text) IS
'graph-populate for one codebase: brings the code graph (file and definition nodes; imports, calls and defined_in edges) up to date with the files code-ingest changed, set-based and incremental by file; returns a summary.';
