-- autopilot.learn_patterns_from_analysis(): the pattern-learning job. Inside one
-- transaction no other transaction ends, so the fixtures set created_xid by
-- hand: small values are transactions that ended long ago; rows left at the
-- default belong to this (open) transaction and must wait. Concurrency, commit
-- order and crashes are tested with real sessions in
-- tests/py/test_pattern_learning.py.
BEGIN;
SELECT plan(41);

SELECT has_function(
    'autopilot', 'learn_patterns_from_analysis', ARRAY[]::text[],
    'autopilot.learn_patterns_from_analysis() exists'
);
SELECT function_returns(
    'autopilot', 'learn_patterns_from_analysis', ARRAY[]::text[], 'jsonb',
    'learn_patterns_from_analysis() returns the jsonb summary of a function job'
);

DELETE FROM autopilot.learning_watermarks;
DELETE FROM autopilot.learned_patterns;
DELETE FROM autopilot.analysis_results;

-- batch 1: transaction 5, long over
INSERT INTO autopilot.analysis_results (
    codebase, analyzer, pattern_type, pattern_key, outcome, score, created_at, created_xid
)
SELECT
    (ARRAY['web', 'app', 'lib', 'app'])[1 + g % 4] AS codebase,
    'credo' AS analyzer,
    'naming' AS pattern_type,
    'snake' AS pattern_key,
    CASE WHEN g <= 8 THEN 'success' WHEN g <= 10 THEN 'failure' ELSE 'neutral' END AS outcome,
    (ARRAY[0.2, 0.4, 0.6, 1.0])[g] AS score,
    timestamptz '2024-01-01 00:00+00' + (g - 1) * interval '1 day' AS created_at,
    '5' AS created_xid
FROM generate_series(1, 13) AS g;
INSERT INTO autopilot.analysis_results (
    codebase, analyzer, pattern_type, pattern_key, outcome, score, created_at, created_xid
)
VALUES
('app', 'credo', 'naming', 'camel', 'success', NULL, '2024-01-05 00:00+00', '5'),
('web', 'sobelow', 'security', 'sqli', 'failure', 0.1, '2024-01-02 00:00+00', '5'),
('web', 'sobelow', 'security', 'sqli', 'failure', 0.1, '2024-01-03 00:00+00', '5'),
('web', 'sobelow', 'security', 'sqli', 'failure', 0.1, '2024-01-04 00:00+00', '5'),
('web', 'sobelow', 'security', 'sqli', 'failure', 0.1, '2024-01-05 00:00+00', '5'),
('web', 'sobelow', 'security', 'sqli', 'failure', 0.1, '2024-01-06 00:00+00', '5'),
('lib', 'format', 'style', 'tabs', 'neutral', NULL, '2024-01-07 00:00+00', '5'),
('lib', 'format', 'style', 'tabs', 'neutral', NULL, '2024-01-08 00:00+00', '5'),
-- a row from before 0.2.0 (the upgrade leaves created_xid 0): folded by the first run
('old', 'credo', 'naming', 'legacy', 'success', 0.9, '2023-06-01 00:00+00', '0');
-- a row of this still open transaction
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome)
VALUES ('app', 'credo', 'naming', 'open', 'success');

CREATE TEMPORARY TABLE tap_run (n integer, summary jsonb) ON COMMIT DROP;
INSERT INTO tap_run (n, summary) VALUES (1, autopilot.learn_patterns_from_analysis());

