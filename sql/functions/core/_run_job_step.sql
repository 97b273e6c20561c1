CREATE FUNCTION autopilot._run_job_step(p_name text, p_cursor jsonb)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_summary jsonb;
    v_step autopilot.job_step;
BEGIN
    IF v_job.unavailable_reason IS NOT NULL THEN
        RAISE EXCEPTION 'autopilot job % cannot run here: %', p_name, v_job.unavailable_reason
            USING ERRCODE = 'feature_not_supported';
    END IF;
    -- pg_cron's tables are in another database, out of reach of SQL run here: a job that has a
    -- runner worker for that case (job_catalog.cron_elsewhere_worker) is enqueued for the runner
    IF v_job.kind IN ('function', 'batched')
       AND EXISTS (
           SELECT FROM autopilot.job_catalog AS c
           WHERE c.name = p_name AND c.cron_elsewhere_worker IS NOT NULL
       )
       AND NOT EXISTS (
           SELECT FROM pg_catalog.pg_class AS c
           INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
           WHERE n.nspname = 'cron' AND c.relname = 'job_run_details'
       ) THEN
        RETURN autopilot._enqueue_catalog_job(p_name);
    END IF;
    CASE v_job.kind
        WHEN 'function' THEN
            EXECUTE format('SELECT %s()', v_job.target::regproc) INTO v_summary;
            v_step := ROW(
                true, NULL,
                (v_summary ->> 'rows_affected')::bigint,
                v_summary ->> 'message',
                coalesce(v_summary, '{}')
            )::autopilot.job_step;
        WHEN 'batched' THEN
            -- through jsonb: a dynamic query's row type is unknown until it runs,
            -- so a scalar result keeps the step checkable (plpgsql_check)
            EXECUTE format('SELECT to_jsonb(%s($1, $2))', v_job.target::regproc)
            INTO v_summary
            USING coalesce(p_cursor, '{}'), autopilot.get_setting('cleanup.batch_size')::integer;
            v_step := jsonb_populate_record(NULL::autopilot.job_step, v_summary);
        WHEN 'enqueue' THEN
            v_step := autopilot._enqueue_catalog_job(p_name);
        ELSE
            RAISE EXCEPTION 'autopilot job % runs a statement that cannot run inside a function or a transaction block', p_name
                USING ERRCODE = 'feature_not_supported',
                      DETAIL = format('Its statement is: %s', v_job.target),
                      HINT = format('Run "autopilot run %s", or run the statement itself outside a transaction.', p_name);
    END CASE;
    RETURN v_step;
END;
$$;

COMMENT ON FUNCTION autopilot._run_job_step(text, jsonb) IS
'Private: runs one step of a job: the whole of a function job, one batch of a batched job (from the cursor), or the enqueue of a runner job (and of a job''s cron_elsewhere_worker where pg_cron lives in another database).';
