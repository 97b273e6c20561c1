CREATE TABLE autopilot.analysis_snapshots (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    commit_sha text,
    digest text NOT NULL,
    files integer NOT NULL,
    findings bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT analysis_snapshots_pkey PRIMARY KEY (id),
    CONSTRAINT analysis_snapshots_codebase_fkey FOREIGN KEY (codebase)
    REFERENCES autopilot.codebases (name) ON DELETE CASCADE,
    CONSTRAINT analysis_snapshots_counts_check CHECK (files >= 0 AND findings >= 0)
);

-- a codebase's snapshots, newest first (the baseline of the next one, pruning)
CREATE INDEX analysis_snapshots_codebase_idx ON autopilot.analysis_snapshots (codebase, id);

COMMENT ON TABLE autopilot.analysis_snapshots IS
'What registry-sync''s analyzers found in a codebase at one commit (autopilot.record_analysis_snapshot): the files in analysis_snapshot_files, the counts per file and rule in analysis_snapshot_findings, each analyzer''s outcome in analysis_snapshot_analyzers.';
COMMENT ON COLUMN autopilot.analysis_snapshots.commit_sha IS 'HEAD of the work tree when the analyzers ran; NULL outside git.';
COMMENT ON COLUMN autopilot.analysis_snapshots.digest IS
'md5 of the analyzers'' outcomes, the files and the counts: a run at the same commit with the same digest records nothing new.';
COMMENT ON COLUMN autopilot.analysis_snapshots.files IS 'Files given to the analyzers.';
COMMENT ON COLUMN autopilot.analysis_snapshots.findings IS 'Findings of every analyzer that succeeded.';