SELECT is(
    (
        SELECT (summary ->> 'rows_affected')::bigint FROM tap_run
        WHERE n = 1
    ), 22::bigint,
    'the first run folds every ended row: 13 + 1 + 5 + 2 + the pre-0.2.0 row'
);
SELECT is(
    (
        SELECT summary ->> 'message' FROM tap_run
        WHERE n = 1
    ),
    '22 analysis rows folded into 5 learned patterns',
    'the message says how many rows went into how many patterns'
);
SELECT is_empty(
    $$SELECT 1 FROM autopilot.learned_patterns WHERE pattern_key = 'open'$$,
    'a row of a transaction still open is not folded (it waits for a later run)'
);
SELECT results_eq(
    $$SELECT occurrences, successes, failures FROM autopilot.learned_patterns
      WHERE (pattern_type, pattern_key) = ('naming', 'snake')$$,
    $$VALUES (13::bigint, 8::bigint, 2::bigint)$$,
    'occurrences count every row, successes and failures their outcomes'
);
SELECT is(
    (
        SELECT success_rate FROM autopilot.learned_patterns
        WHERE pattern_key = 'snake'
    ), 0.8::double precision,
    'success rate = successes / (successes + failures): the 3 neutral rows are not evidence (8/10)'
);
SELECT ok(
    abs((
        SELECT confidence FROM autopilot.learned_patterns
        WHERE pattern_key = 'snake'
    ) - 0.490157) < 1e-6,
    'confidence: the Wilson lower bound at 95% of 8 successes in 10 is 0.490157'
);
SELECT ok(
    abs(
        (
            SELECT confidence FROM autopilot.learned_patterns
            WHERE pattern_key = 'snake'
        )
        - (8 + 1.9208 - 1.96 * sqrt(8.0 * 2 / 10 + 0.9604)) / (10 + 3.8416)
    ) < 1e-12,
    'confidence = (s + z^2/2 - z sqrt(s f / n + z^2/4)) / (n + z^2), z = 1.96'
);
SELECT ok(
    abs((
        SELECT confidence FROM autopilot.learned_patterns
        WHERE pattern_key = 'camel'
    ) - 1 / 4.8416) < 1e-12,
    'confidence of a single success: 1 / (1 + 1.96^2) = 0.206543'
);
SELECT results_eq(
    $$SELECT success_rate, confidence FROM autopilot.learned_patterns WHERE pattern_key = 'sqli'$$,
    $$VALUES (0::double precision, 0::double precision)$$,
    'only failures: success rate 0, confidence exactly 0'
);
SELECT results_eq(
    $$SELECT occurrences, successes, failures, success_rate, confidence
      FROM autopilot.learned_patterns WHERE pattern_key = 'tabs'$$,
    $$VALUES (2::bigint, 0::bigint, 0::bigint, NULL::double precision, 0::double precision)$$,
    'only neutral rows: two occurrences, no evidence: success rate NULL, confidence 0'
);
SELECT results_eq(
    $$SELECT round(mean_score::numeric, 12), score_count FROM autopilot.learned_patterns
      WHERE pattern_key = 'snake'$$,
    $$VALUES (0.55::numeric, 4::bigint)$$,
    'mean score over the non-null scores only: (0.2 + 0.4 + 0.6 + 1.0) / 4, weight 4'
);
SELECT results_eq(
    $$SELECT mean_score, score_count FROM autopilot.learned_patterns WHERE pattern_key = 'camel'$$,
    $$VALUES (NULL::double precision, 0::bigint)$$,
    'no score at all: mean score NULL'
);
SELECT is(
    (
        SELECT codebases FROM autopilot.learned_patterns
        WHERE pattern_key = 'snake'
    ), ARRAY['app', 'lib', 'web'
    ],
    'codebases: every codebase once, sorted'
);
SELECT results_eq(
    $$SELECT first_seen_at, last_seen_at FROM autopilot.learned_patterns WHERE pattern_key = 'snake'$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, '2024-01-13 00:00+00'::timestamptz)$$,
    'first and last seen are the earliest and latest created_at of the rows'
);
SELECT results_eq(
    $$SELECT occurrences, successes, codebases FROM autopilot.learned_patterns WHERE pattern_key = 'legacy'$$,
    $$VALUES (1::bigint, 1::bigint, ARRAY['old'])$$,
    'a row from before 0.2.0 (created_xid 0) is folded by the first run'
);
SELECT results_eq(
    $$SELECT horizon, max_id, rows_total, runs, system_identifier FROM autopilot.learning_watermarks
      WHERE name = 'pattern-learning'$$,
    $$SELECT pg_snapshot_xmin(pg_current_snapshot()),
             (SELECT max(id) FROM autopilot.analysis_results WHERE created_xid < '6'),
             22::bigint, 1::bigint, (pg_control_system()).system_identifier$$,
    'the watermark advances to the snapshot''s xmin, records the highest id folded, the count and the cluster'
);

