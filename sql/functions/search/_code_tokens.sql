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

-- The same, compiled (src/code_tokens.c), where it can be: in an extension install (CREATE
-- EXTENSION / ALTER EXTENSION UPDATE, the library installed beside the control file) by a
-- superuser (C functions are untrusted). It gives the SQL definition's result byte for byte (text
-- outside ASCII goes through the same regexp_replace calls), so code_chunks.search_vector and
-- knowledge_artifacts.search_vector, generated from it, hold the same values either way; it is the
-- biggest part of the server's work in a code-ingest.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'autopilot')
        OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        RETURN;
    END IF;
    CREATE OR REPLACE FUNCTION autopilot._code_tokens(p_text text)
    RETURNS text
    LANGUAGE c
    IMMUTABLE
    STRICT
    PARALLEL SAFE
    -- no SET search_path, unlike every other function: C code that resolves no name has nothing to
    -- pin, and a SET clause is a GUC save and restore on every call (one per chunk written)
    AS '$libdir/autopilot', 'autopilot_code_tokens';

    -- the same comment as the SQL definition's: the same function, whichever language
    COMMENT ON FUNCTION autopilot._code_tokens(text) IS
    'Code text as words for full-text search: identifiers split on camelCase, snake_case and dots '
    '(getHTTPResponse_code: get HTTP Response code); used by code_chunks.search_vector and search_code''s '
    'query.';
EXCEPTION
    WHEN undefined_file THEN
        RAISE NOTICE 'autopilot''s library is not installed on this server: code tokens are computed in SQL, slower'
        USING HINT = 'Install the library (make install) before CREATE EXTENSION autopilot to use the compiled tokenizer.';
END;
$do$;
