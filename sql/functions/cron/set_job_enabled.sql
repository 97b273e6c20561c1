CREATE FUNCTION autopilot.set_job_enabled(p_name text, p_enabled boolean)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM autopilot._catalog_job(p_name);
    IF p_enabled IS NULL THEN
        RAISE EXCEPTION 'p_enabled must be true or false'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'autopilot.reset_job() returns a job to its catalog defaults.';
    END IF;
    INSERT INTO autopilot.job_overrides AS o (job_name, enabled)
    VALUES (p_name, p_enabled)
    ON CONFLICT (job_name) DO UPDATE
        SET enabled = excluded.enabled, updated_at = now(), updated_by = current_user;
    PERFORM autopilot._sync_if_local();
    RETURN p_enabled;
END;
$$;

COMMENT ON FUNCTION autopilot.set_job_enabled(text, boolean) IS
'Enables or disables a job (a disabled job keeps its pg_cron entry, inactive). Kept across syncs, upgrades and restores.';
