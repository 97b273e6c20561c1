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
    CONSTRAINT code_chunks_pkey PRIMARY KEY (id),
    CONSTRAINT code_chunks_chunk_index_check CHECK (chunk_index >= 0)
);

-- one current chunk per position of a file; superseded versions are kept until cleanup
CREATE UNIQUE INDEX code_chunks_current_key ON autopilot.code_chunks (codebase, file_path, chunk_index)
WHERE superseded_at IS NULL;
-- code-chunk-cleanup walks obsolete chunks
CREATE INDEX code_chunks_superseded_idx ON autopilot.code_chunks (superseded_at, id)
WHERE superseded_at IS NOT NULL;

COMMENT ON TABLE autopilot.code_chunks IS
'Chunks of ingested source code with their embeddings (written by code-ingest).';
COMMENT ON COLUMN autopilot.code_chunks.superseded_at IS
'Set when re-ingest replaces the chunk or its file disappears: the chunk is obsolete from then on, and code-chunk-cleanup deletes it after a retention.';
