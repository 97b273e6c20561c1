CREATE FUNCTION autopilot._code_graph_nodes(p_codebase text, p_files text[])
RETURNS TABLE (node_key text, kind text, attributes jsonb)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT
        f.file_path,
        'file',
        jsonb_build_object(
            'file', f.file_path, 'name', coalesce(f.module_name, f.file_path), 'language', f.language
        )
    FROM autopilot.code_files AS f
    WHERE f.codebase = p_codebase AND f.file_path = ANY(p_files) AND f.status = 'ingested'
    UNION ALL
    SELECT d.node_key, d.kind, d.attributes
    FROM (
        SELECT DISTINCT ON (s.file_path, s.name)
            s.file_path || '#' || s.name AS node_key,
            coalesce(s.kind, 'definition') AS kind,
            jsonb_build_object(
                'file', s.file_path,
                'name', regexp_replace(s.name, '^.*[.]', ''),
                'qualified', s.name,
                'line', s.line
            ) AS attributes
        FROM autopilot.code_symbols AS s
        INNER JOIN autopilot.code_files AS f ON s.codebase = f.codebase AND s.file_path = f.file_path
        WHERE
            s.codebase = p_codebase AND s.file_path = ANY(p_files) AND s.role = 'definition'
            AND f.status = 'ingested'
        ORDER BY s.file_path, s.name, s.line
    ) AS d
$$;

COMMENT ON FUNCTION autopilot._code_graph_nodes(text, text[]) IS
'Private: the graph nodes the given files of a codebase should have now: one per ingested file, one per definition it holds (its first, when a name is defined twice).';
