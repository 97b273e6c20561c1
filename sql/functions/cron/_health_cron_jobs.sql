CREATE FUNCTION autopilot._health_cron_jobs()
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- pg_cron's side of autopilot.health, read as the extension's owner: pg_cron's row security
-- shows a role its own jobs only, and its settings are superuser-only, so the read-only role
-- sees autopilot's pg_cron jobs through this function and nothing else of pg_cron. NULL when
-- pg_cron is not loaded, or not created in its database; {"database": D} when it lives in
-- another database D (the CLI reads it there and passes the jobs to autopilot._health);
-- {"database": D, "jobs": [...]} with this database's autopilot:* jobs and their last run and
-- last success from cron.job_run_details when it lives here.
DECLARE
    v_database text := pg_catalog.current_setting('cron.database_name', true);
    v_jobs jsonb;
BEGIN
    IF v_database IS NULL THEN
        RETURN NULL;
    END IF;
    IF v_database <> pg_catalog.current_database() THEN
        RETURN pg_catalog.jsonb_build_object('database', v_database);
    END IF;
    IF pg_catalog.to_regclass('cron.job') IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
        'jobid', j.jobid, 'jobname', j.jobname, 'schedule', j.schedule, 'command', j.command,
        'active', j.active, 'last_status', last.status, 'last_start', last.start_time,
        'last_end', last.end_time, 'last_message', last.return_message, 'last_success', last_ok.end_time
    )), '[]'::jsonb)
    INTO v_jobs
    FROM cron.job AS j
    LEFT JOIN LATERAL (
        SELECT d.status, d.start_time, d.end_time, d.return_message
        FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid
        ORDER BY d.runid DESC
        LIMIT 1
    ) AS last ON true
    LEFT JOIN LATERAL (
        SELECT d.end_time
        FROM cron.job_run_details AS d
        WHERE d.jobid = j.jobid AND d.status = 'succeeded'
        ORDER BY d.runid DESC
        LIMIT 1
    ) AS last_ok ON true
    WHERE pg_catalog.starts_with(j.jobname, 'autopilot:')
      AND j.database = pg_catalog.current_database();
    RETURN pg_catalog.jsonb_build_object('database', v_database, 'jobs', v_jobs);
END;
$$;

COMMENT ON FUNCTION autopilot._health_cron_jobs() IS
'Private, SECURITY DEFINER: pg_cron''s view of this database''s autopilot:* jobs for autopilot.health (NULL: pg_cron not loaded or not created; {"database"}: pg_cron lives elsewhere; {"database", "jobs"}: the jobs with their last run and last success). The one function that reads pg_cron as the owner, so that the read-only role sees autopilot''s jobs without more grants.';
