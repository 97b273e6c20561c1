CREATE TABLE autopilot.knowledge_artifacts (
    id bigint GENERATED ALWAYS AS IDENTITY,
    artifact_type text NOT NULL,
    name text NOT NULL,
    content jsonb NOT NULL DEFAULT '{}',
    source text,
    usage_count bigint NOT NULL DEFAULT 0,
    last_used_at timestamptz,
    embedding real[],
    embedding_model text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_artifacts_pkey PRIMARY KEY (id),
    CONSTRAINT knowledge_artifacts_type_name_key UNIQUE (artifact_type, name),
    CONSTRAINT knowledge_artifacts_usage_check CHECK (usage_count >= 0)
);

-- old-artifact-cleanup: artifacts by last use (never used: by creation)
CREATE INDEX knowledge_artifacts_last_used_idx ON autopilot.knowledge_artifacts (
    (coalesce(last_used_at, created_at))
);

COMMENT ON TABLE autopilot.knowledge_artifacts IS
'Templates, prompts and other knowledge loaded by the runner (knowledge-migration, template-sync) and used by agents.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.last_used_at IS
'When an agent last used the artifact; "unused" for old-artifact-cleanup is measured from here (or from created_at when never used).';
COMMENT ON COLUMN autopilot.knowledge_artifacts.embedding IS 'Embedding vector (real[]: pgvector is not assumed); model in embedding_model.';
