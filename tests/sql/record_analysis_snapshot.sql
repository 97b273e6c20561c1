-- autopilot.record_analysis_snapshot (registry-sync): a snapshot with its analyzers, files and
-- counts; analysis_results for pattern-learning: a baseline, findings fixed and introduced per
-- file, files added or removed netted per rule, an analyzer that failed compared later with its
-- last successful run, a new version as a new baseline; an identical run records nothing; pruning.
-- (The analyzers themselves, on a real git repository: tests/py/test_registry_sync.py.)
BEGIN;
SELECT plan(22);

SET LOCAL client_min_messages = warning;
DELETE FROM autopilot.analysis_results;
DELETE FROM autopilot.codebases;
INSERT INTO autopilot.codebases (name, root_path) VALUES ('app', '/src/app');

SELECT has_function(
    'autopilot', 'record_analysis_snapshot', ARRAY['text', 'text', 'jsonb', 'jsonb', 'jsonb'],
    'autopilot.record_analysis_snapshot(text, text, jsonb, jsonb, jsonb) exists'
);

-- analyzers, files, findings as the runner sends them
CREATE FUNCTION pg_temp.record(p_commit text, p_analyzers text, p_files text, p_findings text) RETURNS jsonb
LANGUAGE sql AS $$
    SELECT autopilot.record_analysis_snapshot('app', p_commit, p_analyzers::jsonb, p_files::jsonb, p_findings::jsonb)
$$;
CREATE FUNCTION pg_temp.results(p_snapshot bigint) RETURNS TABLE (pattern_key text, outcome text, path text, n bigint)
LANGUAGE sql AS $$
    SELECT r.pattern_key, r.outcome, r.details ->> 'path', count(*)
    FROM autopilot.analysis_results AS r
    WHERE (r.details ->> 'snapshot_id')::bigint = p_snapshot
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
$$;

CREATE TEMPORARY TABLE tap_run (n integer PRIMARY KEY, summary jsonb) ON COMMIT DROP;

-- 1. the first snapshot: a baseline
INSERT INTO tap_run VALUES (1, pg_temp.record(
    'c1',
    '[{"analyzer": "ruff", "status": "ok", "version": "ruff 1", "files": 3, "seconds": 0.5},
      {"analyzer": "complexity", "status": "ok", "version": "t 10", "files": 3, "seconds": 1.5}]',
    '[{"path": "a.py", "functions": 2, "complexity_total": 14, "complexity_max": 12},
      {"path": "b.py", "functions": 1, "complexity_total": 1, "complexity_max": 1},
      {"path": "old.py", "functions": 0, "complexity_total": 0, "complexity_max": 0}]',
    '[{"path": "a.py", "analyzer": "ruff", "rule": "F401", "findings": 3},
      {"path": "a.py", "analyzer": "ruff", "rule": "E722", "findings": 1},
      {"path": "b.py", "analyzer": "ruff", "rule": "F401", "findings": 1},
      {"path": "old.py", "analyzer": "ruff", "rule": "E501", "findings": 2},
      {"path": "a.py", "analyzer": "complexity", "rule": "cyclomatic", "findings": 1}]'
));
SELECT results_eq(
    $$SELECT (summary ->> 'files')::int, (summary ->> 'findings')::int, summary -> 'baselines', summary ->> 'message'
      FROM tap_run WHERE n = 1$$,
    $$VALUES (3, 8, '["complexity", "ruff"]'::jsonb,
              'snapshot ' || (SELECT max(id) FROM autopilot.analysis_snapshots) || ': 0 fixed, 0 new; '
              || 'baseline of complexity, ruff')$$,
    'the first snapshot: its counts, and a baseline for each analyzer'
);
SELECT results_eq(
    $$SELECT analyzer, status, findings::int, files FROM autopilot.analysis_snapshot_analyzers ORDER BY analyzer$$,
    $$VALUES ('complexity'::text, 'ok'::text, 1, 3), ('ruff', 'ok', 7, 3)$$,
    'each analyzer''s outcome, files and findings'
);
SELECT results_eq(
    $$SELECT pattern_type, pattern_key, outcome, (details ->> 'findings')::int, (details ->> 'files')::int
      FROM autopilot.analysis_results ORDER BY pattern_key$$,
    $$VALUES ('analyzer_rule'::text, 'complexity/cyclomatic'::text, 'neutral'::text, 1, 1),
             ('analyzer_rule', 'ruff/E501', 'neutral', 2, 1),
             ('analyzer_rule', 'ruff/E722', 'neutral', 1, 1),
             ('analyzer_rule', 'ruff/F401', 'neutral', 4, 2)$$,
    'a baseline is one neutral row per rule, with its counts'
);

