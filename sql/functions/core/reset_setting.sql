CREATE FUNCTION autopilot.reset_setting(p_name text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM autopilot.setting_values WHERE name = p_name;
    RETURN autopilot.get_setting(p_name);
END;
$$;

COMMENT ON FUNCTION autopilot.reset_setting(text) IS
'Returns a setting to its default and returns that default. Unknown names raise undefined_object.';
