CREATE FUNCTION autopilot.claim(p_queue text, p_node text, p_limit integer DEFAULT 1)
RETURNS SETOF autopilot.jobs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Takes up to p_limit jobs of queue p_queue that are due (available, or
-- scheduled / retryable with scheduled_at reached), priority first (0 before
-- 9), then oldest, and marks them executing by p_node: attempt + 1,
-- attempted_at, heartbeat_at. FOR UPDATE SKIP LOCKED: concurrent claimers
-- never wait for each other and never take the same job. The runner must then
-- heartbeat() them, and finish each with complete(), fail(), snooze() -- or
-- rescue_orphaned_jobs() takes them back once the heartbeats stop.
BEGIN
    IF p_node IS NULL OR p_node = '' THEN
        RAISE EXCEPTION 'claim needs the claiming runner''s node name' USING ERRCODE = '22023';
    END IF;
    -- The ids are picked once, as an InitPlan (ARRAY(subquery)): a subquery the planner
    -- could rescan (the inner side of a nested loop) would skip the rows it locked the first
    -- time and pick others, more jobs than the limit. The update then finds them by primary key,
    -- whatever the table's statistics say.
    RETURN QUERY
    UPDATE autopilot.jobs AS j
    SET state = 'executing',
        attempt = j.attempt + 1,
        attempted_at = now(),
        attempted_by = p_node,
        heartbeat_at = now()
    WHERE j.id = ANY(ARRAY(
        SELECT c.id
        FROM autopilot.jobs AS c
        WHERE c.queue = p_queue
          AND c.state IN ('available', 'scheduled', 'retryable')
          AND c.scheduled_at <= now()
        ORDER BY c.priority, c.scheduled_at, c.id
        LIMIT greatest(p_limit, 0)
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING j.*;
END;
$$;

COMMENT ON FUNCTION autopilot.claim(text, text, integer) IS
'Claims up to p_limit due jobs of a queue for runner node p_node (priority, then age; FOR UPDATE SKIP LOCKED) and returns them, now executing with their attempt counted.';
