CREATE TABLE autopilot.template_sync_state (
    singleton boolean NOT NULL DEFAULT true,
    repository text NOT NULL,
    branch text NOT NULL,
    commit_sha text NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now(),
    summary jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT template_sync_state_pkey PRIMARY KEY (singleton),
    CONSTRAINT template_sync_state_singleton_check CHECK (singleton),
    CONSTRAINT template_sync_state_commit_check CHECK (commit_sha ~ '^[0-9a-f]{40}([0-9a-f]{24})?$')
);

COMMENT ON TABLE autopilot.template_sync_state IS
'What template-sync last applied (one row): the commit of the repository''s branch whose templates the artifacts of source template-sync are. The next run applies the files changed since that commit; another repository or branch is synced whole.';
COMMENT ON COLUMN autopilot.template_sync_state.repository IS
'template_sync.repository as git fetched it: the user name and password of an http(s) URL removed (they reach git through GIT_ASKPASS only, and are never stored).';
COMMENT ON COLUMN autopilot.template_sync_state.summary IS 'Counts of the last sync: added, changed, deleted, unchanged, invalid.';
