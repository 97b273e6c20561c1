CREATE FUNCTION autopilot._sync_if_local()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF to_regclass('cron.job') IS NOT NULL THEN
        PERFORM autopilot.sync_schedules();
    END IF;
END;
$$;

COMMENT ON FUNCTION autopilot._sync_if_local() IS
'Private: applies a changed override to pg_cron at once when pg_cron is in this database (otherwise "autopilot sync" applies it).';
