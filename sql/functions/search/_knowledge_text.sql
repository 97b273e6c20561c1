CREATE FUNCTION autopilot._knowledge_text(p_artifact_type text, p_name text, p_content jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The text of a knowledge artifact: what template-embed embeds (its
    -- embedding_hash covers it), so that search_knowledge finds the artifact by
    -- its whole content. One line each: its type, its name, the content's
    -- "description" (when a string), the strings of its "tags", then every other
    -- string of the content in document order (object keys are not text). The
    -- description comes first because an embedder reads a bounded prefix
    -- (MiniLM: 128 tokens).
    SELECT
        p_artifact_type
        || E'\n' || p_name
        || coalesce(
            E'\n' || (
                SELECT string_agg(s.value #>> '{}', E'\n' ORDER BY s.part, s.position)
                FROM (
                    SELECT 1 AS part, 1::bigint AS position, p_content -> 'description' AS value
                    UNION ALL
                    SELECT 2, t.position, t.value
                    FROM jsonb_path_query(p_content -> 'tags', 'strict $.**') WITH ORDINALITY AS t (value, position)
                    UNION ALL
                    SELECT 3, r.position, r.value
                    FROM jsonb_path_query(
                        CASE
                            WHEN jsonb_typeof(p_content) = 'object'
                                THEN p_content - ARRAY['type', 'name', 'description', 'tags']
                            ELSE p_content
                        END,
                        'strict $.**'
                    ) WITH ORDINALITY AS r (value, position)
                ) AS s
                WHERE jsonb_typeof(s.value) = 'string'
            ),
            ''
        )
$$;

COMMENT ON FUNCTION autopilot._knowledge_text(text, text, jsonb) IS
'Private: the text of a knowledge artifact (type, name, description, tags, then every other string of its content, one per line): what template-embed embeds.';
