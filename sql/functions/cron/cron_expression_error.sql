CREATE FUNCTION autopilot.cron_expression_error(p_expression text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- Checks a five-field cron expression the way pg_cron 1.4 reads it (minute hour
-- day-of-month month day-of-week; lists, ranges, steps, month and weekday names).
-- Returns NULL when valid, else a sentence saying what is wrong.
DECLARE
    c_names constant text[] := ARRAY['minute', 'hour', 'day of month', 'month', 'day of week'];
    c_low constant integer[] := ARRAY[0, 0, 1, 1, 0];
    c_high constant integer[] := ARRAY[59, 23, 31, 12, 7];
    c_months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun',
                                      'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    c_days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    v_fields text[];
    v_item text;
    v_parts text[];
    v_bounds text[];
    v_value text;
    v_number integer;
    v_numbers integer[];
BEGIN
    IF p_expression IS NULL OR btrim(p_expression) = '' THEN
        RETURN 'the cron expression is empty';
    END IF;
    v_fields := regexp_split_to_array(btrim(p_expression), '\s+');
    IF array_length(v_fields, 1) <> 5 THEN
        RETURN format(
            'expected 5 fields (minute hour day-of-month month day-of-week), found %s',
            array_length(v_fields, 1)
        );
    END IF;
    FOR i IN 1..5 LOOP
        FOREACH v_item IN ARRAY string_to_array(lower(v_fields[i]), ',') LOOP
            -- item := (* | value | value-value) [/step]
            v_parts := regexp_match(v_item, '^([^/]+)(?:/([0-9]+))?$');
            IF v_parts IS NULL THEN
                RETURN format('%s field "%s": "%s" is not a value, range or step',
                              c_names[i], v_fields[i], v_item);
            END IF;
            IF v_parts[2] IS NOT NULL AND v_parts[2]::numeric < 1 THEN
                RETURN format('%s field "%s": the step must be at least 1', c_names[i], v_fields[i]);
            END IF;
            IF v_parts[1] = '*' THEN
                CONTINUE;
            END IF;
            v_bounds := string_to_array(v_parts[1], '-');
            IF array_length(v_bounds, 1) > 2 THEN
                RETURN format('%s field "%s": "%s" is not a range', c_names[i], v_fields[i], v_item);
            END IF;
            IF array_length(v_bounds, 1) = 1 AND v_parts[2] IS NOT NULL THEN
                RETURN format('%s field "%s": a step needs * or a range before it',
                              c_names[i], v_fields[i]);
            END IF;
            v_numbers := ARRAY[]::integer[];
            FOREACH v_value IN ARRAY v_bounds LOOP
                IF v_value ~ '^[0-9]{1,4}$' THEN
                    v_number := v_value::integer;
                ELSIF i = 4 AND v_value = ANY(c_months) THEN
                    v_number := array_position(c_months, v_value);
                ELSIF i = 5 AND v_value = ANY(c_days) THEN
                    v_number := array_position(c_days, v_value) - 1;
                ELSE
                    RETURN format('%s field "%s": "%s" is not a number%s',
                                  c_names[i], v_fields[i], v_value,
                                  CASE i WHEN 4 THEN ' or month name' WHEN 5 THEN ' or weekday name' ELSE '' END);
                END IF;
                IF v_number < c_low[i] OR v_number > c_high[i] THEN
                    RETURN format('%s field "%s": %s is out of range %s-%s',
                                  c_names[i], v_fields[i], v_number, c_low[i], c_high[i]);
                END IF;
                v_numbers := v_numbers || v_number;
            END LOOP;
            IF array_length(v_numbers, 1) = 2 AND v_numbers[1] > v_numbers[2] THEN
                RETURN format('%s field "%s": range %s-%s runs backwards',
                              c_names[i], v_fields[i], v_numbers[1], v_numbers[2]);
            END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot.cron_expression_error(text) IS
'NULL when the text is a valid five-field cron expression for pg_cron 1.4 (UTC; no seconds, no @macros), else a sentence saying what is wrong.';
