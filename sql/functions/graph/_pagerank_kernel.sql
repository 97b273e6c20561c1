-- The compiled PageRank kernel (src/pagerank.c) exists only where it can: in an
-- extension install (CREATE EXTENSION / ALTER EXTENSION UPDATE, the library
-- installed beside the control file) by a superuser (C functions are untrusted).
-- Installed as a plain schema, or by another role, recalculate_all_pagerank()
-- runs the same iteration in SQL (autopilot._pagerank_sql).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot')
        OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    CREATE FUNCTION autopilot._pagerank_kernel(
        p_node_ids bigint [],
        p_sources bigint [],
        p_targets bigint [],
        p_weights double precision [],
        p_damping double precision,
        p_tolerance double precision,
        p_max_iterations integer,
        OUT ranks double precision [],
        OUT iterations integer,
        OUT delta double precision,
        OUT ignored_edges bigint
    )
    LANGUAGE c
    IMMUTABLE
    PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS '$libdir/autopilot', 'autopilot_pagerank_kernel';

    COMMENT ON FUNCTION autopilot._pagerank_kernel(
        bigint [], bigint [], bigint [], double precision [], double precision, double precision, integer
    ) IS
    'Private: PageRank power iteration, compiled (src/pagerank.c). Ranks of node_ids (ascending) from the '
    'weighted edges; stops when the L1 change is below the tolerance or after max_iterations; edges with an '
    'end outside node_ids are skipped and counted.';
EXCEPTION
    WHEN undefined_file THEN
        RAISE NOTICE 'autopilot''s library is not installed on this server: PageRank will run in SQL, slower'
        USING HINT = 'Install the library (make install) before CREATE EXTENSION autopilot to use the compiled kernel.';
END;
$do$;
