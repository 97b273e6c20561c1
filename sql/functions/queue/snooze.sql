CREATE FUNCTION autopilot.snooze(p_id bigint, p_attempt integer, p_for interval)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- An executing job asks to run again later without using up an attempt: it
-- is scheduled p_for from now and max_attempts grows by one (as in Oban).
-- The attempt number itself never goes back down: a later claim is a new
-- attempt, so a complete() or fail() still holding this one can never match
-- it. The attempt is recorded in job_runs as skipped. False when the job no
-- longer executes that attempt.
DECLARE
    v_job autopilot.jobs;
BEGIN
    IF p_for IS NULL OR p_for < interval '0' THEN
        RAISE EXCEPTION 'snooze needs a delay of zero or more, not %', p_for USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE autopilot.jobs AS j
    SET state = 'scheduled',
        scheduled_at = now() + p_for,
        max_attempts = j.max_attempts + 1
    WHERE j.id = p_id AND j.attempt = p_attempt AND j.state = 'executing'
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM autopilot._record_runner_attempts(
        ARRAY[v_job], 'skipped',
        ARRAY[format('job %s (%s) snoozed until %s', v_job.id, v_job.worker, v_job.scheduled_at)]
    );
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.snooze(bigint, integer, interval) IS
'Reschedules an executing job p_for from now without using up an attempt (max_attempts + 1; recorded in job_runs as skipped); false when it no longer executes that attempt.';