-- 2. the same run again: nothing recorded
SELECT results_eq(
    $$SELECT (s ->> 'unchanged')::boolean, s ->> 'message' FROM pg_temp.record(
        'c1',
        '[{"analyzer": "ruff", "status": "ok", "version": "ruff 1", "files": 3, "seconds": 0.7},
          {"analyzer": "complexity", "status": "ok", "version": "t 10", "files": 3, "seconds": 1.1}]',
        '[{"path": "a.py", "functions": 2, "complexity_total": 14, "complexity_max": 12},
          {"path": "b.py", "functions": 1, "complexity_total": 1, "complexity_max": 1},
          {"path": "old.py", "functions": 0, "complexity_total": 0, "complexity_max": 0}]',
        '[{"path": "a.py", "analyzer": "ruff", "rule": "F401", "findings": 3},
          {"path": "a.py", "analyzer": "ruff", "rule": "E722", "findings": 1},
          {"path": "b.py", "analyzer": "ruff", "rule": "F401", "findings": 1},
          {"path": "old.py", "analyzer": "ruff", "rule": "E501", "findings": 2},
          {"path": "a.py", "analyzer": "complexity", "rule": "cyclomatic", "findings": 1}]'
    ) AS s$$,
    $$VALUES (true, 'unchanged since snapshot ' || (SELECT max(id) FROM autopilot.analysis_snapshots))$$,
    'the same outcomes at the same commit: unchanged (the timings do not count)'
);
SELECT is((SELECT count(*) FROM autopilot.analysis_snapshots), 1::bigint, '... no second snapshot');

-- 3. a new commit: two F401 fixed in a.py, E722 gone, a new F401 in b.py; old.py renamed new.py;
-- the complexity analyzer timed out
INSERT INTO tap_run VALUES (3, pg_temp.record(
    'c2',
    '[{"analyzer": "ruff", "status": "ok", "version": "ruff 1", "files": 3, "seconds": 0.5},
      {"analyzer": "complexity", "status": "timed_out", "version": "t 10", "seconds": 600,
       "message": "timed out after 600 s"}]',
    '[{"path": "a.py"}, {"path": "b.py"}, {"path": "new.py"}]',
    '[{"path": "a.py", "analyzer": "ruff", "rule": "F401", "findings": 1},
      {"path": "b.py", "analyzer": "ruff", "rule": "F401", "findings": 2},
      {"path": "new.py", "analyzer": "ruff", "rule": "E501", "findings": 2}]'
));
SELECT results_eq(
    $$SELECT * FROM pg_temp.results((SELECT max(id) FROM autopilot.analysis_snapshots))$$,
    $$VALUES ('ruff/E722'::text, 'success'::text, 'a.py'::text, 1::bigint),
             ('ruff/F401', 'failure', 'b.py', 1),
             ('ruff/F401', 'success', 'a.py', 2)$$,
    'one success row per finding fixed, one failure row per finding introduced; the renamed file changes nothing'
);
SELECT results_eq(
    $$SELECT (summary ->> 'successes')::int, (summary ->> 'failures')::int, summary -> 'baselines'
      FROM tap_run WHERE n = 3$$,
    $$VALUES (3, 1, '[]'::jsonb)$$,
    'the summary counts them'
);
SELECT results_eq(
    $$SELECT status, message, findings::int FROM autopilot.analysis_snapshot_analyzers
      WHERE snapshot_id = (SELECT max(id) FROM autopilot.analysis_snapshots) AND analyzer = 'complexity'$$,
    $$VALUES ('timed_out'::text, 'timed out after 600 s'::text, 0)$$,
    'the analyzer that timed out is recorded as such, without counts'
);
SELECT is(
    (
        SELECT count(*) FROM autopilot.analysis_results
        WHERE analyzer = 'complexity'
    ), 1::bigint,
    '... and writes no analysis rows'
);

-- 4. complexity back: compared with its last successful snapshot (the first), not with the failed one
INSERT INTO tap_run VALUES (4, pg_temp.record(
    'c3',
    '[{"analyzer": "ruff", "status": "ok", "version": "ruff 1", "files": 3, "seconds": 0.5},
      {"analyzer": "complexity", "status": "ok", "version": "t 10", "files": 3, "seconds": 1.5}]',
    '[{"path": "a.py", "functions": 3, "complexity_total": 9, "complexity_max": 4},
      {"path": "b.py", "functions": 1, "complexity_total": 1, "complexity_max": 1},
      {"path": "new.py", "functions": 0, "complexity_total": 0, "complexity_max": 0}]',
    '[{"path": "a.py", "analyzer": "ruff", "rule": "F401", "findings": 1},
      {"path": "b.py", "analyzer": "ruff", "rule": "F401", "findings": 2},
      {"path": "new.py", "analyzer": "ruff", "rule": "E501", "findings": 2}]'
));
SELECT results_eq(
    $$SELECT * FROM pg_temp.results((SELECT max(id) FROM autopilot.analysis_snapshots))$$,
    $$VALUES ('complexity/cyclomatic'::text, 'success'::text, 'a.py'::text, 1::bigint)$$,
    'complexity is compared with its last successful snapshot: the complex function was split'
);
SELECT is(
    (
        SELECT summary -> 'compared_with' ->> 'complexity' FROM tap_run
        WHERE n = 4
    ),
    (SELECT min(id)::text FROM autopilot.analysis_snapshots),
    '... which the summary names'
);

