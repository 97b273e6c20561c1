CREATE FUNCTION autopilot.cancel(p_id bigint, p_reason text DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Cancels an unfinished job (available, scheduled, retryable or executing).
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
    WHERE j.id = p_id AND j.state IN ('available', 'scheduled', 'retryable', 'executing')
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_was = 'executing' THEN
        INSERT INTO autopilot.job_runs (
            job_name, side, trigger, status, started_at, finished_at, message, details, backend_pid
        )
        VALUES (
            coalesce(v_job.meta ->> 'catalog', v_job.worker), 'runner', 'runner', 'cancelled', v_job.attempted_at,
            greatest(clock_timestamp(), v_job.attempted_at),
            format('job %s (%s) cancelled while executing on %s%s', v_job.id, v_job.worker, v_job.attempted_by,
                   coalesce(': ' || p_reason, '')),
            jsonb_build_object(
                'job_id', v_job.id, 'worker', v_job.worker, 'queue', v_job.queue, 'attempt', v_job.attempt,
                'node', v_job.attempted_by, 'state', 'cancelled'
            ),
            NULL
        );
    END IF;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION autopilot.cancel(bigint, text) IS
'Cancels an unfinished job (an executing one too: its runner finds out at its next heartbeat); false when the job is already finished or unknown.';
