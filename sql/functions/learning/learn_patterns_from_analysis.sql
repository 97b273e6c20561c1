CREATE FUNCTION autopilot.learn_patterns_from_analysis()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pattern-learning. Folds the analysis rows no run has folded yet into
-- autopilot.learned_patterns, one row per (pattern_type, pattern_key):
--   occurrences    every folded row, whatever its outcome;
--   successes, failures    rows with outcome success / failure (a neutral row
--                  is an occurrence but no evidence either way);
--   success_rate   successes / (successes + failures), NULL without evidence;
--   confidence     Wilson score lower bound at 95% (z = 1.96) of that rate
--                  over n = successes + failures, 0 without a success:
--                  (s + z^2/2 - z * sqrt(s*f/n + z^2/4)) / (n + z^2);
--   mean_score, score_count    exact running mean of the non-null scores,
--                  weighted by how many rows had one (a mean written by hand
--                  without a score_count carries no weight);
--   first_seen_at, last_seen_at    earliest / latest created_at folded;
--   codebases      union of the rows' codebases, sorted, no duplicates;
--   updated_at     now() on every row the run changed.
--
-- Exactly once. Each analysis row carries created_xid, the transaction that
-- inserted it. A run locks its watermark row (so runs are serialised: a second
-- concurrent run waits, then folds only what the first left), takes as new
-- horizon the xmin of its snapshot -- every transaction below it has ended,
-- so every committed row with created_xid below it is visible -- and folds
-- the rows with created_xid in [old horizon, new horizon) in one set-based
-- upsert, then advances the watermark in the same transaction. A row whose
-- transaction is still open (even one that began before rows already folded,
-- i.e. commits out of id order) stays at or above the horizon and is folded
-- by a later run; a run that fails or is killed rolls back with its
-- watermark. An open transaction anywhere in the cluster holds the horizon
-- back: learning is delayed, nothing is lost. The cost is the new rows (an
-- index range scan on created_xid), not the table; the whole backlog goes in
-- one transaction. Rows the calling transaction wrote itself wait for a
-- later run. Never set created_xid by hand: a value below the horizon is
-- never folded.
--
-- Rows that existed before autopilot 0.2.0 have created_xid 0 and are folded
-- once, by the first run, into whatever learned_patterns already holds.
--
-- Restore into another cluster. Transaction ids mean nothing across clusters,
-- so the watermark records the cluster (system identifier) its horizon counts
-- in, and the highest row id folded. A run that finds another cluster's
-- watermark (a pg_dump restored elsewhere; pg_upgrade too, harmlessly) takes
-- a SHARE lock on analysis_results (writers wait for the run), folds the rows
-- not folded yet -- id above the recorded maximum (restored identities only
-- grow) or created_xid at or above the recorded horizon -- then sets
-- created_xid to 0 on every row at or above the new horizon and starts
-- counting in this cluster. This one run reads the whole table.
DECLARE
    c_all_xids CONSTANT xid8 := '18446744073709551615'::xid8;
    v_system_identifier bigint := (pg_catalog.pg_control_system()).system_identifier;
    v_mark autopilot.learning_watermarks;
    v_rebase boolean;
    v_horizon xid8;
    v_from xid8[];
    v_to xid8[];
    v_after_id bigint[];
    v_pass_rows bigint;
    v_pass_patterns bigint;
    v_pass_max_id bigint;
    v_rows bigint := 0;
    v_patterns bigint := 0;
    v_max_id bigint;
    v_relabelled bigint := 0;
