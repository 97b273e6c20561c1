CREATE FUNCTION autopilot.create_vector_index(
    p_embedding_model text,
    p_m integer DEFAULT 16,
    p_ef_construction integer DEFAULT 128
)
RETURNS regclass
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Creates, where the vector extension (pgvector 0.8.0 or later) is installed,
-- the HNSW index through which autopilot._nearest_chunks (and so search_code)
-- finds the nearest chunks of one embedding model without comparing the query
-- with every chunk; returns it. Idempotent: an existing usable index is
-- returned as it is (whatever its m and ef_construction).
--
-- The index is partial, over the current chunks of that model only, on the
-- expression embedding::vector(N) with vector_ip_ops: embeddings are stored
-- unit-length, so the inner product ranks as the cosine does, and it is the
-- very score the exact path ranks by (no normalization in the index, a chunk
-- whose vector is not unit-length ranks the same way in both). One index per
-- model: a model has one dimension, and two models' vectors are never compared.
--
-- CREATE INDEX in a function cannot be CONCURRENTLY: the build holds a lock
-- that blocks writes to code_chunks (code-ingest waits; searches do not) for
-- as long as it takes (about a minute for 100,000 chunks x 384 on two cores;
-- raise maintenance_work_mem in the session first so the graph fits in
-- memory). pg_dump does not dump it in extension mode (the table belongs to
-- the extension): call this again after a restore. Until it exists, search
-- ranks every chunk exactly.
DECLARE
    v_index record;
    v_schema name;
    v_version text;
    v_chunks bigint;
    v_min integer;
    v_max integer;
    v_models text;
BEGIN
    IF p_embedding_model IS NULL THEN
        RAISE EXCEPTION 'create_vector_index needs an embedding model'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_m IS NULL OR p_ef_construction IS NULL THEN
        RAISE EXCEPTION 'create_vector_index: p_m and p_ef_construction must not be NULL'
        USING ERRCODE = 'null_value_not_allowed', HINT = 'Leave them out for pgvector''s defaults, 16 and 64.';
    END IF;
    SELECT n.nspname, e.extversion INTO v_schema, v_version
    FROM pg_extension AS e
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE e.extname = 'vector';
    IF v_schema IS NULL THEN
        RAISE EXCEPTION 'the vector extension (pgvector) is not installed in this database'
        USING
            ERRCODE = 'undefined_object',
            HINT = 'CREATE EXTENSION vector (pgvector 0.8.0 or later), then call create_vector_index again. '
            || 'Until then code search ranks every chunk exactly.';
    END IF;
    IF v_version !~ '^[0-9]+\.[0-9]+\.[0-9]+$'
        OR string_to_array(v_version, '.')::integer [] < ARRAY[0, 8, 0] THEN
        RAISE EXCEPTION 'pgvector % is installed: code search needs 0.8.0 or later (iterative index scans)', v_version
        USING
            ERRCODE = 'feature_not_supported',
            HINT = 'Install pgvector 0.8 or later on the server, then ALTER EXTENSION vector UPDATE.';
    END IF;

    -- conflicts with itself (two calls build one index) and with writes, as the build does anyway
    LOCK TABLE autopilot.code_chunks IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO v_index FROM autopilot._vector_index(p_embedding_model);
    IF v_index.index_oid IS NOT NULL THEN
        RAISE NOTICE 'index autopilot.% exists, skipping', v_index.index_name;
        RETURN v_index.index_oid;
    END IF;
    IF to_regclass(format('autopilot.%I', v_index.index_name)) IS NOT NULL THEN
        RAISE EXCEPTION 'autopilot.% exists but code search cannot use it', v_index.index_name
        USING
            ERRCODE = 'duplicate_object',
            DETAIL = 'It is not a valid HNSW index with vector_ip_ops (a build interrupted, or made by hand).',
            HINT = format('Drop it (SELECT autopilot.drop_vector_index(%L)), then create it again.', p_embedding_model);
    END IF;

    SELECT count(*), min(array_length(c.embedding, 1)), max(array_length(c.embedding, 1))
    INTO v_chunks, v_min, v_max
    FROM autopilot.code_chunks AS c
    WHERE c.embedding_model = p_embedding_model AND c.superseded_at IS NULL AND c.embedding IS NOT NULL;
    IF v_chunks = 0 THEN
        SELECT string_agg(DISTINCT format('%L', c.embedding_model), ', ') INTO v_models
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND c.embedding IS NOT NULL;
        RAISE EXCEPTION 'no current code chunk is embedded with model %', p_embedding_model
        USING
            ERRCODE = 'no_data_found',
            DETAIL = format('Models of the current chunks: %s.', coalesce(v_models, 'none')),
            HINT = 'Ingest a codebase with that model first, or name one of the models listed.';
    END IF;
    IF v_min IS DISTINCT FROM v_max THEN
        RAISE EXCEPTION 'the current chunks of model % have embeddings of % to % dimensions',
            p_embedding_model, v_min, v_max
        USING ERRCODE = 'data_exception', HINT = 'Re-embed the codebase: a model has one dimension.';
    END IF;
    IF v_max > 2000 THEN
        RAISE EXCEPTION 'pgvector''s HNSW indexes vectors of up to 2000 dimensions; model % has %',
            p_embedding_model, v_max
        USING
            ERRCODE = 'feature_not_supported',
            HINT = 'Code search keeps ranking the chunks of this model exactly.';
    END IF;

    -- names in the extension's schema are qualified, never resolved through search_path
    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON autopilot.code_chunks USING hnsw '
        '((embedding::%I.vector(%s)) %I.vector_ip_ops) WITH (m = %s, ef_construction = %s) '
        'WHERE embedding_model = %L AND superseded_at IS NULL',
        v_index.index_name, v_schema, v_max, v_schema, p_m, p_ef_construction, p_embedding_model
    );
    RETURN (SELECT x.index_oid FROM autopilot._vector_index(p_embedding_model) AS x);
END;
$$;

COMMENT ON FUNCTION autopilot.create_vector_index(text, integer, integer) IS
'Where pgvector 0.8+ is installed: creates (if missing) the partial HNSW index (vector_ip_ops on embedding::vector(N)) over the current chunks of one embedding model, through which code search finds their nearest chunks approximately; returns it. Not CONCURRENTLY: the build blocks writes to code_chunks while it runs.';
