CREATE TABLE autopilot.code_files (
    codebase text NOT NULL,
    file_path text NOT NULL,
    language text,
    module_name text,
    content_hash text NOT NULL,
    size_bytes bigint NOT NULL,
    chunker_version text,
    syntax_errors integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'ingested',
    skip_reason text,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    graph_pending boolean NOT NULL DEFAULT true,
    CONSTRAINT code_files_pkey PRIMARY KEY (codebase, file_path),
    CONSTRAINT code_files_codebase_fkey FOREIGN KEY (codebase)
    REFERENCES autopilot.codebases (name) ON DELETE CASCADE,
    CONSTRAINT code_files_status_check CHECK (status IN ('ingested', 'skipped', 'removed')),
    CONSTRAINT code_files_skip_reason_check CHECK ((status = 'skipped') = (skip_reason IS NOT NULL)),
    CONSTRAINT code_files_size_check CHECK (size_bytes >= 0),
    CONSTRAINT code_files_syntax_errors_check CHECK (syntax_errors >= 0)
);

-- graph-populate: the files whose symbols changed since its last run
CREATE INDEX code_files_graph_pending_idx ON autopilot.code_files (codebase)
WHERE graph_pending;
-- graph-populate: import targets by module name
CREATE INDEX code_files_module_name_idx ON autopilot.code_files (codebase, module_name)
WHERE module_name IS NOT NULL;

COMMENT ON TABLE autopilot.code_files IS
'One row per file code-ingest has seen: the content hash that lets an unchanged file go unparsed, and why a file was skipped.';
COMMENT ON COLUMN autopilot.code_files.content_hash IS 'sha256 of the file''s bytes when last read.';
COMMENT ON COLUMN autopilot.code_files.chunker_version IS
'The chunker that cut the file''s chunks: a new chunker version re-parses every file once.';
COMMENT ON COLUMN autopilot.code_files.module_name IS
'The name other files import this one by (Python: dotted module; JavaScript/TypeScript: path without extension), matched by graph-populate.';
COMMENT ON COLUMN autopilot.code_files.graph_pending IS
'Set by code-ingest whenever the file''s symbols change (parsed again, removed, skipped); graph-populate brings such files'' nodes and edges up to date and clears it.';
COMMENT ON COLUMN autopilot.code_files.status IS
'ingested (its chunks and symbols are current), skipped (skip_reason: binary, too large, unreadable, unknown language), removed (gone from the tree).';
