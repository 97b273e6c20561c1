CREATE TABLE autopilot.analysis_snapshot_analyzers (
    snapshot_id bigint NOT NULL,
    analyzer text NOT NULL,
    status text NOT NULL,
    version text NOT NULL,
    files integer NOT NULL DEFAULT 0,
    findings bigint NOT NULL DEFAULT 0,
    seconds double precision NOT NULL,
    message text,
    CONSTRAINT analysis_snapshot_analyzers_pkey PRIMARY KEY (snapshot_id, analyzer),
    CONSTRAINT analysis_snapshot_analyzers_snapshot_id_fkey FOREIGN KEY (snapshot_id)
    REFERENCES autopilot.analysis_snapshots (id) ON DELETE CASCADE,
    CONSTRAINT analysis_snapshot_analyzers_status_check CHECK (status IN ('ok', 'failed', 'timed_out')),
    CONSTRAINT analysis_snapshot_analyzers_message_check CHECK (status = 'ok' OR message IS NOT NULL),
    CONSTRAINT analysis_snapshot_analyzers_counts_check CHECK (files >= 0 AND findings >= 0 AND seconds >= 0)
);

COMMENT ON TABLE autopilot.analysis_snapshot_analyzers IS
'How each analyzer of a registry-sync snapshot ended: ok (its counts are in analysis_snapshot_findings), failed or timed_out (message says why; it has no counts in the snapshot and its next run is compared with its last ok one).';
COMMENT ON COLUMN autopilot.analysis_snapshot_analyzers.version IS
'The analyzer''s version and options (ruff''s version; the complexity threshold): a snapshot is compared only with one of the same version, else it is a new baseline.';
COMMENT ON COLUMN autopilot.analysis_snapshot_analyzers.files IS 'Files the analyzer read.';
COMMENT ON COLUMN autopilot.analysis_snapshot_analyzers.findings IS 'Its findings in the snapshot (the sum of its counts).';
