CREATE FUNCTION autopilot.retry(p_id bigint)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Makes a job that is not executing available now: a discarded, cancelled or
-- completed job runs again (given one more attempt when it had used them
-- all), a retryable or scheduled one runs at once. Its errors are kept. A job
-- whose dependencies (depends_on) have not all completed is waiting again
-- instead, until they have. False
-- when the job is executing, already available, or unknown. A job whose unique key has meanwhile
-- been taken by another unfinished job cannot run again beside it:
-- unique_violation, naming that job.
DECLARE
    v_holder bigint;
BEGIN
    UPDATE autopilot.jobs AS j
    SET state = CASE WHEN autopilot._dependencies_met(j.depends_on) THEN 'available' ELSE 'waiting' END,
        scheduled_at = now(),
        max_attempts = greatest(j.max_attempts, j.attempt + 1),
        completed_at = NULL,
        cancelled_at = NULL,
        discarded_at = NULL
    WHERE j.id = p_id AND j.state IN ('scheduled', 'retryable', 'discarded', 'cancelled', 'completed');
    RETURN FOUND;
EXCEPTION
    WHEN unique_violation THEN
        SELECT h.id INTO v_holder
        FROM autopilot.jobs AS h
        WHERE h.unique_key = (SELECT j.unique_key FROM autopilot.jobs AS j WHERE j.id = p_id)
          AND h.state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting');
        RAISE EXCEPTION 'job % cannot run again: %', p_id,
            CASE
                WHEN v_holder IS NULL THEN 'another job held its unique key a moment ago'
                ELSE format('job %s holds its unique key and is unfinished', v_holder)
            END
        USING ERRCODE = 'unique_violation', HINT = 'Wait for that job to finish, or cancel it; then retry.';
END;
$$;

COMMENT ON FUNCTION autopilot.retry(bigint) IS
'Makes a job that is not executing (scheduled, retryable, discarded, cancelled, completed) available now, with one more attempt if it had used them all; false when executing, already available, or unknown.';
