-- autopilot.search_knowledge(): hybrid search over the knowledge artifacts (exact nearest by embedding of
-- one model, full-text rank over their text, reciprocal rank fusion), and the private
-- autopilot._knowledge_text() behind knowledge_artifacts.search_vector and template-embed.
-- The workers that fill and embed the artifacts: tests/py/test_knowledge.py.
BEGIN;
SELECT plan(15);

SELECT is(
    autopilot._knowledge_text(
        'code_template', 'genserver',
        '{"type": "code_template", "name": "genserver", "tags": ["otp", "elixir"],
          "content": {"body": "defmodule X", "notes": ["a", 1, {"deep": "b"}]},
          "description": "A GenServer skeleton"}'
    ),
    E'code_template\ngenserver\nA GenServer skeleton\notp\nelixir\ndefmodule X\na\nb',
    '_knowledge_text: type, name, description, tags, then the other strings of the content (no keys, no numbers)'
);
SELECT is(
    autopilot._knowledge_text('prompt', 'p', '"a bare string"'), E'prompt\np\na bare string',
    '_knowledge_text: a content that is a string is that string'
);
SELECT is(
    autopilot._knowledge_text('prompt', 'p', '{"description": 5, "tags": "one"}'), E'prompt\np\none',
    '_knowledge_text: a description that is no string is left out; tags that are a string count'
);
SELECT is(autopilot._knowledge_text('prompt', 'p', '{}'), E'prompt\np', '_knowledge_text: an empty content');

DELETE FROM autopilot.knowledge_artifacts;
INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, content, source, embedding, embedding_model)
VALUES
('code_template', 'python-retry', '{"description": "retry with exponential backoff"}', 'tap', '{1,0}', 'm2'),
('code_template', 'genserver', '{"description": "GenServer handle_call skeleton"}', 'tap', '{0.6,0.8}', 'm2'),
('prompt', 'review', '{"description": "review a pull request"}', 'tap', '{0,1}', 'm2'),
('prompt', 'other-model', '{"description": "retry review"}', 'tap', '{1,0,0}', 'm3'),
('prompt', 'unembedded', '{"description": "handleCall retry"}', 'tap', NULL, NULL);

SELECT ok(
    (
        SELECT search_vector @@ to_tsquery('simple', 'handle & call') FROM autopilot.knowledge_artifacts
        WHERE name = 'unembedded'
    ),
    'search_vector: identifiers of the text split into words (handleCall: handle call)'
);
SELECT results_eq(
    $$SELECT name, vector_rank, round(similarity::numeric, 3)
      FROM autopilot.search_knowledge('{1,0}', NULL, 3, 'm2')$$,
    $$VALUES ('python-retry'::text, 1, 1.000), ('genserver', 2, 0.600), ('review', 3, 0.000)$$,
    'by embedding: the artifacts of that model only, most similar first, with their cosine'
);
SELECT set_eq(
    $$SELECT name FROM autopilot.search_knowledge(NULL, 'retry', 10)$$,
    ARRAY['python-retry', 'other-model', 'unembedded'],
    'by words: the artifacts whose text says them, embedded or not'
);
SELECT is(
    (SELECT name FROM autopilot.search_knowledge('{1,0}', 'retry backoff', 1, 'm2')), 'python-retry',
    'both halves: the artifact both rank first comes first'
);
SELECT ok(
    (SELECT vector_rank = 1 AND text_rank = 1 FROM autopilot.search_knowledge('{1,0}', 'retry backoff', 1, 'm2')),
    'both halves: its two ranks'
);
SELECT is(
    (SELECT array_agg(name ORDER BY name) FROM autopilot.search_knowledge('{0,1}', 'retry', 10, 'm2', 'prompt')),
    ARRAY['other-model', 'review', 'unembedded'],
    'p_artifact_type: only artifacts of that type'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_knowledge('{1,0}', NULL, 10)$$,
    '42P08', NULL, 'without a model, artifacts of two models are ambiguous'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_knowledge('{1,0,0}', NULL, 10, 'm2')$$,
    '22000', NULL, 'a query embedding of other dimensions than the model''s is an error'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_knowledge(NULL, '  ', 10)$$,
    '22004', NULL, 'neither an embedding nor words: an error'
);
SELECT throws_ok(
    $$SELECT * FROM autopilot.search_knowledge(NULL, 'retry', 0)$$,
    '22023', NULL, 'p_limit between 1 and 1000'
);
SELECT is_empty(
    $$SELECT * FROM autopilot.search_knowledge('{1,0}', NULL, 5, 'unknown-model')$$,
    'a model no artifact has: nothing by embedding'
);

SELECT * FROM finish();
ROLLBACK;