-- a run with nothing new does nothing
INSERT INTO tap_run (n, summary) VALUES (2, autopilot.learn_patterns_from_analysis());
SELECT is(
    (
        SELECT (summary ->> 'rows_affected')::bigint FROM tap_run
        WHERE n = 2
    ), 0::bigint,
    'a second run folds nothing again'
);
SELECT is(
    (SELECT sum(occurrences) FROM autopilot.learned_patterns), 22::numeric,
    'every row is counted exactly once after two runs'
);

-- incremental: as if the last run had stopped at transaction 10 and transaction
-- 12 had written since (rows 5 lie below the watermark: never folded again)
UPDATE autopilot.learning_watermarks SET horizon = '10'
WHERE name = 'pattern-learning';
UPDATE autopilot.learned_patterns SET updated_at = '2000-01-01 00:00+00';
INSERT INTO autopilot.analysis_results (
    codebase, analyzer, pattern_type, pattern_key, outcome, score, created_at, created_xid
)
VALUES
('zeta', 'credo', 'naming', 'snake', 'success', 0.0, '2023-12-31 00:00+00', '12'),
('app', 'credo', 'naming', 'snake', 'success', NULL, '2024-02-01 00:00+00', '12'),
('app', 'credo', 'naming', 'fresh', 'failure', 0.3, '2024-02-01 00:00+00', '12');
INSERT INTO tap_run (n, summary) VALUES (3, autopilot.learn_patterns_from_analysis());

SELECT is(
    (
        SELECT (summary ->> 'rows_affected')::bigint FROM tap_run
        WHERE n = 3
    ), 3::bigint,
    'an incremental run folds only the rows above the watermark'
);
SELECT is(
    (
        SELECT summary ->> 'previous_horizon' FROM tap_run
        WHERE n = 3
    ), '10',
    'the summary says where the run started'
);
SELECT results_eq(
    $$SELECT occurrences, successes, failures, success_rate FROM autopilot.learned_patterns
      WHERE pattern_key = 'snake'$$,
    $$VALUES (15::bigint, 10::bigint, 2::bigint, 10.0::double precision / 12)$$,
    'the new rows add to the counts (10 successes, 2 failures, 3 neutral)'
);
SELECT ok(
    abs((
        SELECT confidence FROM autopilot.learned_patterns
        WHERE pattern_key = 'snake'
    ) - 0.551964) < 1e-6,
    'the confidence is recomputed over all the evidence: Wilson lower bound of 10 in 12 is 0.551964'
);
SELECT results_eq(
    $$SELECT round(mean_score::numeric, 12), score_count FROM autopilot.learned_patterns
      WHERE pattern_key = 'snake'$$,
    $$VALUES (0.44::numeric, 5::bigint)$$,
    'the running mean stays exact: (0.2 + 0.4 + 0.6 + 1.0 + 0.0) / 5, the NULL score left out'
);
SELECT is(
    (
        SELECT codebases FROM autopilot.learned_patterns
        WHERE pattern_key = 'snake'
    ),
    ARRAY['app', 'lib', 'web', 'zeta'],
    'codebases: the union with the new ones, sorted, without duplicates'
);
SELECT results_eq(
    $$SELECT first_seen_at, last_seen_at FROM autopilot.learned_patterns WHERE pattern_key = 'snake'$$,
    $$VALUES ('2023-12-31 00:00+00'::timestamptz, '2024-02-01 00:00+00'::timestamptz)$$,
    'first seen moves back and last seen forward with the new rows'
);
SELECT is(
    (
        SELECT updated_at FROM autopilot.learned_patterns
        WHERE pattern_key = 'snake'
    ), now(),
    'a changed pattern gets updated_at = now()'
);
SELECT is(
    (
        SELECT updated_at FROM autopilot.learned_patterns
        WHERE pattern_key = 'camel'
    ),
    '2000-01-01 00:00+00'::timestamptz,
    'a pattern without new rows is not touched'
);
SELECT results_eq(
    $$SELECT occurrences, failures, confidence, mean_score FROM autopilot.learned_patterns
      WHERE pattern_key = 'fresh'$$,
    $$VALUES (1::bigint, 1::bigint, 0::double precision, 0.3::double precision)$$,
    'a pattern seen for the first time is inserted'
);
SELECT is(
    (
        SELECT rows_total FROM autopilot.learning_watermarks
        WHERE name = 'pattern-learning'
    ), 25::bigint,
    'the watermark counts every row folded'
);

