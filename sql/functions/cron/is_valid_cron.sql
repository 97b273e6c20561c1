CREATE FUNCTION autopilot.is_valid_cron(p_expression text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT autopilot.cron_expression_error(p_expression) IS NULL $$;

COMMENT ON FUNCTION autopilot.is_valid_cron(text) IS
'true when the text is a five-field cron expression pg_cron 1.4 accepts; autopilot.cron_expression_error() says why not.';
