-- autopilot._code_tokens(): code text as words for full-text search. In an extension install by a
-- superuser it is compiled (src/code_tokens.c), in schema mode the SQL definition; either way the
-- result is the SQL definition's, byte for byte, since code_chunks.search_vector is generated from
-- it. The reference here is that definition written out (its three regexp_replace passes).
BEGIN;
SELECT plan(8);

CREATE FUNCTION pg_temp.reference(p_text text) RETURNS text LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT regexp_replace(
        regexp_replace(
            regexp_replace(p_text, '([[:lower:][:digit:]])([[:upper:]])', '\1 \2', 'g'),
            '([[:upper:]]+)([[:upper:]][[:lower:]])', '\1 \2', 'g'
        ),
        '[^[:alnum:]]+', ' ', 'g'
    )
$$;

CREATE TEMP TABLE samples (sample text);
INSERT INTO samples (sample) VALUES
('getHTTPResponse_code'), ('HTTPServer'), ('ABcDEf'), ('a1B'), ('x2Y3z'), ('__init__'),
('os.path.join(a, b) -> None'), ('  leading and trailing  '), ('...'), (''), ('a'), ('A'), ('AB'),
('ABc'), ('aB'), ('1A'), ('A1b'), ('XMLHttpRequest2JSON'), (E'tab\there\nnew line\r\n'),
('snake_case_name CamelCaseName mixedCase_and_more'), ('IOError EOFError getURLsFromHTML'),
('naïveÉtat'), ('Straße_größeÜber'), ('emoji 🎉 inCamel🎉Case'), ('ÀBCdéf'), ('aÉb'),
(repeat('getValueFromXMLNode_', 500)), (repeat('?!', 1000)), ('$$ -- /* */ @@ ## %% ^^'),
('0x1F 1e10 3.14 v1.2.3 ABC123def');

SELECT is_empty(
    $$SELECT sample FROM samples WHERE autopilot._code_tokens(sample) IS DISTINCT FROM pg_temp.reference(sample)$$,
    'the same result as the SQL definition: camelCase, runs of capitals, digits, punctuation, blanks, non-ASCII'
);
SELECT is_empty(
    $$SELECT p.oid FROM pg_catalog.pg_proc AS p
      WHERE autopilot._code_tokens(p.prosrc) IS DISTINCT FROM pg_temp.reference(p.prosrc)$$,
    'the same result over real code: the source of every function in the database'
);
SELECT is_empty(
    $$SELECT c.id FROM autopilot.code_chunks AS c
      WHERE autopilot._code_tokens(c.content) IS DISTINCT FROM pg_temp.reference(c.content)$$,
    'the same result over every chunk ingested'
);
SELECT is(
    autopilot._code_tokens('getHTTPResponse_code os.path.join parseURL2Json'),
    'get HTTP Response code os path join parse URL2 Json',
    'identifiers split on camelCase, capitals, snake_case and dots'
);
SELECT is(autopilot._code_tokens(''), '', 'the empty string stays empty');
SELECT is(autopilot._code_tokens(NULL), NULL, 'NULL gives NULL (strict)');
SELECT is(
    autopilot._code_tokens('ÉtatNaïve_über'), pg_temp.reference('ÉtatNaïve_über'),
    'text outside ASCII follows the regular expressions (the database''s locale)'
);
SELECT is(
    (
        SELECT l.lanname::text
        FROM pg_catalog.pg_proc AS p
        INNER JOIN pg_catalog.pg_language AS l ON p.prolang = l.oid
        WHERE p.oid = 'autopilot._code_tokens(text)'::regprocedure
    ),
    -- where the library could be loaded (the compiled inner product is there too), else SQL
    CASE WHEN to_regprocedure('autopilot._inner_product(real[], real[])') IS NOT NULL THEN 'c' ELSE 'sql' END,
    'compiled wherever the extension''s library is installed (the compiled inner product is there too)'
);

SELECT * FROM finish();
ROLLBACK;
