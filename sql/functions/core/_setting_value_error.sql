CREATE FUNCTION autopilot._setting_value_error(
    p_type text, p_value text, p_min text, p_max text
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- NULL when p_value is a valid value of type p_type within [p_min, p_max], else why not.
-- A path is absolute, without a .. component or a control character.
DECLARE
    v_below boolean := false;
    v_above boolean := false;
BEGIN
    IF p_value IS NULL THEN
        RETURN 'a value is required';
    END IF;
    BEGIN
        CASE p_type
            WHEN 'integer' THEN
                v_below := p_min IS NOT NULL AND p_value::bigint < p_min::bigint;
                v_above := p_max IS NOT NULL AND p_value::bigint > p_max::bigint;
            WHEN 'numeric' THEN
                v_below := p_min IS NOT NULL AND p_value::numeric < p_min::numeric;
                v_above := p_max IS NOT NULL AND p_value::numeric > p_max::numeric;
            WHEN 'interval' THEN
                v_below := p_min IS NOT NULL AND p_value::interval < p_min::interval;
                v_above := p_max IS NOT NULL AND p_value::interval > p_max::interval;
            WHEN 'boolean' THEN
                PERFORM p_value::boolean;
            WHEN 'path' THEN
                -- a directory of the runner's host: never relative (the runner's working directory)
                IF p_value !~ '^/' THEN
                    RETURN format('%L is not an absolute path', p_value);
                ELSIF p_value ~ '(^|/)\.\.(/|$)' OR p_value ~ '[[:cntrl:]]' THEN
                    RETURN format('%L has a .. component or a control character', p_value);
                END IF;
            ELSE
                NULL;
        END CASE;
    EXCEPTION
        WHEN data_exception THEN
            RETURN format('%L is not a valid %s', p_value, p_type);
    END;
    IF v_below THEN
        RETURN format('%s is below the minimum %s', p_value, p_min);
    ELSIF v_above THEN
        RETURN format('%s is above the maximum %s', p_value, p_max);
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._setting_value_error(text, text, text, text) IS
'Private: NULL when a value is valid for a setting''s type and range, else the reason (used by set_setting and by the settings'' own check).';
