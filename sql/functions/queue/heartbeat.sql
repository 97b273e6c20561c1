CREATE FUNCTION autopilot.heartbeat(p_ids bigint[], p_attempts integer[], p_node text)
RETURNS SETOF bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- A runner's heartbeat for the jobs it is executing (p_ids[i] at attempt
-- p_attempts[i]): refreshes heartbeat_at of each job still executing that
-- attempt on p_node and returns their ids. A job missing from the result was
-- cancelled, or rescued after a heartbeat came too late -- even if this node
-- has claimed it again since, as a later attempt: stop the attempt, its
-- completion would change nothing.
BEGIN
    IF cardinality(p_ids) IS DISTINCT FROM cardinality(p_attempts) THEN
        RAISE EXCEPTION 'heartbeat: % job ids but % attempts', cardinality(p_ids), cardinality(p_attempts)
        USING ERRCODE = 'array_subscript_error';
    END IF;
    -- the rows are locked in id order, as complete_many() locks them: a heartbeat over thousands
    -- of jobs (a seq scan, heap order) and a batch of completions (an index scan) would otherwise
    -- take their locks in different orders and deadlock
    RETURN QUERY
    WITH mine AS (
        SELECT j.id
        FROM autopilot.jobs AS j
        -- by primary key, then the attempt, as complete_many
        WHERE j.id = ANY(p_ids)
          AND j.state = 'executing'
          AND j.attempted_by = p_node
          AND (j.id, j.attempt) IN (SELECT u.id, u.attempt FROM unnest(p_ids, p_attempts) AS u (id, attempt))
        ORDER BY j.id
        FOR NO KEY UPDATE OF j
    )

    UPDATE autopilot.jobs AS j
    SET heartbeat_at = now()
    FROM mine
    WHERE j.id = mine.id
    RETURNING j.id;
END;
$$;

COMMENT ON FUNCTION autopilot.heartbeat(bigint[], integer[], text) IS
'Refreshes heartbeat_at of the jobs runner node p_node is executing, each at the attempt given beside it, and returns the ids still its own (a missing id was cancelled or rescued, perhaps claimed again as a later attempt).';
