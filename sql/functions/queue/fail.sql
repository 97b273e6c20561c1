CREATE FUNCTION autopilot.fail(p_id bigint, p_attempt integer, p_error text, p_discard boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Records a failed attempt of an executing job: the error is appended to
-- jobs.errors ({"attempt", "at", "error"}) and the attempt to job_runs (side
-- runner, failed). The job is then retryable, due after an exponential
-- backoff with jitter -- jobs.backoff_base * 2^(attempt - 1), at most
-- jobs.backoff_max, times a random factor in [0.8, 1.0], so never longer than
-- jobs.backoff_max and still spread out at that cap -- or discarded when
-- it has used max_attempts, or when p_discard says retrying cannot help (a
-- worker this runner does not have). Returns the new state, or NULL when the
-- job is no longer executing that attempt (cancelled, or rescued and claimed
-- again) and nothing was changed.
DECLARE
    -- in seconds, as double precision: 2^(attempt - 1) of a long base overflows an interval
    v_base double precision := date_part('epoch', autopilot.get_setting('jobs.backoff_base')::interval);
    v_max double precision := date_part('epoch', autopilot.get_setting('jobs.backoff_max')::interval);
    v_job autopilot.jobs;
    v_error text := coalesce(nullif(p_error, ''), 'failed without a message');
BEGIN
    UPDATE autopilot.jobs AS j
    SET state = CASE WHEN p_discard OR j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END,
        discarded_at = CASE WHEN p_discard OR j.attempt >= j.max_attempts THEN now() END,
        scheduled_at = CASE
            WHEN p_discard OR j.attempt >= j.max_attempts THEN j.scheduled_at
            ELSE now() + make_interval(
                secs => least(v_base * power(2::double precision, least(j.attempt - 1, 60)), v_max)
                * (0.8 + random() * 0.2)
            )
        END,
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(), 'error', v_error, 'node', j.attempted_by
        ))
    WHERE j.id = p_id AND j.attempt = p_attempt AND j.state = 'executing'
    RETURNING j.* INTO v_job;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;

    PERFORM autopilot._record_runner_attempts(
        ARRAY[v_job], 'failed',
        ARRAY[format(
            'job %s (%s), attempt %s of %s: %s%s', v_job.id, v_job.worker, v_job.attempt, v_job.max_attempts,
            v_error,
            CASE WHEN v_job.state = 'discarded' THEN ' (discarded)'
                ELSE format(' (retrying at %s)', v_job.scheduled_at) END
        )]
    );
    RETURN v_job.state;
END;
$$;

COMMENT ON FUNCTION autopilot.fail(bigint, integer, text, boolean) IS
'Records a failed attempt (error kept in jobs.errors and job_runs); the job becomes retryable after exponential backoff with jitter (settings jobs.backoff_base, jobs.backoff_max), or discarded past max_attempts or when p_discard; returns the new state, NULL if the job no longer runs that attempt.';
