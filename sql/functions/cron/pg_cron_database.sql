CREATE FUNCTION autopilot.pg_cron_database()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT current_setting('cron.database_name', true) $$;

COMMENT ON FUNCTION autopilot.pg_cron_database() IS
'The database pg_cron runs in (cron.database_name), or NULL when pg_cron is not loaded on this server (shared_preload_libraries).';
