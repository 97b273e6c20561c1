CREATE FUNCTION autopilot.analyze_database()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- table-statistics: ANALYZE may run inside a function (unlike VACUUM).
DECLARE
    v_started timestamptz := clock_timestamp();
BEGIN
    ANALYZE;
    RETURN jsonb_build_object(
        'message', format('analyzed database %s in %s ms', current_database(),
                          round(extract(epoch FROM clock_timestamp() - v_started) * 1000)),
        'rows_affected', 0
    );
END;
$$;

COMMENT ON FUNCTION autopilot.analyze_database() IS
'table-statistics: ANALYZE of the whole database (the tables this role may analyze), so that the planner''s statistics stay current.';
