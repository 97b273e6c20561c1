-- autopilot.search_code(): hybrid code search (nearest chunks by embedding, full
-- text over code tokens ranked by the rarity of the words held, weighted
-- reciprocal rank fusion), and the private
-- functions it is made of: _code_tokens(), _nearest_chunks(), _inner_product()
-- (compiled; absent in schema mode, where the SQL sum gives the same results).
-- The ingest that fills code_chunks: tests/py/test_code_ingest.py.
BEGIN;
SELECT plan(22);

SELECT is(
    autopilot._code_tokens('getHTTPResponse_code os.path.join parseURL2Json'),
    'get HTTP Response code os path join parse URL2 Json',
    '_code_tokens splits camelCase, acronyms, snake_case and dotted names into words'
);

-- three chunks with 2-dimensional unit embeddings of model m2, one of another model, one superseded
INSERT INTO autopilot.code_chunks (
    codebase, file_path, chunk_index, content, content_hash, embedding, embedding_model, symbol, kind,
    start_line, end_line, superseded_at
)
VALUES
(
    'a', 'geo.py', 0, 'def total_area(shapes): return sum(s.area() for s in shapes)', 'h1', '{1,0}', 'm2',
    'total_area', 'function', 1, 2, NULL
),
(
    'a', 'geo.py', 1, 'def perimeter(shape): return shape.side * 4', 'h2', '{0.6,0.8}', 'm2',
    'perimeter', 'function', 3, 4, NULL
),
(
    'a', 'net.py', 0, 'def fetchJson(url): return http.get(url).json()', 'h3', '{0,1}', 'm2',
    'fetchJson', 'function', 1, 2, NULL
),
('b', 'x.py', 0, 'def total_area(): pass', 'h4', '{1,0}', 'm2', 'total_area', 'function', 1, 1, NULL),
('a', 'old.py', 0, 'def total_area(): old', 'h5', '{1,0}', 'm2', 'total_area', 'function', 1, 1, now());

SELECT is(
    array(SELECT n.chunk_id FROM autopilot._nearest_chunks('{1,0}', 'm2', 'a', 2) AS n),
    array(
        SELECT c.id FROM autopilot.code_chunks AS c
        WHERE c.content_hash IN ('h1', 'h2')
        ORDER BY c.id
    ),
    '_nearest_chunks: the current chunks of one codebase and model, most similar first'
);
SELECT is(
    (SELECT round(n.similarity::numeric, 6) FROM autopilot._nearest_chunks('{0.6,0.8}', 'm2', 'a', 1) AS n),
    1.000000,
    '_nearest_chunks: similarity is the inner product (cosine of unit vectors)'
);
-- plpgsql plans a statement when it first runs it: where the compiled function is absent, the
-- branch naming it never runs
CREATE FUNCTION pg_temp.tap_inner_product() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    IF to_regprocedure('autopilot._inner_product(real[], real[])') IS NULL THEN
        RETURN NEXT skip('the compiled _inner_product is not installed (schema mode)', 2);
        RETURN;
    END IF;
    RETURN NEXT is(autopilot._inner_product('{1,2,3}', '{4,5,6}'), 32::double precision, '_inner_product: the dot product');
    RETURN NEXT throws_ok(
        $q$SELECT autopilot._inner_product('{1,2}', '{1,2,3}')$q$, '22000',
        'embeddings of different dimensions: 2 and 3', '_inner_product refuses vectors of two sizes'
    );
END;
$$;
SELECT * FROM pg_temp.tap_inner_product();

