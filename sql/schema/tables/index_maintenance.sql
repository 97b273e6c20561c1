CREATE TABLE autopilot.index_maintenance (
    id bigint GENERATED ALWAYS AS IDENTITY,
    index_name text NOT NULL,
    action text NOT NULL,
    statement text NOT NULL,
    reason text NOT NULL,
    size_bytes bigint,
    bloat_ratio double precision,
    state text NOT NULL DEFAULT 'pending',
    planned_at timestamptz NOT NULL DEFAULT now(),
    armed_at timestamptz,
    finished_at timestamptz,
    message text,
    CONSTRAINT index_maintenance_pkey PRIMARY KEY (id),
    CONSTRAINT index_maintenance_action_check CHECK (action IN ('reindex', 'drop_invalid')),
    CONSTRAINT index_maintenance_state_check CHECK (
        state IN ('pending', 'armed', 'done', 'failed')
    ),
    CONSTRAINT index_maintenance_finished_check CHECK (
        (state IN ('done', 'failed')) = (finished_at IS NOT NULL)
    )
);

-- pg_cron runs one statement of the cycle at a time
CREATE UNIQUE INDEX index_maintenance_one_armed_idx ON autopilot.index_maintenance ((true))
WHERE state = 'armed';
CREATE INDEX index_maintenance_open_idx ON autopilot.index_maintenance (id)
WHERE state IN ('pending', 'armed');

COMMENT ON TABLE autopilot.index_maintenance IS
'The work of index-reindex: one row per top-level statement it decided on (REINDEX INDEX CONCURRENTLY of a bloated index, DROP INDEX CONCURRENTLY of an invalid leftover of a failed rebuild), with why and how it ended.';
COMMENT ON COLUMN autopilot.index_maintenance.state IS
'pending (to run), armed (handed to pg_cron''s index-reindex-step job), done, failed.';
