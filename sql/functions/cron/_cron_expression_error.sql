CREATE FUNCTION autopilot._cron_expression_error(p_expression text, p_pg_cron_version text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- Reads a schedule as pg_cron's parser does (src/entry.c, parse_cron_entry; from 1.5 on,
-- "[1-59] seconds" is tried first) and returns NULL when pg_cron accepts it and runs it as
-- written, else a sentence saying why not. p_pg_cron_version is the version of the pg_cron
-- extension in this database ('1.4-1', '1.5', '1.6'); NULL when it cannot be read (pg_cron
-- is in another database, or absent): then only what every pg_cron from 1.4 on accepts.
--   1.4: five fields (lists, ranges, steps, month and weekday names in any case, weekday 7 is
--        Sunday) or a macro: @yearly @annually @monthly @weekly @daily @midnight @hourly
--        (lower case only).
--   1.5: also "N seconds" / "N second", N from 1 to 59, any case.
--   1.6: also "$" as the day of month (its last day). Steps larger than the field's maximum
--        are refused (pg_cron 1.6.5 refuses them; 1.6.0-1.6.4 have the same extension version).
--   From pg_cron 1.6.0 on (extension version 1.5 or 1.6), @yearly and @annually are accepted
--   but never run: the parser sets no month for them. They are refused there.
-- Refused although pg_cron accepts them, because pg_cron would not run them as written: text
-- after the fifth field or a macro, or glued to a value (pg_cron ignores it, so a sixth
-- "seconds" field would silently be dropped); white space other than spaces and tabs between
-- fields; a backwards range (pg_cron reads it as no value at all); a number beyond 2147483647
-- or a sign (pg_cron wraps it around); comment lines; @reboot and @restart, which run when
-- pg_cron starts, at no time of day, so autopilot could not compute when they are due.
DECLARE
    c_names constant text[] := ARRAY['minute', 'hour', 'day of month', 'month', 'day of week'];
    c_low constant integer[] := ARRAY[0, 0, 1, 1, 0];
    c_high constant integer[] := ARRAY[59, 23, 31, 12, 7];
    c_months constant text[] := ARRAY['jan', 'feb', 'mar', 'apr', 'may', 'jun',
                                      'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    c_days constant text[] := ARRAY['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    c_macros constant text[] := ARRAY['yearly', 'annually', 'monthly', 'weekly', 'daily', 'midnight', 'hourly'];
    v_version integer[] := (regexp_match(p_pg_cron_version, '^([0-9]+)\.([0-9]+)'))::integer[];
    v_since_15 boolean := coalesce(v_version >= ARRAY[1, 5], false);
    v_since_16 boolean := coalesce(v_version >= ARRAY[1, 6], false);
    -- which pg_cron a refusal was measured against
    v_which text := CASE
        WHEN v_version IS NULL
            THEN 'pg_cron is not created in this database, so only what every pg_cron from 1.4 on accepts is allowed'
        ELSE format('this database has pg_cron %s', p_pg_cron_version)
    END;
    v_max_step integer;
    v_lead text;
    v_text text;
    v_match text[];
    v_fields text[];
    v_item text;
    v_parts text[];
    v_bounds text[];
    v_value text;
    v_numbers integer[];
BEGIN
    IF p_expression IS NULL OR p_expression ~ '^[[:space:]]*$' THEN
        RETURN 'the cron expression is empty';
    END IF;

    -- pg_cron 1.5+ reads sscanf(" %u secon%c%c %c") first: "5 seconds", "5second", "1 second"
    IF p_expression ~* '^[[:space:]]*[+-]?[0-9]+[[:space:]]*second' THEN
        IF NOT v_since_15 THEN
            RETURN format('seconds schedules need pg_cron 1.5 or later (%s)', v_which);
        END IF;
        v_match := regexp_match(p_expression, '^[[:space:]]*([0-9]+)[[:space:]]*(second|seconds[[:space:]]*)$', 'i');
        IF v_match IS NULL THEN
            RETURN 'a seconds schedule is "N seconds" (N from 1 to 59) with nothing after it';
        END IF;
        IF v_match[1]::numeric NOT BETWEEN 1 AND 59 THEN
            RETURN format('a seconds schedule runs every 1 to 59 seconds, not %s (for a minute or more use five fields)',
                          v_match[1]::numeric);
        END IF;
        RETURN NULL;
    END IF;

    IF octet_length(p_expression) >= 1000 THEN
        RETURN format('the cron expression is %s bytes long; pg_cron reads at most 999', octet_length(p_expression));
    END IF;

    -- pg_cron skips spaces, tabs and empty lines before the schedule
    v_lead := regexp_replace(p_expression, '^[ \t\n]+', '');
    IF starts_with(v_lead, '#') THEN
        RETURN 'the cron expression starts with a comment (pg_cron would skip that line)';
    END IF;
    IF starts_with(v_lead, '@') THEN
        -- the macro's name runs up to a space, tab or line break
        v_match := regexp_match(v_lead, '^@([^ \t\n]*)(.*)$');
        IF v_match[1] IN ('reboot', 'restart') THEN
            RETURN format('@%s runs when pg_cron starts, at no time of day: autopilot could not tell when '
                          'the job is due (next run, overdue, catch-up after an overrun); give it a time, '
                          'e.g. @daily', v_match[1]);
        END IF;
        IF NOT v_match[1] = ANY(c_macros) THEN
            RETURN format('"@%s" is not a pg_cron macro: @yearly, @annually, @monthly, @weekly, @daily, '
                          '@midnight or @hourly (lower case)', v_match[1]);
        END IF;
        IF v_match[1] IN ('yearly', 'annually') AND (v_version IS NULL OR v_since_15) THEN
            RETURN format('pg_cron 1.6 and later accept @%s but never run it (they set no month for it; %s): '
                          'write ''0 0 1 1 *''', v_match[1], v_which);
        END IF;
        IF v_match[2] !~ '^([ \t\n][[:space:]]*)?$' THEN
            RETURN format('text after @%s ("%s"): pg_cron would ignore it', v_match[1], btrim(v_match[2]));
        END IF;
        RETURN NULL;
    END IF;

    -- whatever follows the fifth field pg_cron ignores: only white space may
    v_text := regexp_replace(v_lead, '[[:space:]]+$', '');
    IF v_text ~ '^[[:space:]]' THEN
        RETURN 'the cron expression must start with its first field (pg_cron skips only spaces, tabs and line breaks before it)';
    END IF;
    v_fields := regexp_split_to_array(v_text, '[[:space:]]+');
    IF cardinality(v_fields) < 5 THEN
        RETURN format('expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found %s',
                      cardinality(v_fields));
    ELSIF cardinality(v_fields) > 5 THEN
        RETURN format('expected 5 fields (minute hour day-of-month month day-of-week), found %s: pg_cron would '
                      'ignore everything after the fifth ("%s"); it has no seconds or years field',
                      cardinality(v_fields), array_to_string(v_fields[6:], ' '));
    END IF;
    IF v_text !~ '^[^[:space:]]+([ \t]+[^[:space:]]+){4}$' THEN
        RETURN 'the fields must be separated by spaces or tabs (pg_cron ends the schedule at a line break)';
    END IF;

    -- pg_cron 1.6.5 refuses a step above the field's maximum; before, it meant the first value only
    v_max_step := CASE WHEN v_version IS NULL OR v_since_16 THEN NULL ELSE 2147483647 END;
    FOR i IN 1..5 LOOP
        IF i = 3 AND v_fields[i] = '$' THEN
            IF NOT v_since_16 THEN
                RETURN format('day of month "$" (the last day of the month) needs pg_cron 1.6 or later (%s)', v_which);
            END IF;
            CONTINUE;
        END IF;
        -- pg_cron ignores what follows a value up to the next blank: ';' in '5;', ...
        IF v_fields[i] ~ '[^0-9A-Za-z*/,-]' THEN
            RETURN format('%s field "%s": "%s" cannot appear in a cron field',
                          c_names[i], v_fields[i], substring(v_fields[i] FROM '[^0-9A-Za-z*/,-]'));
        END IF;
        FOREACH v_item IN ARRAY string_to_array(lower(v_fields[i]), ',') LOOP
            -- item := (* | value | value-value) [/step]
            v_parts := regexp_match(v_item, '^([^/]+)(?:/([0-9]+))?$');
            IF v_parts IS NULL THEN
                RETURN format('%s field "%s": "%s" is not a value, range or step', c_names[i], v_fields[i], v_item);
            END IF;
            IF v_parts[2] IS NOT NULL THEN
                IF v_parts[2]::numeric < 1 THEN
                    RETURN format('%s field "%s": the step must be at least 1', c_names[i], v_fields[i]);
                END IF;
                IF v_parts[2]::numeric > coalesce(v_max_step, c_high[i]) THEN
                    RETURN CASE
                        WHEN v_max_step IS NULL THEN format(
                            '%s field "%s": step %s is larger than %s, which pg_cron 1.6.5 and later refuse (%s)',
                            c_names[i], v_fields[i], v_parts[2]::numeric, c_high[i], v_which)
                        ELSE format('%s field "%s": step %s is larger than pg_cron reads (2147483647)',
                                    c_names[i], v_fields[i], v_parts[2]::numeric)
                    END;
                END IF;
            END IF;
            IF v_parts[1] = '*' THEN
                CONTINUE;
            END IF;
            v_bounds := string_to_array(v_parts[1], '-');
            IF '' = ANY(v_bounds) THEN
                RETURN format('%s field "%s": "%s" is not a value, range or step', c_names[i], v_fields[i], v_item);
            END IF;
            IF cardinality(v_bounds) > 2 THEN
                RETURN format('%s field "%s": "%s" is not a range', c_names[i], v_fields[i], v_item);
            END IF;
            IF cardinality(v_bounds) = 1 AND v_parts[2] IS NOT NULL THEN
                RETURN format('%s field "%s": a step needs * or a range before it', c_names[i], v_fields[i]);
            END IF;
            v_numbers := ARRAY[]::integer[];
            FOREACH v_value IN ARRAY v_bounds LOOP
                IF v_value ~ '^[0-9]+$' THEN
                    IF v_value::numeric NOT BETWEEN c_low[i] AND c_high[i] THEN
                        RETURN format('%s field "%s": %s is out of range %s-%s',
                                      c_names[i], v_fields[i], v_value::numeric, c_low[i], c_high[i]);
                    END IF;
                    v_numbers := v_numbers || v_value::integer;
                ELSIF i = 4 AND v_value = ANY(c_months) THEN
                    v_numbers := v_numbers || array_position(c_months, v_value);
                ELSIF i = 5 AND v_value = ANY(c_days) THEN
                    v_numbers := v_numbers || (array_position(c_days, v_value) - 1);
                ELSE
                    RETURN format('%s field "%s": "%s" is not a number%s',
                                  c_names[i], v_fields[i], v_value,
                                  CASE i WHEN 4 THEN ' or month name' WHEN 5 THEN ' or weekday name' ELSE '' END);
                END IF;
            END LOOP;
            IF cardinality(v_numbers) = 2 AND v_numbers[1] > v_numbers[2] THEN
                RETURN format('%s field "%s": range %s-%s runs backwards (pg_cron would read it as no value at all%s)',
                              c_names[i], v_fields[i], v_numbers[1], v_numbers[2],
                              CASE WHEN i = 5 AND v_numbers[2] = 0 THEN '; sun is 0: end a range on Sunday with 7' END);
            END IF;
        END LOOP;
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._cron_expression_error(text, text) IS
'Private: NULL when the pg_cron of the given extension version (NULL: any from 1.4 on) accepts the schedule and runs it as written, else a sentence saying what is wrong.';
