-- The compiled inner product (src/vector.c) exists only where it can: in an
-- extension install (CREATE EXTENSION / ALTER EXTENSION UPDATE, the library
-- installed beside the control file) by a superuser (C functions are untrusted).
-- Installed as a plain schema, or by another role, _nearest_chunks() sums the
-- products in SQL (same results, slower).
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot')
        OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    CREATE FUNCTION autopilot._inner_product(p_left real [], p_right real [])
    RETURNS double precision
    LANGUAGE c
    IMMUTABLE
    STRICT
    PARALLEL SAFE
    -- no SET search_path, unlike every other function: C code that resolves no name has nothing to
    -- pin, and a SET clause is a GUC save and restore on every call (100,000 chunks: 62 -> 105 ms)
    AS '$libdir/autopilot', 'autopilot_inner_product';

    COMMENT ON FUNCTION autopilot._inner_product(real [], real []) IS
    'Private: the inner product of two embeddings, compiled (src/vector.c); their cosine when both are unit '
    'length. Vectors of two sizes are an error.';
EXCEPTION
    WHEN undefined_file THEN
        RAISE NOTICE 'autopilot''s library is not installed on this server: code search will rank in SQL, slower'
        USING HINT = 'Install the library (make install) before CREATE EXTENSION autopilot to use the compiled kernel.';
END;
$do$;
