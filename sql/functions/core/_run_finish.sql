CREATE FUNCTION autopilot._run_finish(
    p_run_id bigint,
    p_status text,
    p_rows_affected bigint,
    p_message text,
    p_error_sqlstate text DEFAULT NULL,
    p_details jsonb DEFAULT '{}'
)
RETURNS autopilot.job_runs
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE autopilot.job_runs
    SET status = p_status,
        finished_at = greatest(started_at, clock_timestamp()),
        rows_affected = p_rows_affected,
        message = p_message,
        error_sqlstate = p_error_sqlstate,
        details = coalesce(p_details, '{}')
    WHERE id = p_run_id
    RETURNING *
$$;

COMMENT ON FUNCTION autopilot._run_finish(bigint, text, bigint, text, text, jsonb) IS
'Private: closes a ledger run with its outcome.';
