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
    score_count bigint NOT NULL DEFAULT 0,
    changed_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    CONSTRAINT learned_patterns_pkey PRIMARY KEY (id),
    CONSTRAINT learned_patterns_pattern_key UNIQUE (pattern_type, pattern_key),
    CONSTRAINT learned_patterns_counts_check CHECK (
        successes >= 0 AND failures >= 0 AND successes + failures <= occurrences
    ),
    CONSTRAINT learned_patterns_confidence_check CHECK (confidence BETWEEN 0 AND 1),
    CONSTRAINT learned_patterns_score_count_check CHECK (score_count >= 0)
);

-- old-artifact-cleanup: patterns not seen for a long time
CREATE INDEX learned_patterns_last_seen_at_idx ON autopilot.learned_patterns (last_seen_at);
-- centralcloud-sync: patterns changed since the last push
CREATE INDEX learned_patterns_changed_xid_idx ON autopilot.learned_patterns (changed_xid);

COMMENT ON TABLE autopilot.learned_patterns IS
'What the system has learned: one row per (pattern type, pattern key) with its evidence and a confidence that grows with it.';
COMMENT ON COLUMN autopilot.learned_patterns.occurrences IS
'Analysis rows folded into the pattern, whatever their outcome (neutral ones included).';
COMMENT ON COLUMN autopilot.learned_patterns.success_rate IS
'successes / (successes + failures); neutral outcomes are not evidence either way. NULL while there is no evidence.';
COMMENT ON COLUMN autopilot.learned_patterns.confidence IS
'The Wilson score lower bound at 95% (z = 1.96) of the success rate over successes + failures: between 0 and 1, grows with evidence; 0 without any.';
COMMENT ON COLUMN autopilot.learned_patterns.mean_score IS
'Mean of the non-null scores of the folded rows (an exact running mean, weighted by score_count); NULL while none had a score.';
COMMENT ON COLUMN autopilot.learned_patterns.score_count IS
'How many folded rows had a score: the weight of mean_score when new rows are folded in.';
COMMENT ON COLUMN autopilot.learned_patterns.codebases IS 'Every codebase the pattern was seen in, sorted, without duplicates.';
COMMENT ON COLUMN autopilot.learned_patterns.first_seen_at IS 'Earliest created_at of the folded analysis rows.';
COMMENT ON COLUMN autopilot.learned_patterns.last_seen_at IS 'Latest created_at of the folded analysis rows.';
COMMENT ON COLUMN autopilot.learned_patterns.updated_at IS 'When a pattern-learning run last changed the row.';
COMMENT ON COLUMN autopilot.learned_patterns.changed_xid IS
'The transaction that last inserted or changed the row (pattern-learning sets it; a trigger sets it for any other UPDATE): centralcloud-sync sends the rows changed since its last push.';
