CREATE FUNCTION autopilot._pg_cron_version()
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'pg_cron' $$;

COMMENT ON FUNCTION autopilot._pg_cron_version() IS
'Private: the version of the pg_cron extension created in this database (''1.4-1'', ''1.5'', ''1.6''), or NULL when it is not created here (not installed, or in the database named by cron.database_name).';