-- a mean written by hand without a weight does not distort the running mean
INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, occurrences, mean_score)
VALUES ('naming', 'manual', 1, 100);
UPDATE autopilot.learning_watermarks SET horizon = '13'
WHERE name = 'pattern-learning';
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, score, created_xid)
VALUES ('app', 'credo', 'naming', 'manual', 'success', 0.5, '14');
SELECT lives_ok(
    $$SELECT autopilot.learn_patterns_from_analysis()$$,
    'a run folds into a pattern row written by hand'
);
SELECT results_eq(
    $$SELECT occurrences, successes, mean_score, score_count FROM autopilot.learned_patterns
      WHERE pattern_key = 'manual'$$,
    $$VALUES (2::bigint, 1::bigint, 0.5::double precision, 1::bigint)$$,
    'a hand-written mean_score without score_count has no weight'
);

-- restored into another cluster: the watermark counts in a foreign xid space.
-- Old rows folded there (id <= max_id, below its horizon), old rows not yet
-- folded (at or above its horizon), and a row written here since the restore
-- (its id above max_id, its xid anything).
DELETE FROM autopilot.analysis_results
WHERE pattern_type <> 'restore';
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, created_xid)
VALUES
('app', 'credo', 'restore', 'folded-there', 'success', '9000000000'),
('app', 'credo', 'restore', 'folded-there', 'success', '9000000001'),
('app', 'credo', 'restore', 'pending-there', 'success', '9000000500');
UPDATE autopilot.learning_watermarks
SET
    system_identifier = 42, horizon = '9000000100',
    max_id = (SELECT max(id) FROM autopilot.analysis_results)
WHERE name = 'pattern-learning';
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, created_xid)
VALUES ('app', 'credo', 'restore', 'written-here', 'failure', '7');
INSERT INTO tap_run (n, summary) VALUES (4, autopilot.learn_patterns_from_analysis());

SELECT ok(
    (
        SELECT (summary ->> 'rebased')::boolean FROM tap_run
        WHERE n = 4
    ),
    'a watermark of another cluster makes the run rebase'
);
SELECT is(
    (
        SELECT (summary ->> 'rows_affected')::bigint FROM tap_run
        WHERE n = 4
    ), 2::bigint,
    'the rebase folds the row pending there and the row written here, not the rows folded there'
);
SELECT set_eq(
    $$SELECT pattern_key FROM autopilot.learned_patterns WHERE pattern_type = 'restore'$$,
    ARRAY['pending-there', 'written-here'],
    'the patterns of the rows not folded yet'
);
SELECT is_empty(
    $$SELECT id FROM autopilot.analysis_results
      WHERE created_xid >= (SELECT horizon FROM autopilot.learning_watermarks WHERE name = 'pattern-learning')
        AND created_xid <> pg_current_xact_id()$$,
    'no row of the other cluster is left at or above the new horizon (relabelled 0)'
);
SELECT results_eq(
    $$SELECT system_identifier, horizon FROM autopilot.learning_watermarks WHERE name = 'pattern-learning'$$,
    $$SELECT (pg_control_system()).system_identifier, pg_snapshot_xmin(pg_current_snapshot())$$,
    'after the rebase the watermark counts in this cluster'
);
INSERT INTO tap_run (n, summary) VALUES (5, autopilot.learn_patterns_from_analysis());
SELECT results_eq(
    $$SELECT (summary ->> 'rows_affected')::bigint, (summary ->> 'rebased')::boolean FROM tap_run WHERE n = 5$$,
    $$VALUES (0::bigint, false)$$,
    'the next run is an ordinary one and folds nothing twice'
);

-- the catalog job runs it
SELECT is(
    (SELECT status FROM autopilot.run_job('pattern-learning')), 'succeeded',
    'the pattern-learning job runs learn_patterns_from_analysis() and succeeds'
);
SELECT is(
    (
        SELECT message FROM autopilot.job_runs
        WHERE job_name = 'pattern-learning'
        ORDER BY id DESC LIMIT 1
    ),
    '0 analysis rows folded into 0 learned patterns',
    'its ledger run carries the function''s message'
);

SELECT * FROM finish();
ROLLBACK;
