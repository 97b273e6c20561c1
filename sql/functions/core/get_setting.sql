CREATE FUNCTION autopilot.get_setting(p_name text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text;
BEGIN
    SELECT coalesce(v.value, s.default_value)
    INTO v_value
    FROM autopilot.settings AS s
    LEFT JOIN autopilot.setting_values AS v ON v.name = s.name
    WHERE s.name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown autopilot setting "%"', p_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM autopilot.settings lists the settings.';
    END IF;
    RETURN v_value;
END;
$$;

COMMENT ON FUNCTION autopilot.get_setting(text) IS
'Current value of a setting as text (the DBA''s value, else the default); cast it to the setting''s type. Unknown names raise undefined_object.';
