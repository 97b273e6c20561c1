CREATE FUNCTION autopilot.set_job_retries(
    p_name text,
    p_max_attempts integer,
    p_backoff interval DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job autopilot.job_definitions := autopilot._catalog_job(p_name);
BEGIN
    IF p_max_attempts IS NULL THEN
        RAISE EXCEPTION 'p_max_attempts must be a number of attempts'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'autopilot.reset_job() returns a job to its catalog defaults.';
    END IF;
    IF p_max_attempts NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'invalid max attempts % for autopilot job %: it must be between 1 and 100', p_max_attempts, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '1 means no retry; the catalog default is ' || v_job.max_attempts || '.';
    END IF;
    IF p_backoff < interval '0' THEN
        RAISE EXCEPTION 'invalid backoff "%" for autopilot job %: it must not be negative', p_backoff, p_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Give an interval such as ''5 seconds'' (it doubles for every later attempt), or NULL to keep the current one.';
    END IF;
    IF v_job.kind NOT IN ('function', 'batched') THEN
        RAISE EXCEPTION 'autopilot job % has no retry policy of its own: it is a % job', p_name, v_job.kind
            USING ERRCODE = 'feature_not_supported',
                  HINT = CASE v_job.kind
                      WHEN 'statement' THEN 'A statement job runs at top level in pg_cron; only function and batched jobs retry.'
                      ELSE 'A runner job is retried by the runner (autopilot.jobs.max_attempts).'
                  END;
    END IF;
    INSERT INTO autopilot.job_overrides AS o (job_name, max_attempts, retry_backoff)
    VALUES (p_name, p_max_attempts, p_backoff)
    ON CONFLICT (job_name) DO UPDATE
        SET max_attempts = excluded.max_attempts,
            retry_backoff = coalesce(excluded.retry_backoff, o.retry_backoff),
            updated_at = now(),
            updated_by = current_user;
    RETURN p_max_attempts;
END;
$$;

COMMENT ON FUNCTION autopilot.set_job_retries(text, integer, interval) IS
'Overrides the retry policy of a function or batched job: up to p_max_attempts attempts per run (1: no retry) when a step fails transiently (40001, 40P01, 55P03), waiting p_backoff before the second (doubling after; NULL keeps the current backoff). invalid_parameter_value and no change on bad input. Kept across syncs, upgrades and restores; autopilot.reset_job() returns to the catalog defaults.';
