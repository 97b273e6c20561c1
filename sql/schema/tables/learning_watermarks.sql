-- Where pattern learning and agent knowledge have got to. One row per job,
-- created by the job's first run (not by the install script: in extension
-- mode the rows are dumped, and CREATE EXTENSION must not recreate them).
CREATE TABLE autopilot.learning_watermarks (
    name text NOT NULL,
    horizon xid8 NOT NULL DEFAULT '0',
    max_id bigint NOT NULL DEFAULT 0,
    system_identifier bigint,
    rows_total bigint NOT NULL DEFAULT 0,
    runs bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT learning_watermarks_pkey PRIMARY KEY (name),
    CONSTRAINT learning_watermarks_name_check CHECK (
        name IN ('pattern-learning', 'agent-knowledge-update', 'centralcloud-sync')
    ),
    CONSTRAINT learning_watermarks_counts_check CHECK (max_id >= 0 AND rows_total >= 0 AND runs >= 0)
);

COMMENT ON TABLE autopilot.learning_watermarks IS
'How far pattern-learning, agent-knowledge-update and centralcloud-sync have got, one row per job, advanced in the same transaction as the work. A run locks its row (FOR UPDATE), so two runs of one job never overlap.';
COMMENT ON COLUMN autopilot.learning_watermarks.horizon IS
'pattern-learning: every analysis row with created_xid below this has been folded, none at or above it. agent-knowledge-update: the pattern-learning horizon its last run saw. centralcloud-sync: every learned pattern changed (changed_xid) below this has been sent.';
COMMENT ON COLUMN autopilot.learning_watermarks.max_id IS
'pattern-learning: the highest analysis_results.id folded so far. After a restore into another cluster (whose transaction ids mean nothing here), rows above it are known to be new.';
COMMENT ON COLUMN autopilot.learning_watermarks.system_identifier IS
'The cluster (pg_control_system().system_identifier) whose transaction ids horizon counts in; NULL before the first run. A run that finds another one rebases (see the job''s function).';
COMMENT ON COLUMN autopilot.learning_watermarks.rows_total IS
'pattern-learning: analysis rows folded by all runs; agent-knowledge-update: agent summaries computed; centralcloud-sync: pattern rows sent.';
COMMENT ON COLUMN autopilot.learning_watermarks.runs IS 'Runs that changed the watermark.';
