CREATE TABLE autopilot.global_patterns (
    pattern_type text NOT NULL,
    pattern_key text NOT NULL,
    instances integer NOT NULL,
    occurrences bigint NOT NULL,
    successes bigint NOT NULL,
    failures bigint NOT NULL,
    success_rate double precision,
    confidence double precision NOT NULL,
    mean_score double precision,
    score_count bigint NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    codebases text[] NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT global_patterns_pkey PRIMARY KEY (pattern_type, pattern_key),
    CONSTRAINT global_patterns_counts_check CHECK (
        instances > 0 AND successes >= 0 AND failures >= 0 AND successes + failures <= occurrences
    ),
    CONSTRAINT global_patterns_confidence_check CHECK (confidence BETWEEN 0 AND 1)
);

COMMENT ON TABLE autopilot.global_patterns IS
'Central database: every pattern learned anywhere, summed over the instances'' newest totals (centralcloud-merge): occurrences, successes, failures, success rate, Wilson lower-bound confidence at 95%, mean score, first/last seen, codebases.';
COMMENT ON COLUMN autopilot.global_patterns.instances IS 'How many instances have sent the pattern.';
COMMENT ON COLUMN autopilot.global_patterns.confidence IS
'The Wilson score lower bound at 95% of the success rate over all instances'' successes + failures; 0 without a success.';
