CREATE FUNCTION autopilot.set_job_timeout(p_name text, p_timeout interval)
RETURNS interval
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
BEGIN
    IF p_timeout IS NULL THEN
        RAISE EXCEPTION 'p_timeout must be an interval'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'autopilot.reset_job() returns a job to its catalog defaults.';
    END IF;
    IF p_timeout <= interval '0' THEN
        RAISE EXCEPTION 'invalid timeout "%" for autopilot job %: it must be positive', p_timeout, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('Give an interval such as ''30 minutes''; the catalog default of %s is %s.',
                                p_name, v_job.default_timeout);
    END IF;
    IF v_job.kind NOT IN ('function', 'batched') THEN
        RAISE EXCEPTION 'autopilot job % has no timeout of its own: it is a % job', p_name, v_job.kind
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE v_job.kind
                      WHEN 'statement' THEN 'A statement job runs at top level in pg_cron; only function and batched jobs time out.'
                      ELSE 'A runner job runs under its worker''s timeout (autopilot settings).'
                  END;
    END IF;
    INSERT INTO autopilot.job_overrides AS o (job_name, timeout)
    VALUES (p_name, p_timeout)
    ON CONFLICT (job_name) DO UPDATE
        SET timeout = excluded.timeout, updated_at = now(), updated_by = current_user;
    RETURN p_timeout;
END;
$$;

COMMENT ON FUNCTION autopilot.set_job_timeout(text, interval) IS
'Overrides the timeout of a function or batched job''s runs (positive; invalid_parameter_value and no change otherwise): a run past it is cancelled and recorded timed_out. Kept across syncs, upgrades and restores; autopilot.reset_job() returns to the catalog default.';