BEGIN
    INSERT INTO autopilot.learning_watermarks (name) VALUES ('pattern-learning')
    ON CONFLICT (name) DO NOTHING;
    SELECT w.* INTO STRICT v_mark
    FROM autopilot.learning_watermarks AS w
    WHERE w.name = 'pattern-learning'
    FOR UPDATE;

    v_rebase := v_mark.system_identifier IS DISTINCT FROM v_system_identifier
        AND v_mark.system_identifier IS NOT NULL;
    IF v_rebase THEN
        -- no writer in flight: every row of the table is committed and visible
        LOCK TABLE autopilot.analysis_results IN SHARE MODE;
    END IF;
    v_horizon := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
    IF NOT v_rebase THEN
        -- never backwards (that would fold rows twice)
        v_horizon := greatest(v_horizon, v_mark.horizon);
    END IF;
    v_max_id := v_mark.max_id;

    IF v_rebase THEN
        v_from := ARRAY[v_mark.horizon, '0'::xid8];
        v_to := ARRAY[c_all_xids, v_mark.horizon];
        v_after_id := ARRAY[0, v_mark.max_id];
    ELSE
        v_from := ARRAY[v_mark.horizon];
        v_to := ARRAY[v_horizon];
        v_after_id := ARRAY[0::bigint];
    END IF;

    FOR v_pass IN 1 .. cardinality(v_from) LOOP
        WITH batch AS (
            SELECT
                a.pattern_type,
                a.pattern_key,
                count(*) AS occurrences,
                count(*) FILTER (WHERE a.outcome = 'success') AS successes,
                count(*) FILTER (WHERE a.outcome = 'failure') AS failures,
                count(a.score) AS score_count,
                avg(a.score) AS mean_score,
                min(a.created_at) AS first_seen_at,
                max(a.created_at) AS last_seen_at,
                array_agg(DISTINCT a.codebase ORDER BY a.codebase) AS codebases,
                max(a.id) AS max_id
            FROM autopilot.analysis_results AS a
            WHERE a.created_xid >= v_from[v_pass]
              AND a.created_xid < v_to[v_pass]
              AND a.id > v_after_id[v_pass]
            GROUP BY a.pattern_type, a.pattern_key
        ),

        upserted AS (
            INSERT INTO autopilot.learned_patterns AS lp (
                pattern_type, pattern_key, occurrences, successes, failures, success_rate, confidence,
                mean_score, score_count, codebases, first_seen_at, last_seen_at, updated_at
            )
            SELECT
                b.pattern_type,
                b.pattern_key,
                b.occurrences,
                b.successes,
                b.failures,
                b.successes::double precision / nullif(b.successes + b.failures, 0),
                -- Wilson lower bound, in double precision throughout
                CASE WHEN b.successes = 0 THEN 0 ELSE
                    greatest(0, least(1,
                        (b.successes::double precision + 1.9208::double precision
                         - 1.96::double precision
                         * sqrt(b.successes::double precision * b.failures / (b.successes + b.failures)
                                + 0.9604::double precision))
                        / ((b.successes + b.failures)::double precision + 3.8416::double precision)))
                END,
                b.mean_score,
                b.score_count,
                b.codebases,
                b.first_seen_at,
                b.last_seen_at,
                now()
            FROM batch AS b
            ON CONFLICT (pattern_type, pattern_key) DO UPDATE
            SET occurrences = lp.occurrences + excluded.occurrences,
                successes = lp.successes + excluded.successes,
                failures = lp.failures + excluded.failures,
                success_rate = (lp.successes + excluded.successes)::double precision
                / nullif(lp.successes + excluded.successes + lp.failures + excluded.failures, 0),
                confidence = CASE
                    WHEN lp.successes + excluded.successes = 0 THEN 0
                    ELSE greatest(0, least(1,
                        ((lp.successes + excluded.successes)::double precision + 1.9208::double precision
                         - 1.96::double precision
                         * sqrt((lp.successes + excluded.successes)::double precision
                                * (lp.failures + excluded.failures)
                                / (lp.successes + excluded.successes + lp.failures + excluded.failures)
                                + 0.9604::double precision))
                        / ((lp.successes + excluded.successes + lp.failures + excluded.failures)::double precision
                           + 3.8416::double precision)))
                END,
                mean_score = CASE
                    WHEN excluded.score_count = 0 THEN lp.mean_score
                    WHEN lp.score_count = 0 OR lp.mean_score IS NULL THEN excluded.mean_score
                    ELSE (lp.mean_score * lp.score_count + excluded.mean_score * excluded.score_count)
                    / (lp.score_count + excluded.score_count)
                END,
                score_count = lp.score_count + excluded.score_count,
                codebases = CASE
                    WHEN excluded.codebases <@ lp.codebases THEN lp.codebases
                    ELSE array(
                        SELECT DISTINCT c.codebase
                        FROM unnest(lp.codebases || excluded.codebases) AS c (codebase)
                        ORDER BY c.codebase
                    )
                END,
                first_seen_at = least(lp.first_seen_at, excluded.first_seen_at),
                last_seen_at = greatest(lp.last_seen_at, excluded.last_seen_at),
                updated_at = now(),
                -- centralcloud-sync's mark, set here rather than by the row trigger (cheaper)
                changed_xid = pg_current_xact_id()
            RETURNING 1
        )

        SELECT
            coalesce(sum(b.occurrences), 0)::bigint,
            max(b.max_id),
            (SELECT count(*) FROM upserted)
        INTO v_pass_rows, v_pass_max_id, v_pass_patterns
        FROM batch AS b;

        v_rows := v_rows + v_pass_rows;
        v_patterns := v_patterns + v_pass_patterns;
        v_max_id := greatest(v_max_id, v_pass_max_id);
    END LOOP;

    IF v_rebase THEN
        -- every row is folded now; those at or above the new horizon carry
        -- another cluster's transaction ids and must never be folded again
        UPDATE autopilot.analysis_results AS a
        SET created_xid = '0'
        WHERE a.created_xid >= v_horizon;
        GET DIAGNOSTICS v_relabelled = ROW_COUNT;
    END IF;

    UPDATE autopilot.learning_watermarks AS w
    SET horizon = v_horizon,
        max_id = v_max_id,
        system_identifier = v_system_identifier,
        rows_total = w.rows_total + v_rows,
        runs = w.runs + 1,
        updated_at = now()
    WHERE w.name = 'pattern-learning';

    RETURN jsonb_build_object(
        'rows_affected', v_rows,
        'message', format(
            '%s analysis %s folded into %s learned %s',
            v_rows, CASE WHEN v_rows = 1 THEN 'row' ELSE 'rows' END,
            v_patterns, CASE WHEN v_patterns = 1 THEN 'pattern' ELSE 'patterns' END
        ) || CASE WHEN v_rebase
            THEN format(' (first run in this cluster: rebased, %s rows relabelled)', v_relabelled)
            ELSE ''
        END,
        'patterns', v_patterns,
        'horizon', v_horizon::text,
        'previous_horizon', v_mark.horizon::text,
        'rebased', v_rebase
    );
END;
$$;

COMMENT ON FUNCTION autopilot.learn_patterns_from_analysis() IS
'pattern-learning: folds every analysis row not yet folded into autopilot.learned_patterns (occurrences, successes, failures, success rate, Wilson lower-bound confidence at 95%, running mean score, first/last seen, codebases), exactly once: rows are taken by inserting transaction, below a horizon every transaction under which has ended, and the watermark advances in the same transaction. Returns the job summary (rows_affected = rows folded).';
