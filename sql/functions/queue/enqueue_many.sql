CREATE FUNCTION autopilot.enqueue_many(p_jobs jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Adds many jobs in one statement: p_jobs is a JSON array of objects with the
-- keys of autopilot.enqueue() -- worker (required), args, queue, priority,
-- scheduled_at, max_attempts, unique_key, meta. Returns the ids of the jobs
-- added; a job whose unique key is held by an unfinished job is skipped.
BEGIN
    IF jsonb_typeof(p_jobs) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'enqueue_many takes a JSON array of jobs, not %', coalesce(jsonb_typeof(p_jobs), 'NULL')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    INSERT INTO autopilot.jobs AS j (
        queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at
    )
    SELECT
        coalesce(x.queue, 'default'),
        x.worker,
        coalesce(x.args, '{}'),
        CASE WHEN x.scheduled_at > now() THEN 'scheduled' ELSE 'available' END,
        coalesce(x.priority, 0),
        coalesce(x.max_attempts, 20),
        x.unique_key,
        coalesce(x.meta, '{}'),
        greatest(coalesce(x.scheduled_at, now()), now())
    FROM jsonb_to_recordset(p_jobs) AS x (
        worker text, args jsonb, queue text, priority smallint, scheduled_at timestamptz,
        max_attempts integer, unique_key text, meta jsonb
    )
    ON CONFLICT (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable')
    DO NOTHING
    RETURNING j.id;
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue_many(jsonb) IS
'Adds the jobs of a JSON array (each an object with enqueue()''s keys; worker required) in one statement; returns the ids added (jobs whose unique key is held by an unfinished job are skipped).';
