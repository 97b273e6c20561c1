CREATE FUNCTION autopilot._enqueue_catalog_job(p_name text)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- A runner-side catalog entry only enqueues. The unique key dedupes against the
-- unfinished job of the same entry, so a runner that was down for a day finds
-- one pending backup, not twenty-four. A database-side entry with a
-- cron_elsewhere_worker (pg_cron in another database) enqueues that worker.
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_key text := 'catalog:' || p_name;
    v_worker text := v_job.target;
    v_queue text := v_job.queue;
    v_args jsonb := v_job.args;
    v_id bigint;
BEGIN
    IF v_job.side = 'database' THEN
        SELECT c.cron_elsewhere_worker INTO v_worker FROM autopilot.job_catalog AS c WHERE c.name = p_name;
        IF v_worker IS NULL THEN
            RAISE EXCEPTION 'autopilot job % runs in the database, not on the runner', p_name
                USING ERRCODE = 'feature_not_supported',
                      HINT = format('Run it with "autopilot run %s" or CALL autopilot.run_scheduled_job(%L).', p_name, p_name);
        END IF;
        v_queue := 'default';
        v_args := '{}';
    END IF;
    INSERT INTO autopilot.jobs AS j (queue, worker, args, unique_key, meta)
    VALUES (v_queue, v_worker, v_args, v_key, jsonb_build_object('catalog', p_name))
    ON CONFLICT (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting')
    DO NOTHING
    RETURNING j.id INTO v_id;

    IF v_id IS NOT NULL THEN
        PERFORM pg_notify('autopilot_jobs', v_queue);  -- an idle runner starts it at commit
        RETURN ROW(true, NULL, 1, format('enqueued job %s (%s)', v_id, v_worker),
                   jsonb_build_object('job_id', v_id))::autopilot.job_step;
    END IF;
    SELECT j.id INTO v_id
    FROM autopilot.jobs AS j
    WHERE j.unique_key = v_key
      AND j.state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
    RETURN ROW(true, NULL, 0, format('job %s (%s) is still pending: not enqueued again', v_id, v_worker),
               jsonb_build_object('job_id', v_id, 'deduplicated', true))::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._enqueue_catalog_job(text) IS
'Private: enqueues the runner job of a runner-side catalog entry (or the cron_elsewhere_worker of a database-side one) into autopilot.jobs, unless one is still unfinished.';
