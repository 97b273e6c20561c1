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
    version integer NOT NULL DEFAULT 1,
    content_hash text,
    source_path text,
    embedding_hash text,
    search_vector tsvector GENERATED ALWAYS AS (
        pg_catalog.to_tsvector(
            'simple'::regconfig,
            autopilot._code_tokens(
                artifact_type || ' ' || name || ' ' || coalesce(content ->> 'description', '') || ' '
                || coalesce(content ->> 'tags', '')
            )
        )
    ) STORED,
    CONSTRAINT knowledge_artifacts_pkey PRIMARY KEY (id),
    CONSTRAINT knowledge_artifacts_type_name_key UNIQUE (artifact_type, name),
    CONSTRAINT knowledge_artifacts_usage_check CHECK (usage_count >= 0),
    CONSTRAINT knowledge_artifacts_version_check CHECK (version >= 1)
);

-- old-artifact-cleanup: artifacts by last use (never used: by creation)
CREATE INDEX knowledge_artifacts_last_used_idx ON autopilot.knowledge_artifacts (
    (coalesce(last_used_at, created_at))
);
-- search_knowledge's full-text half
CREATE INDEX knowledge_artifacts_search_idx ON autopilot.knowledge_artifacts USING gin (search_vector);

COMMENT ON TABLE autopilot.knowledge_artifacts IS
'Templates, prompts and other knowledge used by agents: loaded by the runner (knowledge-migration from the templates directory, template-sync from git), embedded by template-embed; earlier versions in knowledge_artifact_versions.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.last_used_at IS
'When an agent last used the artifact; "unused" for old-artifact-cleanup is measured from here (or from created_at when never used).';
COMMENT ON COLUMN autopilot.knowledge_artifacts.embedding IS 'Embedding vector (real[]: pgvector is not assumed); model in embedding_model.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.source IS
'Who wrote the artifact: knowledge-migration or template-sync (each loader changes and deletes only its own rows), else another writer.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.version IS
'1 when loaded, one more each time a loader changes its content; the earlier contents are in knowledge_artifact_versions.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.content_hash IS
'sha256 of the template file''s bytes when last loaded: an unchanged file is not parsed again.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.source_path IS
'The template file, relative to the templates directory (knowledge-migration) or to the repository''s root (template-sync).';
COMMENT ON COLUMN autopilot.knowledge_artifacts.embedding_hash IS
'sha256 of the embedding model id, a line break and autopilot._knowledge_text() when embedded: template-embed embeds again only when either changed.';
COMMENT ON COLUMN autopilot.knowledge_artifacts.search_vector IS
'Full-text vector of the type, name, description and tags (the content is matched through the embedding), identifiers split into words (autopilot._code_tokens), for search_knowledge.';
