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
-- A transient failure of a step (serialization failure, deadlock, lock not
-- available) is retried within the run, after a backoff that doubles, up to the
-- job's max_attempts: each attempt is a ledger row of its own (attempt 1, 2,
-- ...); a batched job goes on from its last committed batch. The timeout covers
-- the whole run, every attempt and backoff included.
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
    v_job autopilot.job_definitions;
    v_timeout pg_catalog.interval;
    v_timed_out boolean := false;
    v_attempt integer := 1;
    v_max_attempts integer;
    v_wait pg_catalog.interval;
BEGIN
    -- fails at once inside a transaction block, before any lock is taken
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    PERFORM autopilot._cancel_timed_out_runs();
    -- its marks on the cancelled runs' rows, which they wait for to record themselves
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF NOT p_manual AND autopilot._skips_today(p_name) THEN
        RETURN;
    END IF;
    IF (autopilot._catalog_job(p_name)).kind = 'statement' THEN
        PERFORM autopilot._run_job_step(p_name, NULL);
    END IF;

    v_run_id := autopilot._run_start(p_name, p_manual, true);
    v_job := autopilot._catalog_job(p_name);
    v_timeout := v_job.timeout;
    v_max_attempts := CASE WHEN v_job.kind IN ('function', 'batched') THEN v_job.max_attempts ELSE 1 END;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    IF v_run_id IS NULL THEN
        RETURN;
    END IF;

    <<attempts>>
    LOOP
    LOOP
        BEGIN
            IF v_wait IS NOT NULL THEN
                -- the backoff before a retry: a cancel (timeout) while it lasts is caught below
                PERFORM pg_catalog.pg_sleep(pg_catalog.date_part('epoch', v_wait));
                v_wait := NULL;
            END IF;
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
    EXIT attempts WHEN v_state IS NULL OR v_timed_out OR v_state NOT IN ('40001', '40P01', '55P03')
        OR v_attempt >= v_max_attempts;
    -- a transient failure: this attempt is recorded failed, the next one starts after the backoff
    v_wait := v_job.retry_backoff * power(2, v_attempt - 1);
    IF clock_timestamp() + v_wait >= v_called_at + v_timeout THEN
        v_message := format('%s (attempt %s of %s, not retried: the next attempt would start past the timeout of %s)',
                            v_message, v_attempt, v_max_attempts, v_timeout);
        EXIT attempts;
    END IF;
    PERFORM autopilot._run_finish(
        v_run_id, 'failed', v_rows,
        format('%s (attempt %s of %s, retried after %s)', v_message, v_attempt, v_max_attempts, v_wait),
        v_state,
        jsonb_build_object('detail', v_detail, 'batches_committed', v_batches, 'retry_after', v_wait::text)
    );
    v_attempt := v_attempt + 1;
    -- the run's start: the timeout of every attempt counts from it (autopilot._cancel_timed_out_runs)
    INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, scheduled_for, attempt, details)
    SELECT p.job_name, p.side, p.trigger, p.scheduled_for, v_attempt,
           jsonb_build_object('run_started_at', v_called_at)
    FROM autopilot.job_runs AS p
    WHERE p.id = v_run_id
    RETURNING r.id INTO v_run_id;
    COMMIT;
    PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    v_state := NULL;
    v_message := NULL;
    v_detail := NULL;
    v_hint := NULL;
    v_rows := 0;
    v_batches := 0;
    END LOOP attempts;

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
