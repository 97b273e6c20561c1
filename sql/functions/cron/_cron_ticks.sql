CREATE FUNCTION autopilot._cron_ticks(p_schedule text, p_after timestamptz, p_until timestamptz)
RETURNS SETOF timestamptz
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The minutes at which pg_cron fires a schedule (in UTC), after p_after and up to
-- p_until, in order; at most two days are looked at (callers ask about minutes).
-- As in pg_cron, when day of month and day of week are both restricted (neither
-- starts with *), a day matches either; otherwise it must match both. A macro is
-- the five fields pg_cron gives it (@weekly: Sunday 00:00); "$" as the day of month
-- is its last day. A seconds schedule has no ticks: pg_cron (1.5+) starts it N
-- seconds after its previous start, whatever the clock, and never queues more than
-- one run behind, so there is nothing to catch up on. The schedule is valid
-- (cron_expression_error); @reboot never reaches the catalog.
DECLARE
    v_fields text[] := autopilot._cron_fields(p_schedule);
    v_last_day boolean := v_fields[3] = '$';
    v_either_day boolean := NOT (starts_with(v_fields[3], '*')
                                 OR starts_with(v_fields[5], '*'));
    v_from timestamp := date_trunc('minute', p_after AT TIME ZONE 'UTC') + interval '1 minute';
    v_to timestamp := least(p_until AT TIME ZONE 'UTC', v_from + interval '2 days');
    v_minutes integer[];
    v_hours integer[];
    v_doms integer[];
    v_months integer[];
    v_dows integer[];
BEGIN
    IF p_schedule ~* '^[ \t\n]*[0-9]+[[:space:]]*seconds?[[:space:]]*$' THEN
        RETURN;
    END IF;
    v_minutes := autopilot._cron_field_values(v_fields[1], 1);
    v_hours := autopilot._cron_field_values(v_fields[2], 2);
    v_doms := autopilot._cron_field_values(v_fields[3], 3);
    v_months := autopilot._cron_field_values(v_fields[4], 4);
    v_dows := autopilot._cron_field_values(v_fields[5], 5);
    RETURN QUERY
    SELECT d.m AT TIME ZONE 'UTC'
    FROM (
        SELECT
            g.m,
            extract(DAY FROM g.m)::integer = ANY(v_doms)
            OR (v_last_day AND extract(DAY FROM g.m + interval '1 day') = 1) AS dom_matches,
            extract(DOW FROM g.m)::integer = ANY(v_dows) AS dow_matches
        FROM generate_series(v_from, v_to, interval '1 minute') AS g (m)
        WHERE extract(MINUTE FROM g.m)::integer = ANY(v_minutes)
          AND extract(HOUR FROM g.m)::integer = ANY(v_hours)
          AND extract(MONTH FROM g.m)::integer = ANY(v_months)
    ) AS d
    WHERE CASE WHEN v_either_day THEN d.dom_matches OR d.dow_matches ELSE d.dom_matches AND d.dow_matches END
    ORDER BY d.m;
END;
$$;

COMMENT ON FUNCTION autopilot._cron_ticks(text, timestamptz, timestamptz) IS
'Private: the minutes (UTC) after p_after and up to p_until at which pg_cron fires the schedule (five fields or a macro), in order; none for a seconds schedule; looks at two days at most.';
