CREATE TABLE autopilot.central_instance_patterns (
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
    inbox_id bigint NOT NULL,
    received_at timestamptz NOT NULL,
    CONSTRAINT central_instance_patterns_pkey PRIMARY KEY (instance_id, pattern_type, pattern_key),
    CONSTRAINT central_instance_patterns_counts_check CHECK (
        successes >= 0 AND failures >= 0 AND successes + failures <= occurrences AND score_count >= 0
    )
);

-- centralcloud-merge recomputes global_patterns by pattern, over every instance
CREATE INDEX central_instance_patterns_pattern_idx ON autopilot.central_instance_patterns (
    pattern_type, pattern_key
);

COMMENT ON TABLE autopilot.central_instance_patterns IS
'Central database: the newest totals each instance has sent for each pattern. A re-sent row replaces, never adds to, what the instance sent before, so re-sending cannot double-count.';
COMMENT ON COLUMN autopilot.central_instance_patterns.inbox_id IS
'central_pattern_inbox.id of the row these totals came from; an older row (lower id) never replaces a newer one.';
