CREATE TABLE autopilot.code_chunks (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    file_path text NOT NULL,
    chunk_index integer NOT NULL,
    content text NOT NULL,
    content_hash text NOT NULL,
    embedding real[],
    embedding_model text,
    created_at timestamptz NOT NULL DEFAULT now(),
    superseded_at timestamptz,
    start_line integer,
    end_line integer,
    symbol text,
    kind text,
    language text,
    embedding_key text,
    search_vector tsvector GENERATED ALWAYS AS (
        pg_catalog.to_tsvector('simple'::regconfig, autopilot._code_tokens(content))
    ) STORED,
    CONSTRAINT code_chunks_pkey PRIMARY KEY (id),
    CONSTRAINT code_chunks_chunk_index_check CHECK (chunk_index >= 0),
    CONSTRAINT code_chunks_lines_check CHECK (start_line >= 1 AND end_line >= start_line)
);

-- one current chunk per position of a file; superseded versions are kept until cleanup
CREATE UNIQUE INDEX code_chunks_current_key ON autopilot.code_chunks (codebase, file_path, chunk_index)
WHERE superseded_at IS NULL;
-- search_code's full-text half, over current chunks only
CREATE INDEX code_chunks_search_idx ON autopilot.code_chunks USING gin (search_vector)
WHERE superseded_at IS NULL;
-- the embedding cache: a chunk whose key was embedded before (any file, any run) reuses that vector
CREATE INDEX code_chunks_embedding_key_idx ON autopilot.code_chunks (embedding_key)
WHERE embedding_key IS NOT NULL;
-- code-chunk-cleanup walks obsolete chunks
CREATE INDEX code_chunks_superseded_idx ON autopilot.code_chunks (superseded_at, id)
WHERE superseded_at IS NOT NULL;

COMMENT ON TABLE autopilot.code_chunks IS
'Chunks of ingested source code with their embeddings (written by code-ingest).';
COMMENT ON COLUMN autopilot.code_chunks.superseded_at IS
'Set when re-ingest replaces the chunk or its file disappears: the chunk is obsolete from then on, and code-chunk-cleanup deletes it after a retention.';
COMMENT ON COLUMN autopilot.code_chunks.symbol IS
'The definition the chunk holds, qualified (Class.method); NULL for module-level code between definitions.';
COMMENT ON COLUMN autopilot.code_chunks.embedding_key IS
'sha256 of embedding model id, chunker version and content: the embedding is computed once per key and reused by every chunk with that key.';
COMMENT ON COLUMN autopilot.code_chunks.search_vector IS
'Full-text vector of the content with identifiers split into words (autopilot._code_tokens), for search_code.';
