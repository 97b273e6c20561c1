CREATE TABLE autopilot.analysis_snapshot_files (
    snapshot_id bigint NOT NULL,
    path text NOT NULL,
    functions integer,
    complexity_total integer,
    complexity_max integer,
    CONSTRAINT analysis_snapshot_files_pkey PRIMARY KEY (snapshot_id, path),
    CONSTRAINT analysis_snapshot_files_snapshot_id_fkey FOREIGN KEY (snapshot_id)
    REFERENCES autopilot.analysis_snapshots (id) ON DELETE CASCADE,
    -- all three or none (the complexity analyzer did not read the file)
    CONSTRAINT analysis_snapshot_files_complexity_check CHECK (
        (functions IS NULL) = (complexity_total IS NULL) AND (functions IS NULL) = (complexity_max IS NULL)
        AND functions >= 0 AND complexity_total >= functions AND complexity_max <= complexity_total
    )
);

COMMENT ON TABLE autopilot.analysis_snapshot_files IS
'The files of a registry-sync snapshot (paths relative to the codebase root), with their cyclomatic complexity when the complexity analyzer read them.';
COMMENT ON COLUMN autopilot.analysis_snapshot_files.functions IS
'Functions, methods and closures in the file (NULL: the complexity analyzer did not read it).';
COMMENT ON COLUMN autopilot.analysis_snapshot_files.complexity_total IS
'Sum of the cyclomatic complexity of its functions (each 1 + its decision points).';
COMMENT ON COLUMN autopilot.analysis_snapshot_files.complexity_max IS 'The most complex function''s cyclomatic complexity.';
