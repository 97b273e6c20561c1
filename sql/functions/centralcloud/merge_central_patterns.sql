CREATE FUNCTION autopilot.merge_central_patterns()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- centralcloud-merge (central database side). Consumes the rows instances
-- pushed into autopilot.central_pattern_inbox: for each (instance, pattern)
-- the newest row (highest inbox id: an instance pushes one batch at a time)
-- replaces what autopilot.central_instance_patterns held for it, unless that
-- came from a newer row; then every pattern whose instance totals changed is
-- recomputed in autopilot.global_patterns from all instances' newest totals:
--   occurrences, successes, failures    sums;
--   success_rate    successes / (successes + failures), NULL without evidence;
--   confidence      Wilson lower bound at 95% over the sums, as pattern-learning;
--   mean_score      the mean weighted by each instance's score_count;
--   first/last seen, codebases    min, max, union;  instances    how many sent it.
-- A re-sent row therefore replaces, never adds: nothing is double-counted,
-- however often an instance sends the same totals. Inbox rows of transactions
-- still open stay for the next run; a failed run rolls back and consumes
-- nothing. Runs are exclusive (the job's advisory lock). In an instance
-- database the inbox is empty and a run does nothing.
DECLARE
    v_consumed bigint;
    v_types text [];
    v_keys text [];
    v_global bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('centralcloud-merge'));

    WITH consumed AS (
        DELETE FROM autopilot.central_pattern_inbox
        RETURNING *
    ),

    newest AS (
        SELECT DISTINCT ON (c.instance_id, c.pattern_type, c.pattern_key) c.*
        FROM consumed AS c
        ORDER BY c.instance_id, c.pattern_type, c.pattern_key, c.id DESC
    ),

    replaced AS (
        INSERT INTO autopilot.central_instance_patterns AS ip (
            instance_id, pattern_type, pattern_key, occurrences, successes, failures, mean_score,
            score_count, first_seen_at, last_seen_at, codebases, inbox_id, received_at
        )
        SELECT
            n.instance_id,
            n.pattern_type,
            n.pattern_key,
            n.occurrences,
            n.successes,
            n.failures,
            n.mean_score,
            n.score_count,
            n.first_seen_at,
            n.last_seen_at,
            n.codebases,
            n.id,
            n.received_at
        FROM newest AS n
        ON CONFLICT (instance_id, pattern_type, pattern_key) DO UPDATE
            SET
                occurrences = excluded.occurrences,
                successes = excluded.successes,
                failures = excluded.failures,
                mean_score = excluded.mean_score,
                score_count = excluded.score_count,
                first_seen_at = excluded.first_seen_at,
                last_seen_at = excluded.last_seen_at,
                codebases = excluded.codebases,
                inbox_id = excluded.inbox_id,
                received_at = excluded.received_at
            WHERE ip.inbox_id < excluded.inbox_id
        RETURNING ip.pattern_type, ip.pattern_key
    )

    SELECT
        (SELECT count(*) FROM consumed),
        coalesce(array_agg(r.pattern_type), '{}'),
        coalesce(array_agg(r.pattern_key), '{}')
    INTO v_consumed, v_types, v_keys
    FROM (SELECT DISTINCT x.pattern_type, x.pattern_key FROM replaced AS x) AS r;

    WITH touched AS (
        SELECT
            t.pattern_type,
            t.pattern_key
        FROM unnest(v_types, v_keys) AS t (pattern_type, pattern_key)
    ),

    sums AS (
        SELECT
            ip.pattern_type,
            ip.pattern_key,
            count(*)::integer AS instances,
            sum(ip.occurrences)::bigint AS occurrences,
            sum(ip.successes)::bigint AS successes,
            sum(ip.failures)::bigint AS failures,
            sum(ip.mean_score * ip.score_count) FILTER (WHERE ip.score_count > 0 AND ip.mean_score IS NOT NULL)
            / nullif(sum(ip.score_count) FILTER (WHERE ip.score_count > 0 AND ip.mean_score IS NOT NULL), 0)
                AS mean_score,
            sum(ip.score_count)::bigint AS score_count,
            min(ip.first_seen_at) AS first_seen_at,
            max(ip.last_seen_at) AS last_seen_at,
            (
                SELECT array_agg(DISTINCT c.codebase ORDER BY c.codebase)
                FROM autopilot.central_instance_patterns AS cp, unnest(cp.codebases) AS c (codebase)
                WHERE cp.pattern_type = ip.pattern_type AND cp.pattern_key = ip.pattern_key
            ) AS codebases
        FROM touched AS t
        INNER JOIN autopilot.central_instance_patterns AS ip
            ON t.pattern_type = ip.pattern_type AND t.pattern_key = ip.pattern_key
        GROUP BY ip.pattern_type, ip.pattern_key
    ),

    upserted AS (
        INSERT INTO autopilot.global_patterns AS g (
            pattern_type, pattern_key, instances, occurrences, successes, failures, success_rate, confidence,
            mean_score, score_count, first_seen_at, last_seen_at, codebases, updated_at
        )
        SELECT
            s.pattern_type,
            s.pattern_key,
            s.instances,
            s.occurrences,
            s.successes,
            s.failures,
            s.successes::double precision / nullif(s.successes + s.failures, 0),
            CASE
                WHEN s.successes = 0 THEN 0
                ELSE greatest(0, least(1,
                    (s.successes::double precision + 1.9208::double precision
                     - 1.96::double precision
                     * sqrt(s.successes::double precision * s.failures / (s.successes + s.failures)
                            + 0.9604::double precision))
                    / ((s.successes + s.failures)::double precision + 3.8416::double precision)))
            END,
            s.mean_score,
            s.score_count,
            s.first_seen_at,
            s.last_seen_at,
            coalesce(s.codebases, '{}'),
            now()
        FROM sums AS s
        ON CONFLICT (pattern_type, pattern_key) DO UPDATE
            SET
                instances = excluded.instances,
                occurrences = excluded.occurrences,
                successes = excluded.successes,
                failures = excluded.failures,
                success_rate = excluded.success_rate,
                confidence = excluded.confidence,
                mean_score = excluded.mean_score,
                score_count = excluded.score_count,
                first_seen_at = excluded.first_seen_at,
                last_seen_at = excluded.last_seen_at,
                codebases = excluded.codebases,
                updated_at = excluded.updated_at
        RETURNING 1
    )

    SELECT count(*) INTO v_global FROM upserted;

    RETURN jsonb_build_object(
        'rows_affected', v_global,
        'message', format(
            'merged %s pushed %s: %s global %s recomputed',
            v_consumed, CASE WHEN v_consumed = 1 THEN 'row' ELSE 'rows' END,
            v_global, CASE WHEN v_global = 1 THEN 'pattern' ELSE 'patterns' END
        ),
        'consumed', v_consumed,
        'patterns_changed', cardinality(v_types)
    );
END;
$$;

COMMENT ON FUNCTION autopilot.merge_central_patterns() IS
'centralcloud-merge (central database): consumes autopilot.central_pattern_inbox, keeps each instance''s newest totals per pattern in autopilot.central_instance_patterns (a re-sent row replaces, never adds) and recomputes the touched autopilot.global_patterns over all instances. Returns the job summary (rows_affected = global patterns recomputed).';
