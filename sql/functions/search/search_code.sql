CREATE FUNCTION autopilot.search_code(
    p_query_embedding real[],
    p_query_text text,
    p_codebase text DEFAULT NULL,
    p_limit integer DEFAULT 10,
    p_embedding_model text DEFAULT NULL
)
RETURNS TABLE (
    codebase text,
    file_path text,
    start_line integer,
    end_line integer,
    symbol text,
    kind text,
    score double precision,
    vector_rank integer,
    text_rank integer,
    chunk_id bigint
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Hybrid search over the current code chunks: the nearest chunks by embedding
-- (autopilot._nearest_chunks, exact) and the best by full-text rank over code
-- tokens (identifiers split, any query word matching), fused by reciprocal
-- rank: score = 1/(60 + vector rank) + 1/(60 + text rank), a missing rank
-- adding nothing. Either half may be omitted (NULL embedding, NULL or empty
-- text). The embedding is compared only with chunks of p_embedding_model; when
-- that is NULL, the one model the chunks in scope have (an error if they have
-- several: pass the model the query was embedded with).
DECLARE
    v_depth integer;
    v_model text := p_embedding_model;
    v_models bigint;
    v_dimensions integer;
    v_words tsquery;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'search_code: p_limit must be between 1 and 1000, not %', p_limit
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_query_embedding IS NULL AND nullif(btrim(p_query_text), '') IS NULL THEN
        RAISE EXCEPTION 'search_code needs a query embedding, a query text, or both'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- each half ranks more than it returns, so that fusion can promote a chunk both halves like
    v_depth := greatest(50, p_limit * 5);

    IF p_query_embedding IS NOT NULL AND v_model IS NULL THEN
        SELECT min(c.embedding_model), count(DISTINCT c.embedding_model)
        INTO v_model, v_models
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND c.embedding_model IS NOT NULL
          AND (p_codebase IS NULL OR c.codebase = p_codebase);
        IF v_models > 1 THEN
            RAISE EXCEPTION 'search_code: the chunks searched are embedded with % models', v_models
            USING
                ERRCODE = 'ambiguous_parameter',
                HINT = 'Pass p_embedding_model, the model the query embedding was made with.';
        END IF;
    END IF;
    IF p_query_embedding IS NOT NULL THEN
        SELECT array_length(c.embedding, 1) INTO v_dimensions
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND c.embedding_model = v_model
        LIMIT 1;
        IF v_dimensions <> coalesce(array_length(p_query_embedding, 1), 0) THEN
            RAISE EXCEPTION 'search_code: the query embedding has % dimensions, the chunks of model % have %',
                coalesce(array_length(p_query_embedding, 1), 0), v_model, v_dimensions
            USING ERRCODE = 'data_exception', HINT = 'Embed the query with the chunks'' model.';
        END IF;
    END IF;
    IF nullif(btrim(p_query_text), '') IS NOT NULL THEN
        -- any word may match (a natural-language query rarely has all its words in one chunk)
        v_words := nullif(
            replace(plainto_tsquery('simple'::regconfig, autopilot._code_tokens(p_query_text))::text, ' & ', ' | '),
            ''
        )::tsquery;
    END IF;

    RETURN QUERY
    WITH vector_hits AS (
        SELECT n.chunk_id, row_number() OVER (ORDER BY n.similarity DESC, n.chunk_id)::integer AS rank
        FROM autopilot._nearest_chunks(p_query_embedding, v_model, p_codebase, v_depth) AS n
        WHERE p_query_embedding IS NOT NULL
    ),

    text_hits AS (
        SELECT
            t.id AS chunk_id,
            row_number() OVER (ORDER BY ts_rank_cd(t.search_vector, v_words) DESC, t.id)::integer AS rank
        FROM autopilot.code_chunks AS t
        WHERE
            v_words IS NOT NULL
            AND t.superseded_at IS NULL
            AND t.search_vector @@ v_words
            AND (p_codebase IS NULL OR t.codebase = p_codebase)
        ORDER BY ts_rank_cd(t.search_vector, v_words) DESC, t.id
        LIMIT v_depth
    ),

    fused AS (
        SELECT
            coalesce(v.chunk_id, t.chunk_id) AS chunk_id,
            v.rank AS vector_rank,
            t.rank AS text_rank,
            coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) AS score
        FROM vector_hits AS v
        FULL JOIN text_hits AS t ON v.chunk_id = t.chunk_id
    )

    SELECT
        c.codebase,
        c.file_path,
        c.start_line,
        c.end_line,
        c.symbol,
        c.kind,
        f.score::double precision,
        f.vector_rank,
        f.text_rank,
        c.id
    FROM fused AS f
    INNER JOIN autopilot.code_chunks AS c ON f.chunk_id = c.id
    ORDER BY f.score DESC, c.id
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION autopilot.search_code(real[], text, text, integer, text) IS
'Hybrid code search: exact nearest chunks by embedding and full-text rank over code tokens, fused by reciprocal rank; each row has its path, lines, symbol, score and both ranks.';
