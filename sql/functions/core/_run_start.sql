CREATE FUNCTION autopilot._run_start(p_name text, p_manual boolean, p_session_lock boolean)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Takes the job's lock and opens a run in the ledger; returns its id. Records a
-- skipped run and returns NULL when another run holds the lock, or when pg_cron
-- started this run more than one interval after the tick it was fired for (it
-- queued the run while an earlier one overran): no pile-up of catch-up runs.
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
    v_key bigint := autopilot._job_lock_key(p_name);
    v_trigger text := CASE
        WHEN p_manual THEN 'manual'
        WHEN current_setting('application_name') = 'pg_cron' THEN 'pg_cron'
        ELSE 'manual'
    END;
    v_locked boolean;
    v_run_id bigint;
    v_tick timestamptz;
    v_later_tick timestamptz;
BEGIN
    IF p_session_lock THEN
        v_locked := pg_try_advisory_lock(v_key);
    ELSE
        v_locked := pg_try_advisory_xact_lock(v_key);
    END IF;

    IF NOT v_locked THEN
        INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, status, finished_at, message)
        VALUES (p_name, v_job.side, v_trigger, 'skipped', clock_timestamp(),
                format('skipped: another run of %s is still in progress', p_name))
        RETURNING r.id INTO v_run_id;
        RAISE NOTICE 'autopilot job % skipped: another run is still in progress (ledger run %)', p_name, v_run_id;
        RETURN NULL;
    END IF;

    IF v_trigger = 'pg_cron' THEN
        -- pg_cron 1.4 queues the ticks that pass while a run overruns and starts them back to
        -- back afterwards, so the lock never sees them overlap. A queued run is fired for the
        -- first tick after the previous run's, if that tick came before the previous run ended
        -- (an abandoned run's end is not known: it does not count).
        SELECT t.tick INTO v_tick
        FROM (
            SELECT r.scheduled_for, r.finished_at
            FROM autopilot.job_runs AS r
            WHERE r.job_name = p_name AND r.trigger = 'pg_cron' AND r.scheduled_for IS NOT NULL
              AND r.status IN ('succeeded', 'failed', 'skipped')
            ORDER BY r.started_at DESC
            LIMIT 1
        ) AS prev
        CROSS JOIN LATERAL autopilot._cron_ticks(v_job.schedule, prev.scheduled_for,
                                                 least(prev.finished_at, now())) AS t (tick)
        ORDER BY t.tick
        LIMIT 1;
        IF v_tick IS NULL THEN
            -- fired on time: its tick is the minute it started in
            v_tick := date_trunc('minute', now());
        ELSE
            -- more than one interval late (a later tick has passed too): it does nothing
            SELECT t.tick INTO v_later_tick
            FROM autopilot._cron_ticks(v_job.schedule, v_tick, now()) AS t (tick)
            LIMIT 1;
        END IF;
        IF v_later_tick IS NOT NULL THEN
            INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, status, finished_at, scheduled_for, message)
            VALUES (p_name, v_job.side, v_trigger, 'skipped', clock_timestamp(), v_tick,
                    format('skipped: caught up after an overrun (fired for the %s UTC tick, started %s later, after the %s tick had passed)',
                           to_char(v_tick AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                           date_trunc('second', now() - v_tick),
                           to_char(v_later_tick AT TIME ZONE 'UTC', 'HH24:MI')))
            RETURNING r.id INTO v_run_id;
            RAISE NOTICE 'autopilot job % skipped: it was fired for the % tick, more than one interval ago (ledger run %)',
                p_name, v_tick, v_run_id;
            IF p_session_lock THEN
                PERFORM pg_advisory_unlock(v_key);
            END IF;
            RETURN NULL;
        END IF;
    END IF;

    -- holding the lock, any run of this job still marked running was cut short
    UPDATE autopilot.job_runs
    SET status = 'abandoned',
        finished_at = greatest(started_at, clock_timestamp()),
        message = 'the session running it ended before the run finished'
    WHERE job_name = p_name AND status = 'running';

    INSERT INTO autopilot.job_runs AS r (job_name, side, trigger, scheduled_for)
    VALUES (p_name, v_job.side, v_trigger, v_tick)
    RETURNING r.id INTO v_run_id;
    RETURN v_run_id;
END;
$$;

COMMENT ON FUNCTION autopilot._run_start(text, boolean, boolean) IS
'Private: takes a job''s advisory lock (session or transaction level) and opens a ledger run; records a skipped run and returns NULL when another run holds the lock, or when a pg_cron run starts more than one interval after the tick it was fired for (caught up after an overrun).';
