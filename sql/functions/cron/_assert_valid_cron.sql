CREATE FUNCTION autopilot._assert_valid_cron(p_expression text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_error text := autopilot.cron_expression_error(p_expression);
BEGIN
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'invalid cron expression "%": %', p_expression, v_error
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Five fields, in UTC: minute hour day-of-month month day-of-week, e.g. ''*/5 * * * *''; '
                         'or a macro: @hourly, @daily, @weekly, @monthly.';
    END IF;
END;
$$;

COMMENT ON FUNCTION autopilot._assert_valid_cron(text) IS
'Private: raises invalid_parameter_value with the reason when the text is not a valid cron expression.';
