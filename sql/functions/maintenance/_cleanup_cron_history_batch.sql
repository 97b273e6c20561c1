CREATE FUNCTION autopilot._cleanup_cron_history_batch(p_cursor jsonb, p_limit integer)
RETURNS autopilot.job_step
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- cron-history-cleanup, one batch. pg_cron never prunes cron.job_run_details,
-- and the table has only its primary key: walk it in runid order (runs start
-- in runid order) and stop at the first run younger than cron_history.retention.
DECLARE
    v_after bigint := coalesce((p_cursor ->> 'after')::bigint, 0);
    v_cutoff timestamptz := now() - autopilot.get_setting('cron_history.retention')::interval;
    v_ids bigint[];
    v_deleted bigint;
BEGIN
    -- the first batch first records the statement jobs' runs in the ledger (pg_cron ran them itself)
    IF NOT p_cursor ? 'after' THEN
        PERFORM autopilot._record_cron_runs(coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'runid', d.runid, 'jobname', j.jobname, 'job_pid', d.job_pid, 'status', d.status,
                'return_message', d.return_message, 'start_time', d.start_time, 'end_time', d.end_time
            ))
            FROM cron.job_run_details AS d
            INNER JOIN cron.job AS j ON d.jobid = j.jobid
            WHERE j.database = current_database()
              AND j.jobname = ANY(ARRAY(
                  SELECT s.cron_jobname FROM autopilot.job_definitions AS s WHERE s.kind = 'statement'
              ))
              AND d.status IN ('succeeded', 'failed')
        ), '[]'));
    END IF;
    v_ids := ARRAY(
        SELECT d.runid FROM cron.job_run_details AS d
        WHERE d.runid > v_after
        ORDER BY d.runid
        LIMIT p_limit
    );
    DELETE FROM cron.job_run_details AS d
    WHERE d.runid = ANY(v_ids)
      AND d.status IN ('succeeded', 'failed')
      AND coalesce(d.end_time, d.start_time) < v_cutoff;
    GET DIAGNOSTICS v_deleted = ROW_COUNT;
    RETURN ROW(
        -- the first run started after the cutoff ends the walk (a run still
        -- going, or one that ended recently, is kept but does not stop it)
        cardinality(v_ids) < p_limit
        OR EXISTS (SELECT FROM cron.job_run_details AS d
                   WHERE d.runid = ANY(v_ids) AND d.start_time >= v_cutoff),
        jsonb_build_object('after', v_ids[cardinality(v_ids)]),
        v_deleted, NULL, NULL
    )::autopilot.job_step;
END;
$$;

COMMENT ON FUNCTION autopilot._cleanup_cron_history_batch(jsonb, integer) IS
'cron-history-cleanup, one batch: deletes cron.job_run_details rows older than cron_history.retention (all of pg_cron''s history that this role may delete), in runid order; the first batch first records the statement jobs'' runs in the ledger (autopilot._record_cron_runs).';
