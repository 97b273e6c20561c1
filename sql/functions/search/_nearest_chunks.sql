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
-- The exact top p_limit current chunks by cosine to p_query (embeddings are
-- stored unit-length: the inner product is the cosine), among the chunks of
-- p_embedding_model only (two models' vectors are never compared), in one
-- codebase or all. The sum runs in the compiled autopilot._inner_product where
-- it is installed, else in SQL (same results, about 60 times slower).
DECLARE
    v_kernel regproc := to_regprocedure('autopilot._inner_product(real[], real[])')::regproc;
BEGIN
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
'Private: the exact top-k current code chunks of one embedding model by cosine to a query vector (compiled kernel where installed, SQL otherwise).';
