CREATE FUNCTION autopilot.record_analysis_snapshot(
    p_codebase text,
    p_commit text,
    p_analyzers jsonb,
    p_files jsonb,
    p_findings jsonb
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- registry-sync (the runner runs the analyzers and passes what they found).
--
-- p_analyzers: [{analyzer, status (ok, failed, timed_out), version, files,
--   seconds, message}]; p_files: [{path, functions, complexity_total,
--   complexity_max}] (the complexity fields null when not measured);
-- p_findings: [{path, analyzer, rule, findings}], a count per file and rule,
--   of analyzers whose status is ok, on paths of p_files.
--
-- In one transaction, under the codebase's advisory lock: a snapshot with
-- its analyzers, files and counts, then rows of autopilot.analysis_results
-- (pattern_type 'analyzer_rule', pattern_key '<analyzer>/<rule>') that
-- pattern-learning folds. Each analyzer that succeeded is compared with its
-- own last successful snapshot of the codebase, when that one ran the same
-- version (same options):
--   * a file in both snapshots: each finding of a rule fewer is a success row,
--     each one more a failure row (one row per finding, details.path);
--   * files added or removed: their findings are netted per rule (added
--     minus removed), so a renamed or moved file changes nothing; what is
--     left is success or failure rows without a path;
--   * no such earlier snapshot (the first run, a new analyzer version, a new
--     complexity threshold): one neutral row per rule, details.findings and
--     details.files its counts -- a baseline, evidence of neither kind.
-- An analyzer that failed or timed out writes no counts and no rows; its next
-- successful run is compared with its last successful one.
--
-- A run at the commit of the codebase's last snapshot with the same digest
-- (outcomes, files, counts) records nothing and says so. Old snapshots past
-- registry_sync.keep_snapshots are deleted, except each analyzer's last
-- successful one (the next comparison's base).
DECLARE
    v_keep integer := autopilot.get_setting('registry_sync.keep_snapshots')::integer;
    v_last autopilot.analysis_snapshots;
    v_digest text;
    v_id bigint;
    v_files integer;
    v_findings bigint;
    v_analyzer record;
    v_base bigint;
    v_base_version text;
    v_successes bigint;
    v_failures bigint;
    v_total_successes bigint := 0;
    v_total_failures bigint := 0;
    v_compared jsonb := '{}'::jsonb;
    v_baselines text[] := '{}'::text[];
    v_bad text;
    v_pruned bigint;
BEGIN
    IF pg_catalog.jsonb_typeof(p_analyzers) IS DISTINCT FROM 'array'
        OR pg_catalog.jsonb_typeof(p_files) IS DISTINCT FROM 'array'
        OR pg_catalog.jsonb_typeof(p_findings) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'the analyzers, the files and the findings must each be a JSON array'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM autopilot.codebases AS c WHERE c.name = p_codebase) THEN
        RAISE EXCEPTION 'no codebase named %', coalesce(pg_catalog.quote_literal(p_codebase), 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'autopilot codebase list shows them.';
    END IF;

    SELECT pg_catalog.format('%s/%s', x.analyzer, x.rule)
    INTO v_bad
    FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (path text, analyzer text, rule text, findings integer)
    WHERE NOT EXISTS (
        SELECT
        FROM pg_catalog.jsonb_to_recordset(p_analyzers) AS a (analyzer text, status text)
        WHERE a.analyzer = x.analyzer AND a.status = 'ok'
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'findings of %, whose analyzer is not among the analyzers that succeeded', v_bad
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    PERFORM pg_catalog.pg_advisory_xact_lock(autopilot._job_lock_key('registry-sync:' || p_codebase));

    v_digest := pg_catalog.md5(
        coalesce((
            SELECT pg_catalog.string_agg(
                pg_catalog.jsonb_build_array(a.analyzer, a.status, a.version)::text, ',' ORDER BY a.analyzer
            )
            FROM pg_catalog.jsonb_to_recordset(p_analyzers) AS a (analyzer text, status text, version text)
        ), '')
        || E'\n' || coalesce((
            SELECT pg_catalog.string_agg(
                pg_catalog.jsonb_build_array(f.path, f.functions, f.complexity_total, f.complexity_max)::text,
                ',' ORDER BY f.path
            )
            FROM pg_catalog.jsonb_to_recordset(p_files)
                AS f (path text, functions integer, complexity_total integer, complexity_max integer)
        ), '')
        || E'\n' || coalesce((
            SELECT pg_catalog.string_agg(
                pg_catalog.jsonb_build_array(x.path, x.analyzer, x.rule, x.findings)::text,
                ',' ORDER BY x.path, x.analyzer, x.rule
            )
            FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (path text, analyzer text, rule text, findings integer)
        ), '')
    );

    SELECT s.* INTO v_last
    FROM autopilot.analysis_snapshots AS s
    WHERE s.codebase = p_codebase
    ORDER BY s.id DESC
    LIMIT 1;
    IF v_last.id IS NOT NULL AND v_last.commit_sha IS NOT DISTINCT FROM p_commit AND v_last.digest = v_digest THEN
        RETURN pg_catalog.jsonb_build_object(
            'snapshot_id', v_last.id,
            'unchanged', true,
            'commit', p_commit,
            'files', v_last.files,
            'findings', v_last.findings,
            'successes', 0,
            'failures', 0,
            'compared_with', '{}'::jsonb,
            'baselines', '[]'::jsonb,
            'pruned', 0,
            'message', pg_catalog.format('unchanged since snapshot %s', v_last.id)
        );
    END IF;

    SELECT
        pg_catalog.jsonb_array_length(p_files),
        coalesce((
            SELECT pg_catalog.sum(x.findings)
            FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (findings integer)
        ), 0)
    INTO v_files, v_findings;

    INSERT INTO autopilot.analysis_snapshots (codebase, commit_sha, digest, files, findings)
    VALUES (p_codebase, p_commit, v_digest, v_files, v_findings)
    RETURNING id INTO v_id;

    INSERT INTO autopilot.analysis_snapshot_analyzers (
        snapshot_id, analyzer, status, version, files, findings, seconds, message
    )
    SELECT
        v_id,
        a.analyzer,
        a.status,
        a.version,
        coalesce(a.files, 0),
        coalesce((
            SELECT pg_catalog.sum(x.findings)
            FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (analyzer text, findings integer)
            WHERE x.analyzer = a.analyzer
        ), 0),
        coalesce(a.seconds, 0),
        a.message
    FROM pg_catalog.jsonb_to_recordset(p_analyzers)
        AS a (analyzer text, status text, version text, files integer, seconds double precision, message text);

    INSERT INTO autopilot.analysis_snapshot_files (snapshot_id, path, functions, complexity_total, complexity_max)
    SELECT v_id, f.path, f.functions, f.complexity_total, f.complexity_max
    FROM pg_catalog.jsonb_to_recordset(p_files)
        AS f (path text, functions integer, complexity_total integer, complexity_max integer);

    INSERT INTO autopilot.analysis_snapshot_findings (snapshot_id, path, analyzer, rule, findings)
    SELECT v_id, x.path, x.analyzer, x.rule, x.findings
    FROM pg_catalog.jsonb_to_recordset(p_findings) AS x (path text, analyzer text, rule text, findings integer);

    FOR v_analyzer IN
        SELECT a.analyzer, a.version
        FROM autopilot.analysis_snapshot_analyzers AS a
        WHERE a.snapshot_id = v_id AND a.status = 'ok'
        ORDER BY a.analyzer
    LOOP
        v_base := NULL;
        v_base_version := NULL;
        SELECT a.snapshot_id, a.version
        INTO v_base, v_base_version
        FROM autopilot.analysis_snapshot_analyzers AS a
        INNER JOIN autopilot.analysis_snapshots AS s ON a.snapshot_id = s.id
        WHERE s.codebase = p_codebase AND s.id < v_id AND a.analyzer = v_analyzer.analyzer AND a.status = 'ok'
        ORDER BY s.id DESC
        LIMIT 1;

        IF v_base IS NULL OR v_base_version IS DISTINCT FROM v_analyzer.version THEN
            INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, details)
            SELECT
                p_codebase,
                v_analyzer.analyzer,
                'analyzer_rule',
                v_analyzer.analyzer || '/' || x.rule,
                'neutral',
                pg_catalog.jsonb_build_object(
                    'snapshot_id', v_id, 'commit', p_commit, 'rule', x.rule, 'baseline', true,
                    'findings', pg_catalog.sum(x.findings), 'files', pg_catalog.count(*)
                )
            FROM autopilot.analysis_snapshot_findings AS x
            WHERE x.snapshot_id = v_id AND x.analyzer = v_analyzer.analyzer
            GROUP BY x.rule;
            v_baselines := v_baselines || v_analyzer.analyzer;
            CONTINUE;
        END IF;

        WITH new_counts AS (
            SELECT x.path, x.rule, x.findings
            FROM autopilot.analysis_snapshot_findings AS x
            WHERE x.snapshot_id = v_id AND x.analyzer = v_analyzer.analyzer
        ),

        old_counts AS (
            SELECT x.path, x.rule, x.findings
            FROM autopilot.analysis_snapshot_findings AS x
            WHERE x.snapshot_id = v_base AND x.analyzer = v_analyzer.analyzer
        ),

        common AS (
            SELECT n.path
            FROM autopilot.analysis_snapshot_files AS n
            INNER JOIN autopilot.analysis_snapshot_files AS o ON n.path = o.path
            WHERE n.snapshot_id = v_id AND o.snapshot_id = v_base
        ),

        per_file AS (
            SELECT
                coalesce(n.path, o.path) AS path,
                coalesce(n.rule, o.rule) AS rule,
                coalesce(n.findings, 0) - coalesce(o.findings, 0) AS delta
            FROM (SELECT c.* FROM new_counts AS c WHERE c.path IN (SELECT m.path FROM common AS m)) AS n
            FULL JOIN (SELECT c.* FROM old_counts AS c WHERE c.path IN (SELECT m.path FROM common AS m)) AS o
                ON n.path = o.path AND n.rule = o.rule
        ),

        netted AS (
            SELECT
                r.rule,
                pg_catalog.sum(r.delta)::bigint AS delta
            FROM (
                SELECT n.rule, n.findings AS delta
                FROM new_counts AS n
                WHERE n.path NOT IN (SELECT m.path FROM common AS m)
                UNION ALL
                SELECT o.rule, -o.findings AS delta
                FROM old_counts AS o
                WHERE o.path NOT IN (SELECT m.path FROM common AS m)
            ) AS r
            GROUP BY r.rule
        ),

        changes AS (
            SELECT p.path, p.rule, p.delta FROM per_file AS p WHERE p.delta <> 0
            UNION ALL
            SELECT NULL AS path, t.rule, t.delta FROM netted AS t WHERE t.delta <> 0
        ),

        inserted AS (
            INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, details)
            SELECT
                p_codebase,
                v_analyzer.analyzer,
                'analyzer_rule',
                v_analyzer.analyzer || '/' || c.rule,
                CASE WHEN c.delta < 0 THEN 'success' ELSE 'failure' END,
                pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
                    'snapshot_id', v_id, 'since_snapshot_id', v_base, 'commit', p_commit, 'rule', c.rule,
                    'path', c.path,
                    'scope', CASE WHEN c.path IS NULL THEN 'files added or removed' END
                ))
            FROM changes AS c
            CROSS JOIN LATERAL pg_catalog.generate_series(1, pg_catalog.abs(c.delta)) AS g (n)
            ORDER BY c.path NULLS LAST, c.rule
            RETURNING outcome
        )

        SELECT
            pg_catalog.count(*) FILTER (WHERE i.outcome = 'success'),
            pg_catalog.count(*) FILTER (WHERE i.outcome = 'failure')
        INTO v_successes, v_failures
        FROM inserted AS i;

        v_total_successes := v_total_successes + v_successes;
        v_total_failures := v_total_failures + v_failures;
        v_compared := v_compared || pg_catalog.jsonb_build_object(v_analyzer.analyzer, v_base);
    END LOOP;

    -- keep the newest snapshots, and each analyzer's last successful one
    WITH ranked AS (
        SELECT
            s.id,
            pg_catalog.row_number() OVER (ORDER BY s.id DESC) AS rank
        FROM autopilot.analysis_snapshots AS s
        WHERE s.codebase = p_codebase
    ),

    bases AS (
        SELECT pg_catalog.max(a.snapshot_id) AS id
        FROM autopilot.analysis_snapshot_analyzers AS a
        INNER JOIN autopilot.analysis_snapshots AS s ON a.snapshot_id = s.id
        WHERE s.codebase = p_codebase AND a.status = 'ok'
        GROUP BY a.analyzer
    )

    DELETE FROM autopilot.analysis_snapshots AS s
    USING ranked AS r
    WHERE s.id = r.id
      AND r.rank > v_keep
      AND s.id NOT IN (SELECT b.id FROM bases AS b);
    GET DIAGNOSTICS v_pruned = ROW_COUNT;

    RETURN pg_catalog.jsonb_build_object(
        'snapshot_id', v_id,
        'unchanged', false,
        'commit', p_commit,
        'files', v_files,
        'findings', v_findings,
        'successes', v_total_successes,
        'failures', v_total_failures,
        'compared_with', v_compared,
        'baselines', pg_catalog.to_jsonb(v_baselines),
        'pruned', v_pruned,
        'message', pg_catalog.format(
            'snapshot %s: %s fixed, %s new%s', v_id, v_total_successes, v_total_failures,
            CASE
                WHEN pg_catalog.cardinality(v_baselines) > 0
                    THEN pg_catalog.format('; baseline of %s', pg_catalog.array_to_string(v_baselines, ', '))
                ELSE ''
            END
        )
    );
END;
$$;

COMMENT ON FUNCTION autopilot.record_analysis_snapshot(text, text, jsonb, jsonb, jsonb) IS
'registry-sync: records one snapshot of a codebase''s analyzers (outcomes, files with their complexity, finding counts per file and rule) and, per analyzer that succeeded, analysis_results rows for pattern-learning (pattern_type analyzer_rule, pattern_key <analyzer>/<rule>): a finding gone since its last successful snapshot of the same version is a success, a new one a failure (files added or removed netted per rule), the first snapshot neutral rows per rule. One transaction; a run identical to the last snapshot at the same commit records nothing; snapshots past registry_sync.keep_snapshots are pruned.';
