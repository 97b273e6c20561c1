CREATE FUNCTION autopilot.reset_job(p_name text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
BEGIN
    DELETE FROM autopilot.job_overrides WHERE job_name = p_name;
    PERFORM autopilot._sync_if_local();
    RETURN (autopilot._catalog_job(v_job.name)).schedule;
END;
$$;

COMMENT ON FUNCTION autopilot.reset_job(text) IS
'Drops a job''s overrides, returning it to the catalog''s schedule, enabled state and timeout; returns that schedule.';
