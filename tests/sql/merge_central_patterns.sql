-- autopilot.merge_central_patterns() (centralcloud-merge, central database):
-- each instance's newest totals per pattern replace what it sent before, and
-- global_patterns sums over instances -- re-sending never double-counts.
-- (Pushed by real instances through postgres_fdw: tests/py/test_centralcloud.py.)
BEGIN;
SELECT plan(17);

SELECT pg_advisory_xact_lock(autopilot._job_lock_key('centralcloud-merge'));

SELECT has_function(
    'autopilot', 'merge_central_patterns', ARRAY[]::text[], 'autopilot.merge_central_patterns() exists'
);
SELECT function_returns(
    'autopilot', 'merge_central_patterns', ARRAY[]::text[], 'jsonb', 'it returns a jsonb summary'
);

DELETE FROM autopilot.central_pattern_inbox;
DELETE FROM autopilot.central_instance_patterns;
DELETE FROM autopilot.global_patterns;

SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'message' FROM autopilot.merge_central_patterns() AS s$$,
    $$VALUES ('0'::text, 'merged 0 pushed rows: 0 global patterns recomputed'::text)$$,
    'an empty inbox (every instance database''s): nothing to do'
);

CREATE FUNCTION pg_temp.push(
    p_instance text, p_key text, p_occurrences bigint, p_successes bigint, p_failures bigint,
    p_mean double precision, p_scores bigint, p_first timestamptz, p_last timestamptz, p_codebases text[]
) RETURNS void LANGUAGE sql AS $$
    INSERT INTO autopilot.central_pattern_inbox (
        instance_id, pattern_type, pattern_key, occurrences, successes, failures, mean_score, score_count,
        first_seen_at, last_seen_at, codebases
    ) VALUES (p_instance, 'style', p_key, p_occurrences, p_successes, p_failures, p_mean, p_scores, p_first,
              p_last, p_codebases)
$$;

-- instance a: k1 seen 6 times (5 successes, 1 failure), mean 0.5 over 4 scores; k2 once, neutral
-- instance b: k1 seen 5 times (3 successes, 1 failure), mean 0.8 over 1 score
SELECT pg_temp.push('a', 'k1', 6, 5, 1, 0.5, 4, '2026-01-02', '2026-03-01', '{api,web}');
SELECT pg_temp.push('a', 'k2', 1, 0, 0, NULL, 0, '2026-02-01', '2026-02-01', '{api}');
SELECT pg_temp.push('b', 'k1', 5, 3, 1, 0.8, 1, '2026-01-01', '2026-02-15', '{cli,web}');

SELECT results_eq(
    $$SELECT s ->> 'rows_affected', s ->> 'consumed' FROM autopilot.merge_central_patterns() AS s$$,
    $$VALUES ('2'::text, '3'::text)$$,
    'three pushed rows consumed, two global patterns recomputed'
);
SELECT is_empty($$SELECT * FROM autopilot.central_pattern_inbox$$, 'the inbox is consumed');
SELECT results_eq(
    $$SELECT instances, occurrences, successes, failures, success_rate, round(mean_score::numeric, 12),
             score_count, first_seen_at, last_seen_at, codebases
      FROM autopilot.global_patterns WHERE pattern_key = 'k1'$$,
    $$VALUES (2, 11::bigint, 8::bigint, 2::bigint, 0.8::double precision, 0.56::numeric, 5::bigint,
              '2026-01-01'::timestamptz, '2026-03-01'::timestamptz, '{api,cli,web}'::text [])$$,
    'k1 sums both instances: counts, rate, score-weighted mean, first/last seen, codebases'
);
SELECT is(
    (
        SELECT round(confidence::numeric, 12) FROM autopilot.global_patterns
        WHERE pattern_key = 'k1'
    ),
    round(0.4901568467207234::numeric, 12),
    'k1''s confidence is the Wilson lower bound over 8 successes and 2 failures'
);
SELECT results_eq(
    $$SELECT instances, success_rate, confidence, mean_score FROM autopilot.global_patterns WHERE pattern_key = 'k2'$$,
    $$VALUES (1, NULL::double precision, 0::double precision, NULL::double precision)$$,
    'a pattern without evidence: no rate, confidence 0, no mean'
);

