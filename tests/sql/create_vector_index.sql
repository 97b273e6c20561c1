-- autopilot.create_vector_index(): the HNSW index of one embedding model's chunks, where pgvector
-- is installed, and the private _vector_index() that names it and says whether code search can
-- use it. This suite runs where pgvector may be absent: it checks the error that says so, the
-- names, and that the exact path answers whenever no usable index exists. The index itself, the
-- plans that use it, recall against the exact path and the codebase filter are tested on a
-- PostgreSQL 18 server with pgvector: tests/py/test_pgvector.py.
BEGIN;
SELECT plan(11);

INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, embedding, embedding_model)
VALUES
('a', 'x.py', 0, 'x', 'h1', '{1,0}', 'm2'),
('a', 'y.py', 0, 'y', 'h2', '{0.6,0.8}', 'm2'),
('b', 'z.py', 0, 'z', 'h3', '{0,1}', 'm2');

SELECT throws_ok(
    $$SELECT autopilot.create_vector_index(NULL)$$, '22004',
    'create_vector_index needs an embedding model',
    'a model is required'
);
SELECT throws_ok(
    $$SELECT autopilot.create_vector_index('m2', NULL)$$, '22004',
    'create_vector_index: p_m and p_ef_construction must not be NULL',
    'the index options are required (they have defaults)'
);

-- plpgsql plans a statement when it first runs it: the branch that does not apply never runs
CREATE FUNCTION pg_temp.tap_without_pgvector() RETURNS SETOF text LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'vector') THEN
        RETURN NEXT skip('pgvector is installed in this database (tests/py/test_pgvector.py covers it)', 1);
        RETURN;
    END IF;
    RETURN NEXT throws_ok(
        $q$SELECT autopilot.create_vector_index('m2')$q$, '42704',
        'the vector extension (pgvector) is not installed in this database',
        'without pgvector: an error that says so (search stays exact)'
    );
END;
$$;
SELECT * FROM pg_temp.tap_without_pgvector();

SELECT is(
    (SELECT x.index_name FROM autopilot._vector_index('all-MiniLM-L6-v2') AS x),
    'code_chunks_hnsw_all_minilm_l6_v2_'
    || left(encode(sha256(convert_to('all-MiniLM-L6-v2', 'UTF8')), 'hex'), 8),
    'the index is named after its table and the model (letters and digits, lower case, and a hash)'
);
SELECT isnt(
    (SELECT x.index_name FROM autopilot._vector_index('m-1') AS x),
    (SELECT x.index_name FROM autopilot._vector_index('m_1') AS x),
    'two models whose names differ only in punctuation get two indexes'
);
SELECT ok(
    (
        SELECT length(x.index_name) <= 63 AND x.index_name ~ '^code_chunks_hnsw_[a-z0-9_]+_[0-9a-f]{8}$'
        FROM autopilot._vector_index(repeat('Ä long model name ', 20)) AS x
    ),
    'a long or non-ASCII model name still gives a whole identifier (at most 63 bytes)'
);
SELECT is(
    (SELECT x.index_name FROM autopilot._vector_index('---') AS x),
    'code_chunks_hnsw_' || left(encode(sha256(convert_to('---', 'UTF8')), 'hex'), 8),
    'a model name without letters or digits: the hash alone'
);
SELECT is(
    (SELECT row(x.index_oid, x.dimensions, x.vector_schema)::text FROM autopilot._vector_index('m2') AS x),
    '(,,)',
    'no index: nothing for code search to use'
);

-- an index of that name that is no HNSW index of pgvector (made by hand) is never used
SELECT lives_ok(
    format(
        'CREATE INDEX %I ON autopilot.code_chunks (id) WHERE embedding_model = %L',
        (SELECT x.index_name FROM autopilot._vector_index('m2') AS x), 'm2'
    ),
    'an index by that name, made by hand'
);
SELECT is(
    (SELECT x.index_oid FROM autopilot._vector_index('m2') AS x),
    NULL,
    'an index by that name that is not HNSW with vector_ip_ops is not usable'
);
SELECT is(
    array(
        SELECT row(n.chunk_id, round(n.similarity::numeric, 6))::text
        FROM autopilot._nearest_chunks('{1,0}', 'm2', NULL, 2) AS n
    ),
    array(
        SELECT row(c.id, s.similarity)::text
        FROM autopilot.code_chunks AS c
        INNER JOIN (VALUES ('h1', 1.000000), ('h2', 0.600000)) AS s (content_hash, similarity)
            ON c.content_hash = s.content_hash
        ORDER BY s.similarity DESC
    ),
    'without a usable index, _nearest_chunks ranks exactly'
);

SELECT * FROM finish();
ROLLBACK;
