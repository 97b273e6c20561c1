CREATE FUNCTION autopilot.search_knowledge(
    p_query_embedding real[],
    p_query_text text,
    p_limit integer DEFAULT 10,
    p_embedding_model text DEFAULT NULL,
    p_artifact_type text DEFAULT NULL
)
RETURNS TABLE (
    artifact_type text,
    name text,
    source text,
    score double precision,
    vector_rank integer,
    text_rank integer,
    similarity double precision,
    artifact_id bigint
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Hybrid search over the knowledge artifacts (of one type, or all), as
-- search_code does over code: the nearest artifacts by embedding (exact cosine:
-- embeddings are stored unit-length, so the inner product; template-embed
-- embeds autopilot._knowledge_text, the whole content), and the best by
-- full-text rank over their type, name, description and tags (search_vector,
-- identifiers split, any query word matching), fused by reciprocal rank:
-- score = 1/(60 + vector rank) + 1/(60 + text rank), a missing rank adding
-- nothing. Either half may be
-- omitted (NULL embedding, NULL or empty text). The embedding is compared only
-- with artifacts embedded by p_embedding_model; when that is NULL, the one
-- model the artifacts in scope have (an error if they have several).
DECLARE
    v_kernel regproc := to_regprocedure('autopilot._inner_product(real[], real[])')::regproc;
    v_depth integer;
    v_model text := p_embedding_model;
    v_models bigint;
    v_dimensions integer;
    v_words tsquery;
    v_vector_ids bigint[] := '{}'::bigint[];
    v_similarities double precision[] := '{}'::double precision[];
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'search_knowledge: p_limit must be between 1 and 1000, not %', p_limit
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_query_embedding IS NULL AND nullif(btrim(p_query_text), '') IS NULL THEN
        RAISE EXCEPTION 'search_knowledge needs a query embedding, a query text, or both'
        USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- each half ranks more than it returns, so that fusion can promote an artifact both halves like
    v_depth := greatest(50, p_limit * 5);

    IF p_query_embedding IS NOT NULL AND v_model IS NULL THEN
        SELECT min(a.embedding_model), count(DISTINCT a.embedding_model)
        INTO v_model, v_models
        FROM autopilot.knowledge_artifacts AS a
        WHERE a.embedding IS NOT NULL AND (p_artifact_type IS NULL OR a.artifact_type = p_artifact_type);
        IF v_models > 1 THEN
            RAISE EXCEPTION 'search_knowledge: the artifacts searched are embedded with % models', v_models
            USING
                ERRCODE = 'ambiguous_parameter',
                HINT = 'Pass p_embedding_model, the model the query embedding was made with.';
        END IF;
    END IF;
    IF p_query_embedding IS NOT NULL THEN
        SELECT array_length(a.embedding, 1) INTO v_dimensions
        FROM autopilot.knowledge_artifacts AS a
        WHERE a.embedding_model = v_model AND a.embedding IS NOT NULL
        LIMIT 1;
        IF v_dimensions <> coalesce(array_length(p_query_embedding, 1), 0) THEN
            RAISE EXCEPTION 'search_knowledge: the query embedding has % dimensions, the artifacts of model % have %',
                coalesce(array_length(p_query_embedding, 1), 0), v_model, v_dimensions
            USING ERRCODE = 'data_exception', HINT = 'Embed the query with the artifacts'' model.';
        END IF;
        IF v_kernel IS NOT NULL THEN
            -- dynamic, only because the function does not exist in every install; v_kernel is its
            -- regproc, not user input
            EXECUTE format(
                'SELECT array_agg(n.id ORDER BY n.similarity DESC, n.id),
                        array_agg(n.similarity ORDER BY n.similarity DESC, n.id)
                 FROM (
                     SELECT a.id, %s(a.embedding, $1) AS similarity
                     FROM autopilot.knowledge_artifacts AS a
                     WHERE a.embedding_model = $2 AND a.embedding IS NOT NULL
                       AND ($3 IS NULL OR a.artifact_type = $3)
                     ORDER BY similarity DESC, a.id
                     LIMIT $4
                 ) AS n',
                v_kernel
            ) INTO v_vector_ids, v_similarities USING p_query_embedding, v_model, p_artifact_type, v_depth;
        ELSE
            SELECT array_agg(n.id ORDER BY n.similarity DESC, n.id), array_agg(n.similarity ORDER BY n.similarity DESC, n.id)
            INTO v_vector_ids, v_similarities
            FROM (
                SELECT
                    a.id,
                    (SELECT sum(u.x::double precision * u.y) FROM unnest(a.embedding, p_query_embedding) AS u (x, y))
                        AS similarity
                FROM autopilot.knowledge_artifacts AS a
                WHERE
                    a.embedding_model = v_model AND a.embedding IS NOT NULL
                    AND (p_artifact_type IS NULL OR a.artifact_type = p_artifact_type)
                ORDER BY similarity DESC, a.id
                LIMIT v_depth
            ) AS n;
        END IF;
    END IF;
    IF nullif(btrim(p_query_text), '') IS NOT NULL THEN
        -- any word may match (a natural-language query rarely has all its words in one artifact)
        v_words := nullif(
            replace(plainto_tsquery('simple'::regconfig, autopilot._code_tokens(p_query_text))::text, ' & ', ' | '),
            ''
        )::tsquery;
    END IF;

    RETURN QUERY
    WITH vector_hits AS (
        SELECT v.id, v.rank::integer AS rank, v.similarity
        FROM unnest(coalesce(v_vector_ids, '{}'), coalesce(v_similarities, '{}'))
            WITH ORDINALITY AS v (id, similarity, rank)
    ),

    text_hits AS (
        SELECT
            t.id,
            row_number() OVER (ORDER BY ts_rank_cd(t.search_vector, v_words) DESC, t.id)::integer AS rank
        FROM autopilot.knowledge_artifacts AS t
        WHERE
            v_words IS NOT NULL
            AND t.search_vector @@ v_words
            AND (p_artifact_type IS NULL OR t.artifact_type = p_artifact_type)
        ORDER BY ts_rank_cd(t.search_vector, v_words) DESC, t.id
        LIMIT v_depth
    ),

    fused AS (
        SELECT
            coalesce(v.id, t.id) AS id,
            v.rank AS vector_rank,
            t.rank AS text_rank,
            v.similarity,
            coalesce(1.0 / (60 + v.rank), 0) + coalesce(1.0 / (60 + t.rank), 0) AS score
        FROM vector_hits AS v
        FULL JOIN text_hits AS t ON v.id = t.id
    )

    SELECT
        a.artifact_type,
        a.name,
        a.source,
        f.score::double precision,
        f.vector_rank,
        f.text_rank,
        f.similarity,
        a.id
    FROM fused AS f
    INNER JOIN autopilot.knowledge_artifacts AS a ON f.id = a.id
    ORDER BY f.score DESC, a.id
    LIMIT p_limit;
END;
$$;

COMMENT ON FUNCTION autopilot.search_knowledge(real[], text, integer, text, text) IS
'Hybrid search over the knowledge artifacts: exact nearest by embedding (one model) and full-text rank over their type, name, description and tags, fused by reciprocal rank; each row has the artifact, its score, both ranks and its cosine similarity.';
