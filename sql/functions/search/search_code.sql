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
-- (autopilot._nearest_chunks) and the best by full text over code tokens
-- (identifiers split), fused by weighted reciprocal rank:
--   score = 1/(60 + vector rank) + w/(60 + text rank), a missing rank adding nothing.
-- The text half takes the chunks holding any query word and ranks them by the
-- inverse document frequencies of the words they hold, summed (BM25's idf over
-- the chunks searched: one rare word outweighs several common ones), then by
-- ts_rank_cd. w is 1 when the query names code (a single word, or a word in
-- snake_case, camelCase, dotted or called: the text half finds names); for a
-- sentence, w is 0.5 and English stop words are left out ("a", "the", "into" are
-- in every chunk): the embedding reads a sentence better than its words do
-- (bench/code_search.py: with equal weights and every word, the words of the
-- query set's sentences, common in code, pushed targets out of the first five
-- that the embedding alone ranked there).
-- Either half may be omitted (NULL embedding, NULL or empty text). The
-- embedding is compared only with chunks of p_embedding_model; when that is
-- NULL, the one model the chunks in scope have (an error if they have several:
-- pass the model the query was embedded with).
DECLARE
    v_depth integer;
    v_model text := p_embedding_model;
    v_models bigint;
    v_dimensions integer;
    v_words text [];
    v_content_words text [];
    v_any tsquery;
    v_chunks bigint;
    v_text_weight double precision := 1;
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
        -- the query's words as the chunks' search_vector holds them, and those that are not
        -- English stop words
        SELECT
            array_agg(u.lexeme ORDER BY u.lexeme),
            array_agg(u.lexeme ORDER BY u.lexeme) FILTER (WHERE ts_lexize('english_stem', u.lexeme) <> '{}')
        INTO v_words, v_content_words
        FROM unnest(to_tsvector('simple'::regconfig, autopilot._code_tokens(p_query_text))) AS u;
        -- a sentence: several words, none shaped like code (snake_case, camelCase, a.b, a::b, call()
        IF cardinality(v_words) > 1
            AND p_query_text !~ '[[:alnum:]]_|_[[:alnum:]]|[[:lower:]][[:upper:]]|[[:alnum:]][.:]+[[:alpha:]_]|[[:alnum:]]\('
            THEN
            v_text_weight := 0.5;
            v_words := coalesce(v_content_words, v_words);
        END IF;
        -- any word may match (a sentence rarely has all its words in one chunk)
        v_any := nullif(array_to_string(ARRAY(SELECT quote_literal(w) FROM unnest(v_words) AS w), ' | '), '')::tsquery;
        SELECT count(*) INTO v_chunks
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NULL AND (p_codebase IS NULL OR c.codebase = p_codebase);
    END IF;

    RETURN QUERY
    WITH vector_hits AS (
        SELECT n.chunk_id, row_number() OVER (ORDER BY n.similarity DESC, n.chunk_id)::integer AS rank
        FROM autopilot._nearest_chunks(p_query_embedding, v_model, p_codebase, v_depth) AS n
        WHERE p_query_embedding IS NOT NULL
    ),

    -- each query word, with the chunks holding it: one index scan per word (materialized, or the
    -- planner may run the scan again for each chunk found)
    word_hits AS MATERIALIZED (
        SELECT h.ids, cardinality(h.ids) AS frequency
        FROM unnest(v_words) AS w (word)
        CROSS JOIN LATERAL (
            SELECT ARRAY(
                SELECT t.id
                FROM autopilot.code_chunks AS t
                WHERE
                    t.superseded_at IS NULL
                    AND t.search_vector @@ to_tsquery('simple'::regconfig, quote_literal(w.word))
                    AND (p_codebase IS NULL OR t.codebase = p_codebase)
            ) AS ids
        ) AS h
    ),

    text_scores AS (
        SELECT
            h.chunk_id,
            -- rounded: chunks holding the same words tie exactly, whatever the order of the sum
            round(sum(ln(1 + (v_chunks - w.frequency + 0.5) / (w.frequency + 0.5)))::numeric, 9) AS weight
        FROM word_hits AS w
        CROSS JOIN LATERAL unnest(w.ids) AS h (chunk_id)
        GROUP BY h.chunk_id
    ),

    text_hits AS (
        SELECT
            s.chunk_id,
            row_number() OVER (
                ORDER BY s.weight DESC, ts_rank_cd(t.search_vector, v_any) DESC, s.chunk_id
            )::integer AS rank
        FROM text_scores AS s
        INNER JOIN autopilot.code_chunks AS t ON s.chunk_id = t.id
        ORDER BY s.weight DESC, ts_rank_cd(t.search_vector, v_any) DESC, s.chunk_id
        LIMIT v_depth
    ),

    fused AS (
        SELECT
            coalesce(v.chunk_id, t.chunk_id) AS chunk_id,
            v.rank AS vector_rank,
            t.rank AS text_rank,
            coalesce(1.0 / (60 + v.rank), 0) + coalesce(v_text_weight / (60 + t.rank), 0) AS score
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
'Hybrid code search: nearest chunks by embedding and full text over code tokens (rarer query words first), fused by reciprocal rank, the text half weighing half for a sentence; each row has its path, lines, symbol, score and both ranks.';
