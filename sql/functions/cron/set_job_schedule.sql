CREATE FUNCTION autopilot.set_job_schedule(p_name text, p_schedule text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM autopilot._catalog_job(p_name);
    PERFORM autopilot._assert_valid_cron(p_schedule);
    INSERT INTO autopilot.job_overrides AS o (job_name, schedule)
    VALUES (p_name, btrim(p_schedule))
    ON CONFLICT (job_name) DO UPDATE
        SET schedule = excluded.schedule, updated_at = now(), updated_by = current_user;
    PERFORM autopilot._sync_if_local();
    RETURN btrim(p_schedule);
END;
$$;

COMMENT ON FUNCTION autopilot.set_job_schedule(text, text) IS
'Overrides a job''s schedule (validated first: invalid_parameter_value and no change when the cron expression is wrong). Kept across syncs, upgrades and restores; applied to pg_cron at once when it is in this database.';
