CREATE FUNCTION autopilot._schedule_interval(p_schedule text, p_only_on_dow integer, p_now timestamptz)
RETURNS interval
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The longest gap between consecutive runs of a valid schedule over its coming fires (UTC), kept to
-- the catalog's weekday when p_only_on_dow is set: what "on time" means for autopilot.health's
-- job_overdue. A fire day holds the same times (minutes x hours), so the longest gap is either
-- within a day or from the last time of one fire day to the first of the next; fire days are
-- the first 13 (7 with a weekday) from today, as `status` looked at the coming 12 (6) fires. "N
-- seconds" is N seconds; a schedule with fewer than two fire days in 13 years counts as 31 days.
DECLARE
    v_fields text[] := autopilot._cron_fields(p_schedule);
    v_last_day boolean := v_fields[3] = '$';
    v_either_day boolean := NOT (starts_with(v_fields[3], '*') OR starts_with(v_fields[5], '*'));
    v_today date := (p_now AT TIME ZONE 'UTC')::date;
    v_times integer[];
    v_doms integer[];
    v_months integer[];
    v_dows integer[];
    v_within integer;
    v_day_gap integer;
    v_fire_days integer := CASE WHEN p_only_on_dow IS NULL THEN 13 ELSE 7 END;
    v_span integer;
    v_days date[];
BEGIN
    IF p_schedule ~* '^[ \t\n]*[0-9]+[[:space:]]*seconds?[[:space:]]*$' THEN
        RETURN make_interval(secs => substring(p_schedule FROM '[0-9]+')::integer);
    END IF;
    v_times := ARRAY(
        SELECT h * 60 + m
        FROM unnest(autopilot._cron_field_values(v_fields[2], 2)) AS h
        CROSS JOIN unnest(autopilot._cron_field_values(v_fields[1], 1)) AS m
        ORDER BY 1
    );
    v_doms := autopilot._cron_field_values(v_fields[3], 3);
    v_months := autopilot._cron_field_values(v_fields[4], 4);
    v_dows := autopilot._cron_field_values(v_fields[5], 5);
    SELECT max(t.next_time - t.time_of_day)
    INTO v_within
    FROM (
        SELECT u.time_of_day, lead(u.time_of_day) OVER (ORDER BY u.time_of_day) AS next_time
        FROM unnest(v_times) AS u (time_of_day)
    ) AS t;
    -- the first fire days within 400 days; a schedule with fewer there (@yearly) is looked at over 13 years
    FOREACH v_span IN ARRAY ARRAY[400, 4800] LOOP
        v_days := ARRAY(
            SELECT g.day::date
            FROM generate_series(v_today, v_today + v_span, interval '1 day') AS g (day)
            WHERE extract(MONTH FROM g.day)::integer = ANY(v_months)
              AND (p_only_on_dow IS NULL OR extract(DOW FROM g.day)::integer = p_only_on_dow)
              AND CASE
                  WHEN v_either_day
                      THEN extract(DAY FROM g.day)::integer = ANY(v_doms)
                      OR (v_last_day AND extract(DAY FROM g.day + interval '1 day') = 1)
                      OR extract(DOW FROM g.day)::integer = ANY(v_dows)
                  ELSE (extract(DAY FROM g.day)::integer = ANY(v_doms)
                        OR (v_last_day AND extract(DAY FROM g.day + interval '1 day') = 1))
                      AND extract(DOW FROM g.day)::integer = ANY(v_dows)
              END
            ORDER BY g.day
            LIMIT v_fire_days
        );
        EXIT WHEN cardinality(v_days) = v_fire_days;
    END LOOP;
    SELECT max(f.next_day - f.day)
    INTO v_day_gap
    FROM (
        SELECT u.day, lead(u.day) OVER (ORDER BY u.day) AS next_day
        FROM unnest(v_days) AS u (day)
    ) AS f;
    IF v_day_gap IS NULL OR cardinality(v_times) = 0 THEN
        RETURN interval '31 days';
    END IF;
    RETURN make_interval(mins => greatest(
        coalesce(v_within, 0),
        v_day_gap * 1440 - (v_times[cardinality(v_times)] - v_times[1])
    ));
END;
$$;

COMMENT ON FUNCTION autopilot._schedule_interval(text, integer, timestamptz) IS
'Private: the longest gap between consecutive fires of a valid schedule (UTC) over its coming fires, on the given weekday only when set; autopilot.health calls a job overdue past twice this (health.overdue_factor).';
