CREATE TABLE autopilot.backup_metadata (
    id bigint GENERATED ALWAYS AS IDENTITY,
    kind text NOT NULL,
    database_name text NOT NULL,
    file_path text,
    size_bytes bigint,
    sha256 text,
    status text NOT NULL DEFAULT 'running',
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    verified_at timestamptz,
    verification text,
    error text,
    details jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT backup_metadata_pkey PRIMARY KEY (id),
    CONSTRAINT backup_metadata_kind_check CHECK (kind IN ('hourly', 'daily', 'manual')),
    -- missing, corrupt: `autopilot backups verify` found the file of a verified backup gone, or not
    -- holding its recorded sha256 (either no longer counts as a backup; verified again once it does)
    CONSTRAINT backup_metadata_status_check CHECK (
        status IN ('running', 'succeeded', 'verified', 'failed', 'pruned', 'missing', 'corrupt')
    ),
    CONSTRAINT backup_metadata_size_check CHECK (size_bytes >= 0),
    CONSTRAINT backup_metadata_sha256_check CHECK (sha256 ~ '^[0-9a-f]{64}$')
);

-- backup-archival walks old records in id order
CREATE INDEX backup_metadata_started_at_idx ON autopilot.backup_metadata (started_at, id);

COMMENT ON TABLE autopilot.backup_metadata IS
'One row per pg_dump backup taken by the runner: kind, file, size, checksum, timings, verification and status.';
