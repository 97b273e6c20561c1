CREATE FUNCTION autopilot._cron_field_values(p_field text, p_position integer)
RETURNS integer[]
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The values one field of a valid five-field cron expression stands for, the way
-- pg_cron reads it: lists, ranges, steps, month and weekday names; weekday 7 is
-- Sunday (0). p_position: 1 minute, 2 hour, 3 day of month, 4 month, 5 day of week.
-- The expression is validated before it reaches the catalog (cron_expression_error);
-- "$" (the last day of the month) stands for no fixed day: _cron_ticks reads it.
DECLARE
    c_low constant integer[] := ARRAY[0, 0, 1, 1, 0];
    c_high constant integer[] := ARRAY[59, 23, 31, 12, 7];
    c_months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun',
                                      'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    c_days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    v_item text;
    v_parts text[];
    v_bounds text[];
    v_numbers integer[];
    v_values integer[] := ARRAY[]::integer[];
BEGIN
    IF p_field = '$' THEN
        RETURN ARRAY[]::integer[];
    END IF;
    FOREACH v_item IN ARRAY string_to_array(lower(p_field), ',') LOOP
        v_parts := regexp_match(v_item, '^([^/]+)(?:/([0-9]+))?$');
        IF v_parts[1] = '*' THEN
            v_numbers := ARRAY[c_low[p_position], c_high[p_position]];
        ELSE
            v_bounds := string_to_array(v_parts[1], '-');
            SELECT array_agg(
                CASE
                    WHEN b ~ '^[0-9]+$' THEN b::integer
                    WHEN p_position = 4 THEN array_position(c_months, b)
                    ELSE array_position(c_days, b) - 1
                END
                ORDER BY o
            )
            INTO v_numbers
            FROM unnest(v_bounds) WITH ORDINALITY AS u (b, o);
            IF cardinality(v_numbers) = 1 THEN
                v_numbers := v_numbers || v_numbers[1];
            END IF;
        END IF;
        v_values := v_values || ARRAY(
            SELECT CASE WHEN p_position = 5 AND g = 7 THEN 0 ELSE g END
            FROM generate_series(v_numbers[1], v_numbers[2], coalesce(v_parts[2]::integer, 1)) AS g
        );
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT v FROM unnest(v_values) AS v ORDER BY v);
END;
$$;

COMMENT ON FUNCTION autopilot._cron_field_values(text, integer) IS
'Private: the sorted values one field of a valid cron expression stands for (position 1 minute, 2 hour, 3 day of month, 4 month, 5 day of week with Sunday 0), read as pg_cron reads it; none for "$".';
