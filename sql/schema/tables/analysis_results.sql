CREATE TABLE autopilot.analysis_results (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    analyzer text NOT NULL,
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    outcome text NOT NULL,
    score double precision,
    agent_id bigint,
    task_id bigint,
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    CONSTRAINT analysis_results_pkey PRIMARY KEY (id),
    CONSTRAINT analysis_results_outcome_check CHECK (outcome IN ('success', 'failure', 'neutral')),
    CONSTRAINT analysis_results_agent_id_fkey FOREIGN KEY (agent_id)
    REFERENCES autopilot.agents (id) ON DELETE SET NULL,
    CONSTRAINT analysis_results_task_id_fkey FOREIGN KEY (task_id)
    REFERENCES autopilot.tasks (id) ON DELETE SET NULL
);

CREATE INDEX analysis_results_pattern_idx ON autopilot.analysis_results (pattern_type, pattern_key);
CREATE INDEX analysis_results_agent_id_idx ON autopilot.analysis_results (agent_id)
WHERE agent_id IS NOT NULL;
-- deleting tasks: ON DELETE SET NULL finds the rows of each deleted task through this index
-- (without it, one scan of the whole table per deleted task)
CREATE INDEX analysis_results_task_id_idx ON autopilot.analysis_results (task_id)
WHERE task_id IS NOT NULL;
-- pattern learning and agent knowledge: the rows of the transactions between two horizons
CREATE INDEX analysis_results_created_xid_idx ON autopilot.analysis_results (created_xid);

COMMENT ON TABLE autopilot.analysis_results IS
'What the analyzers found (written by registry-sync and by agents): one observed pattern with its outcome. Pattern learning folds these into autopilot.learned_patterns.';
COMMENT ON COLUMN autopilot.analysis_results.created_xid IS
'The inserting transaction (its default, pg_current_xact_id(); never set it yourself). Pattern learning folds a row once every transaction below its horizon has ended, so rows committed out of id order are still counted exactly once. 0 on rows that existed before autopilot 0.2.0 (folded by the first run) and on rows relabelled after a restore into another cluster.';
