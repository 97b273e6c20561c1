CREATE FUNCTION autopilot.reindex_bloated_indexes()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- index-reindex, the pg_cron side. REINDEX INDEX CONCURRENTLY (and DROP INDEX
-- CONCURRENTLY) cannot run inside a function, a procedure or a multi-statement
-- pg_cron command, so this function never runs them: it plans a cycle
-- (autopilot.plan_index_maintenance), then hands pg_cron one statement at a
-- time by arming the statement job index-reindex-step to fire once, at the next
-- minute, and arming itself to run every minute while the cycle lasts. Each run
-- first settles the armed statement from pg_cron's own record of it
-- (cron.job_run_details), then arms the next; when nothing is left it disarms
-- both, and index-reindex is back on its weekly schedule. Only a run outside a
-- cycle plans a new one.
-- When pg_cron lives in another database it cannot arm anything: it plans, and
-- "autopilot run index-reindex" runs the planned statements at top level.
DECLARE
    c_step constant text := 'index-reindex-step';
    v_local boolean := to_regclass('cron.job_run_details') IS NOT NULL;
    v_item autopilot.index_maintenance;
    v_status text;
    v_return text;
    v_settled integer := 0;
    v_planned integer := 0;
    v_open integer;
    v_at timestamp;
BEGIN
    -- 1. settle the statement pg_cron was given, from pg_cron's record of its run
    SELECT * INTO v_item FROM autopilot.index_maintenance WHERE state = 'armed';
    IF FOUND AND v_local THEN
        SELECT d.status, d.return_message
        INTO v_status, v_return
        FROM cron.job_run_details AS d
        INNER JOIN cron.job AS j ON d.jobid = j.jobid
        WHERE j.jobname = autopilot._cron_jobname(c_step)
          AND j.database = current_database()
          AND d.command = v_item.statement
          AND d.start_time >= v_item.armed_at
        ORDER BY d.runid DESC
        LIMIT 1;
        IF v_status IN ('succeeded', 'failed') THEN
            PERFORM autopilot.finish_index_maintenance_item(
                v_item.id, v_status = 'succeeded', 'pg_cron: ' || coalesce(v_return, v_status)
            );
            v_settled := 1;
        ELSIF v_status IS NULL AND v_item.armed_at < now() - interval '10 minutes' THEN
            -- pg_cron never started it (stopped, or the step job was changed): run it again later
            UPDATE autopilot.index_maintenance SET state = 'pending', armed_at = NULL WHERE id = v_item.id;
        ELSE
            RETURN jsonb_build_object(
                'rows_affected', 0,
                'message', format('waiting for pg_cron to run: %s', v_item.statement)
            );
        END IF;
    END IF;

    -- 2. a new cycle, planned only by a scheduled run, never by the per-minute runs of a
    -- cycle: a statement that keeps failing waits for next week instead of looping
    IF NOT EXISTS (SELECT FROM autopilot.job_arming WHERE job_name = 'index-reindex') THEN
        v_planned := autopilot.plan_index_maintenance();
    END IF;
    SELECT count(*) INTO v_open FROM autopilot.index_maintenance WHERE state IN ('pending', 'armed');

    -- 3. hand pg_cron the next statement, or end the cycle
    SELECT * INTO v_item FROM autopilot.index_maintenance WHERE state = 'pending' ORDER BY id LIMIT 1;
    IF FOUND AND v_local AND (autopilot._catalog_job(c_step)).enabled THEN
        v_at := date_trunc('minute', now() AT TIME ZONE 'UTC') + interval '1 minute';
        INSERT INTO autopilot.job_arming AS a (job_name, schedule, command)
        VALUES (
            c_step,
            format('%s %s %s %s *', extract(minute FROM v_at), extract(hour FROM v_at),
                   extract(day FROM v_at), extract(month FROM v_at)),
            v_item.statement
        ),
        ('index-reindex', '* * * * *', NULL)
        ON CONFLICT (job_name) DO UPDATE
            SET schedule = excluded.schedule, command = excluded.command, armed_at = now();
        UPDATE autopilot.index_maintenance SET state = 'armed', armed_at = now() WHERE id = v_item.id;
        PERFORM autopilot._sync_if_local();
        RETURN jsonb_build_object(
            'rows_affected', v_settled,
            'planned', v_planned,
            'message', format('pg_cron runs next: %s (%s statements open)', v_item.statement, v_open)
        );
    END IF;

    DELETE FROM autopilot.job_arming WHERE job_name IN (c_step, 'index-reindex');
    IF FOUND THEN
        PERFORM autopilot._sync_if_local();
    END IF;
    RETURN jsonb_build_object(
        'rows_affected', v_settled,
        'planned', v_planned,
        'message', CASE
            WHEN v_open > 0 AND NOT v_local THEN format(
                '%s index statements are waiting: pg_cron runs in another database, so run "autopilot run index-reindex" to carry them out',
                v_open)
            WHEN v_open > 0 THEN format(
                '%s index statements are waiting: the index-reindex-step job is disabled', v_open)
            WHEN v_settled > 0 THEN 'index maintenance cycle finished'
            ELSE 'no index needs a rebuild'
        END
    );
END;
$$;

COMMENT ON FUNCTION autopilot.reindex_bloated_indexes() IS
'index-reindex under pg_cron: settles the statement it last handed to pg_cron, plans a cycle when none is open, and arms the statement job index-reindex-step with the next REINDEX INDEX CONCURRENTLY / DROP INDEX CONCURRENTLY (which cannot run inside a function). Needs pg_cron in this database to arm; otherwise "autopilot run index-reindex" runs the planned statements.';
