CREATE FUNCTION autopilot.cancel(p_id bigint, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Cancels an unfinished job (available, scheduled, retryable, waiting or executing).
-- A job executing is cancelled in the table at once; its runner learns it at
-- its next heartbeat (heartbeat() no longer returns the job) and its
-- complete() or fail() then change nothing. The interrupted attempt is
-- recorded in job_runs as cancelled. False when the job is finished already or
-- does not exist.
DECLARE
    v_job autopilot.jobs;
    v_was text;
BEGIN
    SELECT j.state INTO v_was FROM autopilot.jobs AS j WHERE j.id = p_id FOR UPDATE;
    UPDATE autopilot.jobs AS j
    SET state = 'cancelled',
        cancelled_at = now(),
        errors = CASE WHEN p_reason IS NULL THEN j.errors ELSE j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'error', 'cancelled: ' || p_reason
        )) END
    WHERE j.id = p_id AND j.state IN ('available', 'scheduled', 'retryable', 'waiting', 'executing')
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_was = 'executing' THEN
        PERFORM autopilot._record_runner_attempts(
            ARRAY[v_job], 'cancelled',
            ARRAY[format(
                'job %s (%s) cancelled while executing on %s%s', v_job.id, v_job.worker, v_job.attempted_by,
                coalesce(': ' || p_reason, '')
            )]
        );
    END IF;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.cancel(bigint, text) IS
'Cancels an unfinished job (an executing one too: its runner finds out at its next heartbeat); false when the job is already finished or unknown.';
