CREATE TABLE autopilot.analysis_snapshot_findings (
    snapshot_id bigint NOT NULL,
    path text NOT NULL,
    analyzer text NOT NULL,
    rule text NOT NULL,
    findings integer NOT NULL,
    CONSTRAINT analysis_snapshot_findings_pkey PRIMARY KEY (snapshot_id, path, analyzer, rule),
    CONSTRAINT analysis_snapshot_findings_file_fkey FOREIGN KEY (snapshot_id, path)
    REFERENCES autopilot.analysis_snapshot_files (snapshot_id, path) ON DELETE CASCADE,
    CONSTRAINT analysis_snapshot_findings_findings_check CHECK (findings > 0)
);

COMMENT ON TABLE autopilot.analysis_snapshot_findings IS
'How many findings of each rule an analyzer reported in each file of a registry-sync snapshot (a file and rule without findings has no row).';
COMMENT ON COLUMN autopilot.analysis_snapshot_findings.rule IS
'The analyzer''s rule: ruff''s code (F401, invalid-syntax), cyclomatic for the complexity analyzer, the query''s name (bare-except, todo-comment ...).';
