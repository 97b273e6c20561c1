CREATE FUNCTION autopilot._vector_index(p_embedding_model text)
RETURNS TABLE (index_name text, index_oid regclass, dimensions integer, vector_schema name)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- One row: the name autopilot.create_vector_index() gives the HNSW index of
-- p_embedding_model's chunks (code_chunks_hnsw_, the model name's letters and
-- digits, and 8 hex digits of its sha256, so that two models never share a
-- name); and, when that index is usable by autopilot._nearest_chunks, the
-- index, its dimensions and the schema of the vector extension (else NULLs).
-- Usable: valid and ready (not a half-built CONCURRENTLY one), HNSW over one
-- column of the extension's vector type with its vector_ip_ops, and pgvector
-- 0.8.0 or later (iterative scans). Names are compared in the catalogs,
-- never resolved through search_path. PL/pgSQL, not SQL: every search calls
-- it, and PL/pgSQL keeps the plan of the catalog join for the session.
BEGIN
    index_name := concat_ws(
        '_',
        'code_chunks_hnsw',
        nullif(
            btrim(
                translate(
                    left(regexp_replace(p_embedding_model, '[^A-Za-z0-9]+', '_', 'g'), 32),
                    'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
                    'abcdefghijklmnopqrstuvwxyz'
                ),
                '_'
            ),
            ''
        ),
        left(encode(sha256(convert_to(p_embedding_model, 'UTF8')), 'hex'), 8)
    );
    SELECT ic.oid::regclass, a.atttypmod, n.nspname
    INTO index_oid, dimensions, vector_schema
    FROM pg_class AS ic
    INNER JOIN pg_index AS i ON ic.oid = i.indexrelid
    INNER JOIN pg_attribute AS a ON ic.oid = a.attrelid AND a.attnum = 1
    INNER JOIN pg_extension AS e ON e.extname = 'vector'
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE
        ic.relname = index_name
        AND ic.relnamespace = 'autopilot'::regnamespace
        AND i.indrelid = 'autopilot.code_chunks'::regclass
        AND i.indisvalid
        AND i.indisready
        AND i.indnatts = 1
        AND ic.relam = (SELECT am.oid FROM pg_am AS am WHERE am.amname = 'hnsw')
        AND a.atttypid = (
            SELECT t.oid FROM pg_type AS t WHERE t.typname = 'vector' AND t.typnamespace = e.extnamespace
        )
        AND i.indclass[0] = (
            SELECT oc.oid FROM pg_opclass AS oc
            WHERE oc.opcname = 'vector_ip_ops' AND oc.opcnamespace = e.extnamespace AND oc.opcmethod = ic.relam
        )
        AND a.atttypmod > 0
        AND e.extversion ~ '^[0-9]+\.[0-9]+\.[0-9]+$'
        AND string_to_array(e.extversion, '.')::integer [] >= ARRAY[0, 8, 0];
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION autopilot._vector_index(text) IS
'Private: the name of the HNSW index of one embedding model''s chunks and, when it is usable by code search (valid, HNSW with vector_ip_ops, pgvector 0.8.0 or later), the index, its dimensions and the vector extension''s schema.';
