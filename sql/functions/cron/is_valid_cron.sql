CREATE FUNCTION autopilot.is_valid_cron(p_expression text)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT autopilot.cron_expression_error(p_expression) IS NULL $$;

COMMENT ON FUNCTION autopilot.is_valid_cron(text) IS
'true when pg_cron accepts the schedule and runs it as written (the grammar of the pg_cron in this database, else of every pg_cron from 1.4 on); autopilot.cron_expression_error() says why not.';
