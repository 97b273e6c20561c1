CREATE FUNCTION autopilot._cleanup_old_artifacts_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- old-artifact-cleanup, one batch. Unused means:
--   knowledge artifact: not used (last_used_at, or created_at when never used)
--     for artifacts.unused_retention, and not loaded from a file (source set:
--     knowledge-migration, template-sync): the file owns that artifact, and its
--     loader would only write it again, without its version history;
--   learned pattern: not seen for patterns.unused_retention and its confidence
--     below patterns.keep_confidence (confident knowledge is kept however old).
-- Keyset-driven on (time, id); the DELETE re-checks the condition, so a row
-- used between the two statements is kept.
DECLARE
    v_phase text := coalesce(p_cursor ->> 'phase', 'artifacts');
    v_after_at timestamptz := coalesce((p_cursor ->> 'after_at')::timestamptz, '-infinity');
    v_after_id bigint := coalesce((p_cursor ->> 'after_id')::bigint, 0);
    v_artifact_cutoff timestamptz := now() - autopilot.get_setting('artifacts.unused_retention')::interval;
    v_pattern_cutoff timestamptz := now() - autopilot.get_setting('patterns.unused_retention')::interval;
    v_keep_confidence double precision := autopilot.get_setting('patterns.keep_confidence')::double precision;
    v_keys record;
    v_deleted bigint;
BEGIN
    IF v_phase = 'artifacts' THEN
        SELECT array_agg(k.id ORDER BY k.at, k.id) AS ids, array_agg(k.at ORDER BY k.at, k.id) AS ats
        INTO v_keys
        FROM (
            SELECT a.id, coalesce(a.last_used_at, a.created_at) AS at
            FROM autopilot.knowledge_artifacts AS a
            WHERE (coalesce(a.last_used_at, a.created_at), a.id) > (v_after_at, v_after_id)
              AND coalesce(a.last_used_at, a.created_at) < v_artifact_cutoff
              AND a.source IS NULL
            ORDER BY coalesce(a.last_used_at, a.created_at), a.id
            LIMIT p_limit
        ) AS k;
        DELETE FROM autopilot.knowledge_artifacts AS a
        WHERE a.id = ANY(v_keys.ids)
          AND coalesce(a.last_used_at, a.created_at) < v_artifact_cutoff
          AND a.source IS NULL;
        GET DIAGNOSTICS v_deleted = ROW_COUNT;
        IF coalesce(cardinality(v_keys.ids), 0) < p_limit THEN
            RETURN ROW(false, jsonb_build_object('phase', 'patterns'), v_deleted, NULL, NULL)::autopilot.job_step;
        END IF;
        RETURN ROW(false, jsonb_build_object('phase', 'artifacts',
                                             'after_at', v_keys.ats[cardinality(v_keys.ats)],
                                             'after_id', v_keys.ids[cardinality(v_keys.ids)]),
                   v_deleted, NULL, NULL)::autopilot.job_step;
    END IF;

    SELECT array_agg(k.id ORDER BY k.at, k.id) AS ids, array_agg(k.at ORDER BY k.at, k.id) AS ats
    INTO v_keys
    FROM (
        SELECT p.id, p.last_seen_at AS at
        FROM autopilot.learned_patterns AS p
        WHERE (p.last_seen_at, p.id) > (v_after_at, v_after_id)
          AND p.last_seen_at < v_pattern_cutoff
          AND p.confidence < v_keep_confidence
        ORDER BY p.last_seen_at, p.id
        LIMIT p_limit
    ) AS k;
    DELETE FROM autopilot.learned_patterns AS p
    WHERE p.id = ANY(v_keys.ids)
      AND p.last_seen_at < v_pattern_cutoff
      AND p.confidence < v_keep_confidence;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN ROW(
        coalesce(cardinality(v_keys.ids), 0) < p_limit,
        jsonb_build_object('phase', 'patterns',
                           'after_at', v_keys.ats[cardinality(v_keys.ats)],
                           'after_id', v_keys.ids[cardinality(v_keys.ids)]),
        v_deleted, NULL, NULL
    )::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._cleanup_old_artifacts_batch(jsonb, integer) IS
'old-artifact-cleanup, one batch: deletes knowledge artifacts unused for artifacts.unused_retention, then learned patterns not seen for patterns.unused_retention whose confidence is below patterns.keep_confidence.';
