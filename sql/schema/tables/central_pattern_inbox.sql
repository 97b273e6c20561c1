-- Central database side of centralcloud-sync. Instances INSERT here through
-- postgres_fdw (the only privilege they need); centralcloud-merge consumes it.
CREATE TABLE autopilot.central_pattern_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY,
    instance_id text NOT NULL,
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    occurrences bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    mean_score double precision,
    score_count bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    codebases text[] NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT central_pattern_inbox_pkey PRIMARY KEY (id),
    CONSTRAINT central_pattern_inbox_instance_id_check CHECK (instance_id <> ''),
    CONSTRAINT central_pattern_inbox_counts_check CHECK (
        successes >= 0 AND failures >= 0 AND successes + failures <= occurrences AND score_count >= 0
    )
);

COMMENT ON TABLE autopilot.central_pattern_inbox IS
'Central database: learned patterns pushed by instances (centralcloud-sync, through postgres_fdw), each row an instance''s running totals for one pattern at the time it was sent; centralcloud-merge consumes the rows.';
COMMENT ON COLUMN autopilot.central_pattern_inbox.id IS
'Arrival order. An instance pushes one batch at a time, so for one instance and pattern the highest id is the newest state.';
COMMENT ON COLUMN autopilot.central_pattern_inbox.instance_id IS
'The sending instance''s centralcloud.instance_id.';
