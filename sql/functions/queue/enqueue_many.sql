CREATE FUNCTION autopilot.enqueue_many(p_jobs jsonb)
RETURNS SETOF bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Adds many jobs in one statement: p_jobs is a JSON array of objects with the
-- keys of autopilot.enqueue() -- worker (required), args, queue, priority,
-- scheduled_at, max_attempts, unique_key, meta, depends_on (an array of ids of
-- jobs enqueued before: the job waits until they have completed). Returns the
-- ids of the jobs added; a job whose unique key is held by an unfinished job is
-- skipped. One NOTIFY autopilot_jobs per queue that got a job available now.
DECLARE
    v_depends_on bigint[];
    v_ids bigint[];
    v_queues text[];
BEGIN
    IF jsonb_typeof(p_jobs) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'enqueue_many takes a JSON array of jobs, not %', coalesce(jsonb_typeof(p_jobs), 'NULL')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- every dependency of the batch, checked and locked at once (none: no work at all)
    v_depends_on := ARRAY(
        SELECT DISTINCT d.id::bigint
        FROM jsonb_array_elements(p_jobs) AS x (job)
        CROSS JOIN LATERAL jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(x.job -> 'depends_on') = 'array' THEN x.job -> 'depends_on' ELSE '[]' END
        ) AS d (id)
    );
    IF cardinality(v_depends_on) > 0 THEN
        PERFORM autopilot._dependencies_met(v_depends_on);
    END IF;
    WITH added AS (
        INSERT INTO autopilot.jobs AS j (
            queue, worker, args, state, priority, max_attempts, unique_key, meta, scheduled_at, depends_on
        )
        SELECT
            coalesce(x.queue, 'default'),
            x.worker,
            coalesce(x.args, '{}'),
            CASE
                WHEN
                    cardinality(v_depends_on) > 0
                    AND EXISTS (
                        SELECT FROM autopilot.jobs AS d
                        WHERE d.id = ANY(x.depends_on) AND d.state <> 'completed'
                    )
                    THEN 'waiting'
                WHEN x.scheduled_at > now() THEN 'scheduled'
                ELSE 'available'
            END,
            coalesce(x.priority, 0),
            coalesce(x.max_attempts, 20),
            x.unique_key,
            coalesce(x.meta, '{}'),
            greatest(coalesce(x.scheduled_at, now()), now()),
            nullif(x.depends_on, '{}')
        FROM jsonb_to_recordset(p_jobs) AS x (
            worker text, args jsonb, queue text, priority smallint, scheduled_at timestamptz,
            max_attempts integer, unique_key text, meta jsonb, depends_on bigint[]
        )
        ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'executing', 'retryable', 'waiting')
        DO NOTHING
        RETURNING j.id, j.queue, j.state
    )

    SELECT
        array_agg(a.id ORDER BY a.id),
        array_agg(DISTINCT a.queue) FILTER (WHERE a.state = 'available')
    INTO v_ids, v_queues
    FROM added AS a;
    PERFORM pg_notify('autopilot_jobs', q.queue) FROM unnest(v_queues) AS q (queue);
    RETURN QUERY SELECT i.id FROM unnest(v_ids) AS i (id);
END;
$$;

COMMENT ON FUNCTION autopilot.enqueue_many(jsonb) IS
'Adds the jobs of a JSON array (each an object with enqueue()''s keys; worker required) in one statement; returns the ids added (jobs whose unique key is held by an unfinished job are skipped).';
