CREATE FUNCTION autopilot._run_start(p_name text, p_manual boolean, p_session_lock boolean)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Takes the job's lock and opens a run in the ledger; returns its id. When another
-- run holds the lock, records a skipped run and returns NULL: pg_cron would
-- otherwise queue overlapping runs without limit.
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

    -- holding the lock, any run of this job still marked running was cut short
    UPDATE autopilot.job_runs
    SET status = 'abandoned',
        finished_at = greatest(started_at, clock_timestamp()),
        message = 'the session running it ended before the run finished'
    WHERE job_name = p_name AND status = 'running';

    INSERT INTO autopilot.job_runs AS r (job_name, side, trigger)
    VALUES (p_name, v_job.side, v_trigger)
    RETURNING r.id INTO v_run_id;
    RETURN v_run_id;
END;
$$;

COMMENT ON FUNCTION autopilot._run_start(text, boolean, boolean) IS
'Private: takes a job''s advisory lock (session or transaction level) and opens a ledger run; records a skipped run and returns NULL when another run holds the lock.';
