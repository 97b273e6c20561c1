CREATE FUNCTION autopilot._archive_old_backups_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- backup-archival, one batch: backup records that started before
-- backups.archive_after and are no longer running move to
-- autopilot.backup_metadata_archive. The DELETE and the INSERT are one
-- statement, so a record is in exactly one of the two tables at every moment.
DECLARE
    v_after_at timestamptz := coalesce((p_cursor ->> 'after_at')::timestamptz, '-infinity');
    v_after_id bigint := coalesce((p_cursor ->> 'after_id')::bigint, 0);
    v_cutoff timestamptz := now() - autopilot.get_setting('backups.archive_after')::interval;
    v_keys record;
    v_moved bigint;
BEGIN
    SELECT array_agg(k.id ORDER BY k.started_at, k.id) AS ids,
           array_agg(k.started_at ORDER BY k.started_at, k.id) AS ats
    INTO v_keys
    FROM (
        SELECT b.id, b.started_at
        FROM autopilot.backup_metadata AS b
        WHERE (b.started_at, b.id) > (v_after_at, v_after_id)
          AND b.started_at < v_cutoff
        ORDER BY b.started_at, b.id
        LIMIT p_limit
    ) AS k;

    WITH moved AS (
        DELETE FROM autopilot.backup_metadata AS b
        WHERE b.id = ANY(v_keys.ids) AND b.started_at < v_cutoff AND b.status <> 'running'
        RETURNING b.*
    )
    INSERT INTO autopilot.backup_metadata_archive (
        id, kind, database_name, file_path, size_bytes, sha256, status,
        started_at, finished_at, verified_at, verification, error, details
    )
    SELECT
        m.id, m.kind, m.database_name, m.file_path, m.size_bytes, m.sha256, m.status,
        m.started_at, m.finished_at, m.verified_at, m.verification, m.error, m.details
    FROM moved AS m;
    GET DIAGNOSTICS v_moved = ROW_COUNT;

    RETURN ROW(
        coalesce(cardinality(v_keys.ids), 0) < p_limit,
        jsonb_build_object('after_at', v_keys.ats[cardinality(v_keys.ats)],
                           'after_id', v_keys.ids[cardinality(v_keys.ids)]),
        v_moved, NULL, NULL
    )::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._archive_old_backups_batch(jsonb, integer) IS
'backup-archival, one batch: moves backup records older than backups.archive_after (and not running) into autopilot.backup_metadata_archive, delete and insert in one statement.';
