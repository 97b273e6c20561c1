CREATE FUNCTION autopilot.plan_index_maintenance()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Starts a cycle of index-reindex unless one is still open: first DROP INDEX
-- CONCURRENTLY of the invalid _ccnew/_ccold leftovers a failed REINDEX
-- CONCURRENTLY leaves behind, then REINDEX INDEX CONCURRENTLY of every index at
-- least reindex.min_size_bytes large whose bloat is at least
-- reindex.bloat_threshold, most bloated first. Returns how many statements it
-- planned (0 when a cycle is still open or nothing needs work).
DECLARE
    v_threshold double precision := autopilot.get_setting('reindex.bloat_threshold')::double precision;
    v_min_size bigint := autopilot.get_setting('reindex.min_size_bytes')::bigint;
    v_planned integer;
    v_rebuilds integer;
BEGIN
    -- one planner at a time; an open cycle is finished first
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('index-reindex:plan'));
    IF EXISTS (SELECT FROM autopilot.index_maintenance WHERE state IN ('pending', 'armed')) THEN
        RETURN 0;
    END IF;

    INSERT INTO autopilot.index_maintenance (index_name, action, statement, reason, size_bytes)
    SELECT
        format('autopilot.%I', c.relname),
        'drop_invalid',
        format('DROP INDEX CONCURRENTLY IF EXISTS autopilot.%I', c.relname),
        'invalid index left by a failed REINDEX CONCURRENTLY',
        pg_relation_size(c.oid)
    FROM pg_index AS i
    INNER JOIN pg_class AS c ON i.indexrelid = c.oid
    WHERE c.relnamespace = 'autopilot'::regnamespace
      AND NOT i.indisvalid
      AND c.relname ~ '_cc(new|old)[0-9]*$'
    ORDER BY c.relname;
    GET DIAGNOSTICS v_planned = ROW_COUNT;

    INSERT INTO autopilot.index_maintenance (index_name, action, statement, reason, size_bytes, bloat_ratio)
    SELECT
        b.index_name,
        'reindex',
        format('REINDEX INDEX CONCURRENTLY %s', b.index_name),
        format('bloat %s%% (%s) of %s', round((b.bloat_ratio * 100)::numeric, 1), b.method,
               pg_size_pretty(b.size_bytes)),
        b.size_bytes,
        b.bloat_ratio
    FROM autopilot.index_bloat() AS b
    WHERE b.size_bytes >= v_min_size AND b.bloat_ratio >= v_threshold
      AND b.index_name !~ '_cc(new|old)[0-9]*$'
    ORDER BY b.bloat_ratio DESC, b.index_name;
    GET DIAGNOSTICS v_rebuilds = ROW_COUNT;
    RETURN v_planned + v_rebuilds;
END;
$$;

COMMENT ON FUNCTION autopilot.plan_index_maintenance() IS
'Starts an index-reindex cycle unless one is open: queues DROP INDEX CONCURRENTLY of invalid _ccnew/_ccold leftovers and REINDEX INDEX CONCURRENTLY of indexes past reindex.bloat_threshold and reindex.min_size_bytes into autopilot.index_maintenance. Returns the number of statements queued.';
