CREATE FUNCTION autopilot._catalog_job(p_name text)
RETURNS autopilot.job_definitions
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions;
BEGIN
    SELECT * INTO v_job FROM autopilot.job_definitions WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown autopilot job "%"', p_name
            USING ERRCODE = 'undefined_object',
                  HINT = 'SELECT name FROM autopilot.job_catalog lists the jobs.';
    END IF;
    RETURN v_job;
END;
$$;

COMMENT ON FUNCTION autopilot._catalog_job(text) IS
'Private: the job''s effective definition; an unknown name raises undefined_object.';