SELECT is(
    (
        SELECT s.symbol FROM autopilot.search_code('{1,0}', 'sum of the area of shapes', 'a') AS s
        ORDER BY s.score DESC LIMIT 1
    ),
    'total_area',
    'hybrid: the chunk both halves rank first comes first'
);
SELECT is(
    (
        SELECT ARRAY[s.vector_rank, s.text_rank] FROM autopilot.search_code('{1,0}', 'total area', 'a') AS s
        ORDER BY s.score DESC LIMIT 1
    ),
    ARRAY[1, 1],
    'each row says its rank in both halves'
);
SELECT is(
    (
        SELECT round(s.score::numeric, 12) FROM autopilot.search_code('{1,0}', 'total_area', 'a') AS s
        ORDER BY s.score DESC LIMIT 1
    ),
    round(2.0 / 61, 12),
    'a query naming code: the score is the reciprocal rank fusion 1/(60 + vector rank) + 1/(60 + text rank)'
);
SELECT is(
    (
        SELECT round(s.score::numeric, 12) FROM autopilot.search_code('{1,0}', 'total area', 'a') AS s
        ORDER BY s.score DESC LIMIT 1
    ),
    round(1.0 / 61 + 0.5 / 61, 12),
    'a sentence: the text half weighs half, 1/(60 + vector rank) + 0.5/(60 + text rank)'
);
SELECT is(
    array(SELECT s.symbol FROM autopilot.search_code(NULL, 'fetch_json', 'a') AS s),
    ARRAY['fetchJson'],
    'text only: identifiers match across snake_case and camelCase; a NULL vector rank'
);
SELECT is(
    array(SELECT s.file_path FROM autopilot.search_code('{1,0}', NULL, NULL, 10) AS s),
    ARRAY['geo.py', 'x.py', 'geo.py', 'net.py'],
    'vector only, every codebase: superseded chunks are never found'
);
SELECT is(
    (SELECT count(*) FROM autopilot.search_code('{1,0}', 'area', NULL, 1)),
    1::bigint,
    'p_limit rows at most'
);

INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, embedding, embedding_model)
VALUES ('a', 'z.py', 0, 'z', 'h6', '{1,0,0}', 'm3');
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_code('{1,0}', NULL, 'a')$$, '42P08',
    'search_code: the chunks searched are embedded with 2 models',
    'two models in scope and none named: an error, never a comparison across models'
);
SELECT is(
    array(SELECT s.file_path FROM autopilot.search_code('{1,0,0}', NULL, 'a', 5, 'm3') AS s),
    ARRAY['z.py'],
    'p_embedding_model picks the chunks of that model'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_code('{1,0,0}', NULL, 'a', 5, 'm2')$$, '22000',
    'search_code: the query embedding has 3 dimensions, the chunks of model m2 have 2',
    'a query vector of another size is refused'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_code(NULL, '  ')$$, '22004',
    'search_code needs a query embedding, a query text, or both',
    'nothing to search with'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_code(NULL, 'x', NULL, 0)$$, '22023',
    'search_code: p_limit must be between 1 and 1000, not 0',
    'a limit out of range'
);
SELECT is(
    (SELECT count(*) FROM autopilot.search_code(NULL, 'zebra quagga', NULL)),
    0::bigint,
    'words found nowhere: no rows, no error'
);

-- the text half: chunks without embeddings in codebase c; "shapes" is in three of them (three times,
-- twice, once), "perimeter" in one
INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, symbol)
VALUES
('c', 'draw.py', 0, 'def draw(shapes): for shape in shapes: shape.draw(shapes)', 'c1', 'draw'),
('c', 'scale.py', 0, 'def scale(shapes): return [shape * 2 for shape in shapes]', 'c2', 'scale'),
('c', 'count.py', 0, 'def count(shapes): return 0', 'c3', 'count'),
('c', 'perimeter.py', 0, 'def perimeter(side): return side * 4', 'c4', 'perimeter'),
('c', 'words.py', 0, 'WORDS = "the of a to in the of a"', 'c5', 'WORDS');
SELECT is(
    array(SELECT s.symbol FROM autopilot.search_code(NULL, 'perimeter shapes', 'c') AS s),
    ARRAY['perimeter', 'draw', 'scale', 'count'],
    'text: the chunk holding the rare word first, though another holds the common one three times; '
    'chunks holding the same words by ts_rank_cd'
);
SELECT is(
    array(SELECT s.symbol FROM autopilot.search_code(NULL, 'the perimeter of a square', 'c') AS s),
    ARRAY['perimeter'],
    'a sentence: its English stop words match nothing'
);
SELECT is(
    array(SELECT s.symbol FROM autopilot.search_code(NULL, 'the of', 'c') AS s),
    ARRAY['WORDS'],
    'a sentence of stop words only: they are searched'
);
SELECT is(
    (
        SELECT round(s.score::numeric, 12) FROM autopilot.search_code('{1,0}', 'shapes.draw()', 'a', 10, 'm2') AS s
        ORDER BY s.score DESC LIMIT 1
    ),
    round(1.0 / 61 + 1.0 / 61, 12),
    'a dotted or called name is code, not a sentence: both halves weigh alike'
);

SELECT * FROM finish();
ROLLBACK;