-- 5. a file added and one removed with findings of another rule: netted per rule, without a path
SELECT lives_ok(
    $$SELECT pg_temp.record(
        'c4',
        '[{"analyzer": "ruff", "status": "ok", "version": "ruff 1", "files": 3, "seconds": 0.5}]',
        '[{"path": "a.py"}, {"path": "b.py"}, {"path": "extra.py"}]',
        '[{"path": "a.py", "analyzer": "ruff", "rule": "F401", "findings": 1},
          {"path": "b.py", "analyzer": "ruff", "rule": "F401", "findings": 2},
          {"path": "extra.py", "analyzer": "ruff", "rule": "E501", "findings": 3},
          {"path": "extra.py", "analyzer": "ruff", "rule": "T201", "findings": 1}]'
    )$$,
    'a snapshot with new.py gone and extra.py added'
);
SELECT results_eq(
    $$SELECT pattern_key, outcome, details ->> 'scope', count(*) FROM autopilot.analysis_results
      WHERE (details ->> 'snapshot_id')::bigint = (SELECT max(id) FROM autopilot.analysis_snapshots)
      GROUP BY 1, 2, 3 ORDER BY 1$$,
    $$VALUES ('ruff/E501'::text, 'failure'::text, 'files added or removed'::text, 1::bigint),
             ('ruff/T201', 'failure', 'files added or removed', 1)$$,
    'added minus removed per rule: one E501 more (3 - 2), one T201 new'
);

-- 6. a new analyzer version is a new baseline, not a wave of fixes or failures
SELECT results_eq(
    $$SELECT s -> 'baselines', (s ->> 'successes')::int, (s ->> 'failures')::int FROM pg_temp.record(
        'c5',
        '[{"analyzer": "ruff", "status": "ok", "version": "ruff 2", "files": 3, "seconds": 0.5}]',
        '[{"path": "a.py"}, {"path": "b.py"}, {"path": "extra.py"}]',
        '[{"path": "a.py", "analyzer": "ruff", "rule": "UP031", "findings": 9}]'
    ) AS s$$,
    $$VALUES ('["ruff"]'::jsonb, 0, 0)$$,
    'another ruff version: a baseline'
);

-- 7. invalid input changes nothing
CREATE TEMPORARY TABLE tap_counts ON COMMIT DROP AS
SELECT
    (SELECT count(*) FROM autopilot.analysis_snapshots) AS snapshots,
    (SELECT count(*) FROM autopilot.analysis_results) AS results;
SELECT throws_ok(
    $$SELECT autopilot.record_analysis_snapshot('nope', NULL, '[]', '[]', '[]')$$,
    '42704', 'no codebase named ''nope''', 'an unknown codebase'
);
SELECT throws_ok(
    $$SELECT pg_temp.record('c6', '[{"analyzer": "ruff", "status": "failed", "version": "v", "message": "boom"}]',
        '[{"path": "a.py"}]', '[{"path": "a.py", "analyzer": "ruff", "rule": "F401", "findings": 1}]')$$,
    '22023', 'findings of ruff/F401, whose analyzer is not among the analyzers that succeeded',
    'findings of an analyzer that failed'
);
SELECT throws_ok(
    $$SELECT pg_temp.record('c6', '[{"analyzer": "ruff", "status": "ok", "version": "v"}]',
        '[{"path": "a.py"}]', '[{"path": "elsewhere.py", "analyzer": "ruff", "rule": "F401", "findings": 1}]')$$,
    '23503', NULL, 'findings of a file that is not in the snapshot'
);
SELECT throws_ok(
    $$SELECT autopilot.record_analysis_snapshot('app', NULL, '{}', '[]', '[]')$$,
    '22023', NULL, 'analyzers that are not a list'
);
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM autopilot.analysis_snapshots), (SELECT count(*) FROM autopilot.analysis_results)$$,
    $$SELECT snapshots, results FROM tap_counts$$,
    'none of them wrote anything'
);

-- 8. pruning: the newest registry_sync.keep_snapshots stay, and each analyzer's last successful one
SELECT autopilot.set_setting('registry_sync.keep_snapshots', '2');
SELECT lives_ok(
    $$SELECT pg_temp.record('c7', '[{"analyzer": "ruff", "status": "ok", "version": "ruff 2"}]',
        '[{"path": "a.py"}]', '[]')$$,
    'one more snapshot, with two kept'
);
SELECT results_eq(
    $$SELECT commit_sha FROM autopilot.analysis_snapshots ORDER BY id$$,
    $$VALUES ('c3'::text), ('c5'), ('c7')$$,
    'the two newest stay, and c3: complexity''s last successful snapshot'
);

SELECT * FROM finish();
ROLLBACK;
