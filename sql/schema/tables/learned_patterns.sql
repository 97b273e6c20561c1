CREATE TABLE autopilot.learned_patterns (
    id bigint GENERATED ALWAYS AS IDENTITY,
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    occurrences bigint NOT NULL DEFAULT 0,
    successes bigint NOT NULL DEFAULT 0,
    failures bigint NOT NULL DEFAULT 0,
    success_rate double precision,
    confidence double precision NOT NULL DEFAULT 0,
    mean_score double precision,
    codebases text[] NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT learned_patterns_pkey PRIMARY KEY (id),
    CONSTRAINT learned_patterns_pattern_key UNIQUE (pattern_type, pattern_key),
    CONSTRAINT learned_patterns_counts_check CHECK (
        successes >= 0 AND failures >= 0 AND successes + failures <= occurrences
    ),
    CONSTRAINT learned_patterns_confidence_check CHECK (confidence BETWEEN 0 AND 1)
);

-- old-artifact-cleanup: patterns not seen for a long time
CREATE INDEX learned_patterns_last_seen_at_idx ON autopilot.learned_patterns (last_seen_at);
-- central sync: patterns changed since the last push
CREATE INDEX learned_patterns_updated_at_idx ON autopilot.learned_patterns (updated_at);

COMMENT ON TABLE autopilot.learned_patterns IS
'What the system has learned: one row per (pattern type, pattern key) with its evidence and a confidence that grows with it.';
COMMENT ON COLUMN autopilot.learned_patterns.confidence IS 'Between 0 and 1; grows with evidence (the pattern-learning job defines it).';
