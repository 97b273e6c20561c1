CREATE FUNCTION autopilot.cron_expression_error(p_expression text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- Checks a schedule against the grammar of the pg_cron created in this database (its
-- extension version); where pg_cron is in another database or absent, against what every
-- pg_cron from 1.4 on accepts. Returns NULL when valid, else a sentence saying what is wrong.
SELECT autopilot._cron_expression_error(p_expression, autopilot._pg_cron_version())
$$;

COMMENT ON FUNCTION autopilot.cron_expression_error(text) IS
'NULL when pg_cron accepts the schedule and runs it as written, else a sentence saying what is wrong: five fields in UTC or a macro (@hourly, @daily, ...); "N seconds" with pg_cron 1.5+ and "$" (last day of the month) with 1.6+ in this database. Where pg_cron is in another database, only what every pg_cron from 1.4 on accepts.';
