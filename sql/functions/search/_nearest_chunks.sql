CREATE FUNCTION autopilot._nearest_chunks(
    p_query real[],
    p_embedding_model text,
    p_codebase text,
    p_limit integer
)
RETURNS TABLE (chunk_id bigint, similarity double precision)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The top p_limit current chunks by cosine to p_query (embeddings are stored
-- unit-length: the inner product is the cosine), among the chunks of
-- p_embedding_model only (two models' vectors are never compared), in one
-- codebase or all, most similar first.
--
-- Approximate, through pgvector's HNSW, where autopilot.create_vector_index()
-- made the model's index and pgvector 0.8+ is installed: iterative scans go on
-- past the chunks the codebase filter drops (hnsw.iterative_scan), and the
-- search list is at least 100 and p_limit long (hnsw.ef_search; a higher value
-- the session set is kept); both are set for the query only, the caller's
-- values restored. Should the scan still return fewer than p_limit chunks while
-- more qualify (it stops at hnsw.max_scan_tuples), the exact path answers.
-- The extension's type and operator are named with its schema, looked up in
-- pg_extension: never resolved through search_path.
--
-- Exact otherwise: the sum runs in the compiled autopilot._inner_product
-- where it is installed, else in SQL (same results, about 60 times slower).
DECLARE
    v_kernel regproc := to_regprocedure('autopilot._inner_product(real[], real[])')::regproc;
    v_schema name;
    v_dimensions integer;
    v_type text;
    v_operator text;
    v_ef_search text;
    v_iterative_scan text;
    v_ids bigint[];
    v_similarities double precision[];
BEGIN
    SELECT x.vector_schema, x.dimensions INTO v_schema, v_dimensions
    FROM autopilot._vector_index(p_embedding_model) AS x;
    IF v_schema IS NOT NULL AND array_ndims(p_query) = 1 AND cardinality(p_query) = v_dimensions
        AND p_limit > 0 THEN
        v_ef_search := current_setting('hnsw.ef_search', true);
        v_iterative_scan := current_setting('hnsw.iterative_scan', true);
        IF v_ef_search IS NULL OR v_iterative_scan IS NULL THEN
            -- pgvector's library is not loaded in this session yet: load it (a cast does), so that
            -- its settings exist and hold their configured values, to be restored after the query
            EXECUTE format('SELECT %L::%I.vector', '[0]', v_schema);
            v_ef_search := current_setting('hnsw.ef_search');
            v_iterative_scan := current_setting('hnsw.iterative_scan');
        END IF;
        PERFORM set_config(
            'hnsw.ef_search', least(1000, greatest(100, p_limit, v_ef_search::integer))::text, true
        );
        -- relaxed order: results may come slightly out of order, so they are sorted again below
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
        -- the type and the operator of the extension, named with its schema
        v_type := format('%I.vector(%s)', v_schema, v_dimensions);
        v_operator := format('%I.<#>', v_schema);
        EXECUTE format(
            'SELECT array_agg(h.id ORDER BY h.similarity DESC, h.id),
                    array_agg(h.similarity ORDER BY h.similarity DESC, h.id)
             FROM (
                 SELECT c.id, -(c.embedding::%s OPERATOR(%s) $1::%s) AS similarity
                 FROM autopilot.code_chunks AS c
                 WHERE c.embedding_model = %L AND c.superseded_at IS NULL
                   AND ($2::text IS NULL OR c.codebase = $2)
                 ORDER BY c.embedding::%s OPERATOR(%s) $1::%s
                 LIMIT $3
             ) AS h',
            v_type, v_operator, v_type,
            -- a literal, so that the planner matches the index's predicate (the parameters of a
            -- dynamic query are constants to the planner too: the codebase test folds away)
            p_embedding_model,
            v_type, v_operator, v_type
        ) INTO v_ids, v_similarities USING p_query, p_codebase, p_limit;
        PERFORM set_config('hnsw.ef_search', v_ef_search, true);
        PERFORM set_config('hnsw.iterative_scan', v_iterative_scan, true);
        IF coalesce(cardinality(v_ids), 0) = p_limit OR NOT EXISTS (
            SELECT FROM autopilot.code_chunks AS c
            WHERE
                c.embedding_model = p_embedding_model
                AND c.superseded_at IS NULL
                AND c.embedding IS NOT NULL
                AND (p_codebase IS NULL OR c.codebase = p_codebase)
                AND c.id <> ALL(coalesce(v_ids, '{}'))
        ) THEN
            RETURN QUERY SELECT u.id, u.similarity FROM unnest(v_ids, v_similarities) AS u (id, similarity);
            RETURN;
        END IF;
    END IF;

    IF v_kernel IS NOT NULL THEN
        -- dynamic, only because the function does not exist in every install; v_kernel is its
        -- regproc, not user input
        RETURN QUERY EXECUTE format(
            'SELECT c.id, %s(c.embedding, $1) AS similarity
             FROM autopilot.code_chunks AS c
             WHERE c.superseded_at IS NULL AND c.embedding_model = $2
               AND ($3 IS NULL OR c.codebase = $3)
             ORDER BY similarity DESC, c.id
             LIMIT $4',
            v_kernel
        ) USING p_query, p_embedding_model, p_codebase, p_limit;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT
        c.id,
        (SELECT sum(u.a::double precision * u.b) FROM unnest(c.embedding, p_query) AS u (a, b)) AS similarity
    FROM autopilot.code_chunks AS c
    WHERE
        c.superseded_at IS NULL
        AND c.embedding_model = p_embedding_model
        AND (p_codebase IS NULL OR c.codebase = p_codebase)
    ORDER BY similarity DESC, c.id
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION autopilot._nearest_chunks(real[], text, text, integer) IS
'Private: the top-k current code chunks of one embedding model by cosine to a query vector: approximate through the model''s HNSW index (create_vector_index, pgvector 0.8+) where it exists, else exact (compiled kernel where installed, SQL otherwise).';
