-- A procedure, so that a batched job commits between batches: no batch holds
-- its locks long. A procedure that commits cannot carry SET search_path
-- (PostgreSQL forbids transaction control there), yet pg_cron runs it as a
-- privileged role in a session whose search_path the database's owner can set
-- (ALTER DATABASE ... SET search_path = public, ...). So its types are
-- schema-qualified (they are resolved when the body is compiled, before any
-- statement runs), and every transaction it starts pins the search path first,
-- for that transaction only (set_config(..., true)): no function, operator or
-- type in the body is ever looked up in a schema another role can write, and
-- the caller's session keeps its own setting.
-- A run past its job's timeout stops: between batches by itself, in a step when
-- it is cancelled (the next scheduled run of any job cancels it, see
-- autopilot._cancel_timed_out_runs; "autopilot run" sets statement_timeout for
-- the CALL). It is recorded timed_out and re-raised as query_canceled.
CREATE PROCEDURE autopilot.run_scheduled_job(p_name text, p_manual boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    v_run_id bigint;
    v_step autopilot.job_step;
    v_cursor pg_catalog.jsonb;
    v_rows bigint := 0;
    v_batches integer := 0;
    v_state pg_catalog.text;
    v_message pg_catalog.text;
    v_detail pg_catalog.text;
    v_hint pg_catalog.text;
    -- a statement_timeout of the caller's session fires this long after the CALL started
    v_called_at pg_catalog.timestamptz := pg_catalog.statement_timestamp();
    v_timeout pg_catalog.interval;
    v_timed_out boolean := false;
BEGIN
    -- fails at once inside a transaction block, before any lock is taken
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM autopilot._cancel_timed_out_runs();
    IF NOT p_manual AND autopilot._skips_today(p_name) THEN
        RETURN;
    END IF;
    IF (autopilot._catalog_job(p_name)).kind = 'statement' THEN
        PERFORM autopilot._run_job_step(p_name, NULL);
    END IF;

    v_run_id := autopilot._run_start(p_name, p_manual, true);
    v_timeout := (autopilot._catalog_job(p_name)).timeout;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF v_run_id IS NULL THEN
        RETURN;
    END IF;

    LOOP
        BEGIN
            v_step := autopilot._run_job_step(p_name, v_cursor);
        EXCEPTION
            -- a cancel is no error OTHERS catches: it is a timeout when it came past the deadline
            WHEN query_canceled OR OTHERS THEN
                GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE,
                                        v_message = MESSAGE_TEXT,
                                        v_detail = PG_EXCEPTION_DETAIL,
                                        v_hint = PG_EXCEPTION_HINT;
                v_timed_out := v_state = '57014' AND clock_timestamp() >= v_called_at + v_timeout;
        END;
        EXIT WHEN v_state IS NOT NULL;
        v_rows := v_rows + coalesce(v_step.rows_affected, 0);
        v_batches := v_batches + 1;
        v_cursor := v_step.cursor;
        COMMIT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
        EXIT WHEN v_step.done;
        IF clock_timestamp() >= v_called_at + v_timeout THEN
            -- past the timeout between two batches: the committed ones stay
            v_state := '57014';
            v_timed_out := true;
            EXIT;
        END IF;
    END LOOP;

    IF v_timed_out THEN
        v_message := format('timed out after %s (timeout %s); %s %s committed',
                            date_trunc('second', clock_timestamp() - v_called_at), v_timeout, v_batches,
                            CASE WHEN v_batches = 1 THEN 'batch' ELSE 'batches' END);
        v_detail := NULL;
        v_hint := format('autopilot.set_job_timeout(%L, ...) gives the job more time.', p_name);
        PERFORM autopilot._run_finish(v_run_id, 'timed_out', v_rows, v_message, v_state,
                                      jsonb_build_object('timeout', v_timeout::text, 'batches_committed', v_batches));
    ELSIF v_state IS NOT NULL THEN
        PERFORM autopilot._run_finish(v_run_id, 'failed', v_rows, v_message, v_state,
                                      jsonb_build_object('detail', v_detail, 'batches_committed', v_batches));
    ELSE
        PERFORM autopilot._run_finish(
            v_run_id, 'succeeded', v_rows,
            coalesce(v_step.message, format('%s rows in %s %s', v_rows, v_batches, CASE WHEN v_batches = 1 THEN 'batch' ELSE 'batches' END)),
            NULL,
            coalesce(v_step.details, '{}') || jsonb_build_object('batches', v_batches)
        );
    END IF;
    PERFORM pg_advisory_unlock(autopilot._job_lock_key(p_name));
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);

    IF v_state IS NOT NULL THEN
        -- the run is in the ledger; re-raise the job's own error so pg_cron records it too
        RAISE EXCEPTION USING ERRCODE = v_state,
                              MESSAGE = CASE WHEN v_timed_out THEN format('autopilot job %s %s', p_name, v_message) ELSE v_message END,
                              DETAIL = coalesce(v_detail, ''), HINT = coalesce(v_hint, '');
    END IF;
END;
$$;

-- (LT01 is silenced on the next line: sqlfluff's postgres dialect reads the argument list in
-- COMMENT ON PROCEDURE as a separate bracket and wants a space before it.)
COMMENT ON PROCEDURE autopilot.run_scheduled_job(text, boolean) IS -- noqa: LT01
'The command pg_cron runs for every database-side and runner-side catalog job (CALL autopilot.run_scheduled_job(''name'')): ledger run committed first, a COMMIT after every batch, a failure recorded and then re-raised so that cron.job_run_details shows it too; a run past its job''s timeout (autopilot.set_job_timeout) stops and is recorded timed_out. Must be CALLed outside a transaction block. p_manual => true (the CLI) ignores a weekday restriction.';
