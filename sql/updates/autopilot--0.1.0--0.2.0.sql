-- autopilot 0.1.0 -> 0.2.0: the learning jobs.
\echo Use "ALTER EXTENSION autopilot UPDATE TO '0.2.0'" (or "autopilot upgrade") to load this file. \quit

CREATE OR REPLACE FUNCTION autopilot.version()
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT '0.2.0'::text $$;
