CREATE FUNCTION autopilot.claim(p_queue text, p_node text, p_limit integer DEFAULT 1)
RETURNS SETOF autopilot.jobs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Takes up to p_limit jobs of queue p_queue that are due (available, or
-- scheduled / retryable with scheduled_at reached), priority first (0 before
-- 9), then oldest, and marks them executing by p_node: attempt + 1,
-- attempted_at, heartbeat_at. Returns them in that order. FOR UPDATE SKIP
-- LOCKED: concurrent claimers never wait for each other and never take the
-- same job. The runner must then heartbeat() them, and finish each with
-- complete(), fail(), snooze() -- or rescue_orphaned_jobs() takes them back
-- once the heartbeats stop.
DECLARE
    v_ids bigint [] := ARRAY[]::bigint [];
BEGIN
    IF p_node IS NULL OR p_node = '' THEN
        RAISE EXCEPTION 'claim needs the claiming runner''s node name' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(p_limit, 0) <= 0 THEN
        RETURN;
    END IF;
    -- One priority at a time (jobs_priority_check: 0-9), each a range scan of jobs_claim_idx
    -- over (queue, priority, scheduled_at <= now()) that reads due jobs only: over the whole
    -- queue at once, the scan would also read every job scheduled for later (or backing off)
    -- whenever fewer than p_limit are due -- each idle poll. The ids are collected into an
    -- array, each batch once (a subquery the planner could rescan would skip the rows it
    -- locked the first time and lock others), and the update finds them by primary key.
    FOR v_priority IN 0 .. 9 LOOP
        EXIT WHEN cardinality(v_ids) >= p_limit;
        v_ids := v_ids || ARRAY(
            SELECT c.id
            FROM autopilot.jobs AS c
            WHERE c.queue = p_queue
              AND c.priority = v_priority
              AND c.state IN ('available', 'scheduled', 'retryable')
              AND c.scheduled_at <= now()
            ORDER BY c.scheduled_at, c.id
            LIMIT p_limit - cardinality(v_ids)
            FOR UPDATE SKIP LOCKED
        );
    END LOOP;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE autopilot.jobs AS j
        SET state = 'executing',
            attempt = j.attempt + 1,
            attempted_at = now(),
            attempted_by = p_node,
            heartbeat_at = now()
        WHERE j.id = ANY(v_ids)
        RETURNING j.*
    )

    SELECT * FROM claimed AS c
    ORDER BY c.priority, c.scheduled_at, c.id;
END;
$$;

COMMENT ON FUNCTION autopilot.claim(text, text, integer) IS
'Claims up to p_limit due jobs of a queue for runner node p_node (priority, then age; FOR UPDATE SKIP LOCKED) and returns them in that order, now executing with their attempt counted.';