-- a re-send (an instance that did not hear back pushes the same totals again): nothing changes
CREATE TEMPORARY TABLE tap_before ON COMMIT DROP AS
SELECT
    pattern_key,
    instances,
    occurrences,
    successes,
    failures,
    confidence,
    mean_score,
    score_count
FROM autopilot.global_patterns;
SELECT pg_temp.push('a', 'k1', 6, 5, 1, 0.5, 4, '2026-01-02', '2026-03-01', '{api,web}');
SELECT pg_temp.push('a', 'k1', 6, 5, 1, 0.5, 4, '2026-01-02', '2026-03-01', '{api,web}');
SELECT pg_temp.push('b', 'k1', 5, 3, 1, 0.8, 1, '2026-01-01', '2026-02-15', '{cli,web}');
SELECT is(
    autopilot.merge_central_patterns() ->> 'consumed', '3', 'the re-sent rows are consumed'
);
SELECT results_eq(
    $$SELECT pattern_key, instances, occurrences, successes, failures, confidence, mean_score, score_count
      FROM autopilot.global_patterns ORDER BY pattern_key$$,
    $$SELECT * FROM tap_before ORDER BY pattern_key$$,
    're-sending the same totals changes no global pattern: nothing is counted twice'
);

-- instance a learned more: its new totals replace its old ones (they are not added)
SELECT pg_temp.push('a', 'k1', 9, 7, 2, 0.5, 4, '2026-01-02', '2026-04-01', '{api,web}');
SELECT autopilot.merge_central_patterns();
SELECT results_eq(
    $$SELECT occurrences, successes, failures, last_seen_at FROM autopilot.global_patterns WHERE pattern_key = 'k1'$$,
    $$VALUES (14::bigint, 10::bigint, 3::bigint, '2026-04-01'::timestamptz)$$,
    'an instance''s newer totals replace its older ones: 9 + 5 occurrences, not 6 + 9 + 5'
);

-- two rows for one pattern in one merge: the newest (last pushed) wins
SELECT pg_temp.push('b', 'k3', 1, 1, 0, NULL, 0, '2026-05-01', '2026-05-01', '{cli}');
SELECT pg_temp.push('b', 'k3', 2, 2, 0, NULL, 0, '2026-05-01', '2026-05-02', '{cli}');
SELECT autopilot.merge_central_patterns();
SELECT is(
    (
        SELECT occurrences FROM autopilot.global_patterns
        WHERE pattern_key = 'k3'
    ),
    2::bigint,
    'of two pushes of one pattern in one merge, the later one counts'
);

-- what was merged from a later row is never replaced by an earlier one
UPDATE autopilot.central_instance_patterns SET inbox_id = 9223372036854775807
WHERE instance_id = 'b' AND pattern_key = 'k3';
SELECT pg_temp.push('b', 'k3', 1, 1, 0, NULL, 0, '2026-05-01', '2026-05-01', '{cli}');
SELECT is(
    autopilot.merge_central_patterns() ->> 'rows_affected', '0',
    'a row older than what was merged replaces nothing and recomputes nothing'
);
SELECT is(
    (
        SELECT occurrences FROM autopilot.global_patterns
        WHERE pattern_key = 'k3'
    ), 2::bigint, '... k3 is unchanged'
);

SELECT is(
    (SELECT count(*) FROM autopilot.central_instance_patterns),
    4::bigint,
    'one row per instance and pattern: (a, k1), (a, k2), (b, k1), (b, k3)'
);

-- a pushed row that breaks the rules is refused at the door (the instance's run fails, nothing merged)
SELECT throws_ok(
    $$SELECT pg_temp.push('c', 'k1', 1, 2, 0, NULL, 0, now(), now(), '{}')$$,
    '23514', NULL, 'the inbox refuses more successes than occurrences'
);
SELECT throws_ok(
    $$SELECT pg_temp.push('', 'k1', 1, 1, 0, NULL, 0, now(), now(), '{}')$$,
    '23514', NULL, 'the inbox refuses a row without an instance id'
);

SELECT * FROM finish();
ROLLBACK;
