CREATE TABLE autopilot.codebases (
    name text NOT NULL,
    root_path text NOT NULL,
    include_globs text[] NOT NULL DEFAULT '{}',
    exclude_globs text[] NOT NULL DEFAULT '{}',
    enabled boolean NOT NULL DEFAULT true,
    last_commit text,
    last_ingested_at timestamptz,
    last_summary jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT codebases_pkey PRIMARY KEY (name),
    -- a name goes into advisory-lock keys, logs and file names: keep it plain
    CONSTRAINT codebases_name_check CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    CONSTRAINT codebases_root_path_check CHECK (left(root_path, 1) = '/')
);

COMMENT ON TABLE autopilot.codebases IS
'Source trees that code-ingest parses, chunks and embeds (autopilot codebase add/list/remove/ingest).';
COMMENT ON COLUMN autopilot.codebases.root_path IS
'Absolute path of the tree on the runner''s machine. A git work tree is listed with git (.gitignore holds); otherwise walked without following symlinks out of it.';
COMMENT ON COLUMN autopilot.codebases.include_globs IS
'Glob patterns (** for any depth) a file''s path relative to the root must match one of; empty: every file.';
COMMENT ON COLUMN autopilot.codebases.exclude_globs IS 'Glob patterns of paths never ingested.';
COMMENT ON COLUMN autopilot.codebases.last_commit IS 'HEAD of the work tree at the last complete ingest (NULL outside git).';
COMMENT ON COLUMN autopilot.codebases.last_summary IS
'Counts of the last ingest: files seen, parsed, unchanged, skipped by reason, removed, chunks, embeddings, syntax errors.';
