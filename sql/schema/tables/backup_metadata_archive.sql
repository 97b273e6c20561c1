CREATE TABLE autopilot.backup_metadata_archive (
    id bigint NOT NULL,
    kind text NOT NULL,
    database_name text NOT NULL,
    file_path text,
    size_bytes bigint,
    sha256 text,
    status text NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    verified_at timestamptz,
    verification text,
    error text,
    details jsonb NOT NULL DEFAULT '{}',
    archived_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT backup_metadata_archive_pkey PRIMARY KEY (id)
);

COMMENT ON TABLE autopilot.backup_metadata_archive IS
'Backup records older than the backups.archive_after setting, moved here by backup-archival (each in the same statement that deletes it from autopilot.backup_metadata).';
