CREATE FUNCTION autopilot.set_setting(p_name text, p_value text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_setting autopilot.settings;
    v_error text;
BEGIN
    SELECT * INTO v_setting FROM autopilot.settings WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown autopilot setting "%"', p_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM autopilot.settings lists the settings.';
    END IF;
    v_error := autopilot._setting_value_error(
        v_setting.value_type, p_value, v_setting.min_value, v_setting.max_value
    );
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION 'invalid value for setting "%": %', p_name, v_error
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s is of type %s, allowed range [%s, %s].',
                                  p_name, v_setting.value_type,
                                  coalesce(v_setting.min_value, '-'),
                                  coalesce(v_setting.max_value, '-')),
                  HINT = CASE v_setting.value_type
                      WHEN 'path' THEN 'Give an absolute path, such as ' || v_setting.default_value || '.'
                      ELSE 'SELECT * FROM autopilot.settings shows each setting''s type and range.'
                  END;
    END IF;
    IF NOT p_value = ANY(coalesce(v_setting.allowed_values, ARRAY[p_value])) THEN
        RAISE EXCEPTION 'invalid value for setting "%": % is not one of %', p_name,
            pg_catalog.quote_literal(p_value),
            pg_catalog.array_to_string(v_setting.allowed_values, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = pg_catalog.format('%s accepts only: %s.', p_name,
                                           pg_catalog.array_to_string(v_setting.allowed_values, ', '));
    END IF;
    INSERT INTO autopilot.setting_values AS sv (name, value)
    VALUES (p_name, p_value)
    ON CONFLICT (name) DO UPDATE
        SET value = excluded.value, updated_at = now(), updated_by = current_user;
    RETURN p_value;
END;
$$;

COMMENT ON FUNCTION autopilot.set_setting(text, text) IS
'Sets a setting after checking its type, range and allowed values (invalid_parameter_value otherwise); kept across upgrades and pg_dump/restore. Returns the value.';
