CREATE FUNCTION autopilot._code_tokens(p_text text)
RETURNS text
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- camelCase and HTTPServer split into words, then every run of non-alphanumerics
    -- (snake_case underscores, dots, operators) becomes a blank
    SELECT pg_catalog.regexp_replace(
    pg_catalog.regexp_replace(
        pg_catalog.regexp_replace(p_text, '([[:lower:][:digit:]])([[:upper:]])', '\1 \2', 'g'),
        '([[:upper:]]+)([[:upper:]][[:lower:]])', '\1 \2', 'g'
    ),
    '[^[:alnum:]]+', ' ', 'g'
    )
$$;

COMMENT ON FUNCTION autopilot._code_tokens(text) IS
'Code text as words for full-text search: identifiers split on camelCase, snake_case and dots (getHTTPResponse_code: get HTTP Response code); used by code_chunks.search_vector and search_code''s query.';
