CREATE FUNCTION autopilot._cron_fields(p_schedule text)
RETURNS text[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pg_cron skips blanks and empty lines before a schedule and ignores white space after it;
    -- a macro is the five fields pg_cron gives it (@weekly: Sunday 00:00)
    SELECT regexp_split_to_array(
        CASE t.schedule
            WHEN '@yearly' THEN '0 0 1 1 *'
            WHEN '@annually' THEN '0 0 1 1 *'
            WHEN '@monthly' THEN '0 0 1 * *'
            WHEN '@weekly' THEN '0 0 * * 0'
            WHEN '@daily' THEN '0 0 * * *'
            WHEN '@midnight' THEN '0 0 * * *'
            WHEN '@hourly' THEN '0 * * * *'
            ELSE t.schedule
        END,
        '[ \t]+'
    )
    FROM (SELECT regexp_replace(regexp_replace(p_schedule, '^[ \t\n]+', ''), '[[:space:]]+$', '') AS schedule) AS t
$$;

COMMENT ON FUNCTION autopilot._cron_fields(text) IS
'Private: the five fields of a valid five-field schedule or macro as pg_cron reads them (white space around it dropped, a macro expanded: @weekly is 0 0 * * 0); what _cron_ticks and _schedule_interval compute from.';
