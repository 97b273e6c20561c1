CREATE FUNCTION autopilot.version()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '@AUTOPILOT_VERSION@'::text $$;

COMMENT ON FUNCTION autopilot.version() IS
'Version of the autopilot SQL installed in this database (in schema mode, the installer reads it to choose upgrade scripts).';
