CREATE TABLE autopilot.knowledge_artifact_versions (
    artifact_id bigint NOT NULL,
    version integer NOT NULL,
    content jsonb NOT NULL,
    content_hash text,
    source text,
    source_path text,
    valid_from timestamptz NOT NULL,
    valid_until timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_artifact_versions_pkey PRIMARY KEY (artifact_id, version),
    CONSTRAINT knowledge_artifact_versions_artifact_fkey FOREIGN KEY (artifact_id)
    REFERENCES autopilot.knowledge_artifacts (id) ON DELETE CASCADE,
    CONSTRAINT knowledge_artifact_versions_version_check CHECK (version >= 1),
    CONSTRAINT knowledge_artifact_versions_valid_check CHECK (valid_until >= valid_from)
);

COMMENT ON TABLE autopilot.knowledge_artifact_versions IS
'Earlier contents of knowledge artifacts: a loader (knowledge-migration, template-sync) that changes an artifact''s content first copies the version it replaces here. Deleted with its artifact.';
COMMENT ON COLUMN autopilot.knowledge_artifact_versions.valid_from IS
'When this version became the artifact''s content (its updated_at then).';
COMMENT ON COLUMN autopilot.knowledge_artifact_versions.valid_until IS 'When the next version replaced it.';
