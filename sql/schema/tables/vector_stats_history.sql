CREATE TABLE autopilot.vector_stats_history (
    id bigint GENERATED ALWAYS AS IDENTITY,
    captured_at timestamptz NOT NULL DEFAULT now(),
    table_name text NOT NULL,
    column_name text NOT NULL,
    row_count bigint NOT NULL,
    missing_count bigint NOT NULL,
    dimensions jsonb NOT NULL DEFAULT '{}',
    models jsonb NOT NULL DEFAULT '{}',
    CONSTRAINT vector_stats_history_pkey PRIMARY KEY (id),
    CONSTRAINT vector_stats_history_counts_check CHECK (missing_count BETWEEN 0 AND row_count)
);

CREATE INDEX vector_stats_history_column_idx ON autopilot.vector_stats_history (
    table_name, column_name, captured_at DESC
);

COMMENT ON TABLE autopilot.vector_stats_history IS
'What vector-stats measured, per embedding column: rows, rows without an embedding, how many rows have each dimension and each model.';
COMMENT ON COLUMN autopilot.vector_stats_history.dimensions IS 'Row count per embedding dimension, e.g. {"384": 1200}.';
COMMENT ON COLUMN autopilot.vector_stats_history.models IS 'Row count per embedding model version, e.g. {"all-MiniLM-L6-v2": 1200}.';
