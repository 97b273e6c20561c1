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
-- starts with *), a day matches either; otherwise it must match both.
DECLARE
    v_fields text[] := regexp_split_to_array(btrim(p_schedule), '\s+');
    v_minutes integer[] := autopilot._cron_field_values(v_fields[1], 1);
    v_hours integer[] := autopilot._cron_field_values(v_fields[2], 2);
    v_doms integer[] := autopilot._cron_field_values(v_fields[3], 3);
    v_months integer[] := autopilot._cron_field_values(v_fields[4], 4);
    v_dows integer[] := autopilot._cron_field_values(v_fields[5], 5);
    v_either_day boolean := NOT (starts_with(v_fields[3], '*')
                                 OR starts_with(v_fields[5], '*'));
    v_from timestamp := date_trunc('minute', p_after AT TIME ZONE 'UTC') + interval '1 minute';
    v_to timestamp := least(p_until AT TIME ZONE 'UTC', v_from + interval '2 days');
BEGIN
    RETURN QUERY
    SELECT g.m AT TIME ZONE 'UTC'
    FROM generate_series(v_from, v_to, interval '1 minute') AS g (m)
    WHERE extract(MINUTE FROM g.m)::integer = ANY(v_minutes)
      AND extract(HOUR FROM g.m)::integer = ANY(v_hours)
      AND extract(MONTH FROM g.m)::integer = ANY(v_months)
      AND CASE
          WHEN v_either_day THEN extract(DAY FROM g.m)::integer = ANY(v_doms)
                                 OR extract(DOW FROM g.m)::integer = ANY(v_dows)
          ELSE extract(DAY FROM g.m)::integer = ANY(v_doms)
               AND extract(DOW FROM g.m)::integer = ANY(v_dows)
      END
    ORDER BY g.m;
END;
$$;

COMMENT ON FUNCTION autopilot._cron_ticks(text, timestamptz, timestamptz) IS
'Private: the minutes (UTC) after p_after and up to p_until at which pg_cron fires the cron expression, in order; looks at two days at most.';
