CREATE FUNCTION autopilot._skips_today(p_name text)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(
        d.only_on_dow <> extract(dow FROM now() AT TIME ZONE 'UTC'),
        false
    )
    FROM autopilot._catalog_job(p_name) AS d
$$;

COMMENT ON FUNCTION autopilot._skips_today(text) IS
'Private: true when a scheduled run of the job must not run today (UTC), because the catalog restricts it to another weekday.';
