CREATE FUNCTION autopilot._cleanup_code_chunks_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- code-chunk-cleanup, one batch. Obsolete means: superseded by a re-ingest (or
-- its file gone) for longer than code_chunks.obsolete_retention. Keyset on
-- (superseded_at, id) through code_chunks_superseded_idx.
DECLARE
    v_after_at timestamptz := coalesce((p_cursor ->> 'after_at')::timestamptz, '-infinity');
    v_after_id bigint := coalesce((p_cursor ->> 'after_id')::bigint, 0);
    v_cutoff timestamptz := now() - autopilot.get_setting('code_chunks.obsolete_retention')::interval;
    v_keys record;
    v_deleted bigint;
BEGIN
    SELECT array_agg(k.id ORDER BY k.superseded_at, k.id) AS ids,
           array_agg(k.superseded_at ORDER BY k.superseded_at, k.id) AS ats
    INTO v_keys
    FROM (
        SELECT c.id, c.superseded_at
        FROM autopilot.code_chunks AS c
        WHERE c.superseded_at IS NOT NULL
          AND (c.superseded_at, c.id) > (v_after_at, v_after_id)
          AND c.superseded_at < v_cutoff
        ORDER BY c.superseded_at, c.id
        LIMIT p_limit
    ) AS k;
    DELETE FROM autopilot.code_chunks AS c
    WHERE c.id = ANY(v_keys.ids) AND c.superseded_at < v_cutoff;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN ROW(
        coalesce(cardinality(v_keys.ids), 0) < p_limit,
        jsonb_build_object('after_at', v_keys.ats[cardinality(v_keys.ats)],
                           'after_id', v_keys.ids[cardinality(v_keys.ids)]),
        v_deleted, NULL, NULL
    )::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._cleanup_code_chunks_batch(jsonb, integer) IS
'code-chunk-cleanup, one batch: deletes code chunks superseded for longer than code_chunks.obsolete_retention.';
