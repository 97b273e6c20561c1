-- autopilot.drop_vector_index(): drops the HNSW index create_vector_index() made for one
-- embedding model, usable or not. Dropping a real HNSW index (and search falling back to the
-- exact path) is tested with pgvector: tests/py/test_pgvector.py.
BEGIN;
SELECT plan(5);

SELECT throws_ok(
    $$SELECT autopilot.drop_vector_index(NULL)$$, '22004',
    'drop_vector_index needs an embedding model',
    'a model is required'
);
SELECT is(autopilot.drop_vector_index('m2'), false, 'no index: nothing dropped, no error');

-- an index by that name, as a build interrupted or a DBA would leave it
SELECT lives_ok(
    format(
        'CREATE INDEX %I ON autopilot.code_chunks (id) WHERE embedding_model = %L',
        (SELECT x.index_name FROM autopilot._vector_index('m2') AS x), 'm2'
    ),
    'an index by the model''s name'
);
SELECT is(autopilot.drop_vector_index('m2'), true, 'it is dropped, usable or not');
SELECT is(
    to_regclass(format('autopilot.%I', (SELECT x.index_name FROM autopilot._vector_index('m2') AS x))),
    NULL,
    'and is gone'
);

SELECT * FROM finish();
ROLLBACK;
