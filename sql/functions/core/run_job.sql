CREATE FUNCTION autopilot.run_job(p_name text)
RETURNS autopilot.job_runs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Runs a job now, in the caller's transaction, and returns its ledger row. A job
-- that fails is recorded as failed (with its SQLSTATE) and reported as a
-- WARNING; its partial work is rolled back. A second concurrent run skips.
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_run_id bigint;
    v_step autopilot.job_step;
    v_cursor jsonb;
    v_rows bigint := 0;
    v_batches integer := 0;
    v_state text;
    v_message text;
    v_detail text;
BEGIN
    IF v_job.kind = 'statement' OR v_job.unavailable_reason IS NOT NULL THEN
        -- raises the reason, before anything is recorded
        PERFORM autopilot._run_job_step(p_name, NULL);
    END IF;

    v_run_id := autopilot._run_start(p_name, false, false);
    IF v_run_id IS NULL THEN
        RETURN (SELECT r FROM autopilot.job_runs AS r
                WHERE r.job_name = p_name ORDER BY r.id DESC LIMIT 1);
    END IF;

    BEGIN
        LOOP
            v_step := autopilot._run_job_step(p_name, v_cursor);
            v_rows := v_rows + coalesce(v_step.rows_affected, 0);
            v_batches := v_batches + 1;
            v_cursor := v_step.cursor;
            EXIT WHEN v_step.done;
        END LOOP;
    EXCEPTION
        WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                    v_message = MESSAGE_TEXT,
                                    v_detail = PG_EXCEPTION_DETAIL;
    END;

    IF v_state IS NOT NULL THEN
        RAISE WARNING 'autopilot job % failed: %', p_name, v_message
            USING DETAIL = coalesce(v_detail, ''), HINT = format('The run is ledger run %s.', v_run_id);
        RETURN autopilot._run_finish(v_run_id, 'failed', NULL, v_message, v_state,
                                     jsonb_build_object('detail', v_detail));
    END IF;
    RETURN autopilot._run_finish(
        v_run_id, 'succeeded', v_rows,
        coalesce(v_step.message, format('%s rows in %s %s', v_rows, v_batches, CASE WHEN v_batches = 1 THEN 'batch' ELSE 'batches' END)),
        NULL,
        coalesce(v_step.details, '{}') || jsonb_build_object('batches', v_batches)
    );
END;
$$;

COMMENT ON FUNCTION autopilot.run_job(text) IS
'Runs a database-side job (or enqueues a runner-side one) now, in one transaction, and returns its run from autopilot.job_runs: status succeeded, failed (with the error and SQLSTATE; the job''s work rolled back) or skipped (another run in progress). Statement jobs (VACUUM) cannot run in a function: use "autopilot run NAME".';
