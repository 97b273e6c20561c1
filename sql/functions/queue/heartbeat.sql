CREATE FUNCTION autopilot.heartbeat(p_ids bigint[], p_node text)
RETURNS SETOF bigint
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- A runner's heartbeat for the jobs it is executing: refreshes heartbeat_at
    -- and returns the ids that are still its own. A job missing from the result
    -- was cancelled, or rescued after a heartbeat came too late: stop it, its
    -- completion would change nothing.
    UPDATE autopilot.jobs AS j
    SET heartbeat_at = now()
    WHERE j.id = ANY(p_ids) AND j.state = 'executing' AND j.attempted_by = p_node
    RETURNING j.id
$$;

COMMENT ON FUNCTION autopilot.heartbeat(bigint[], text) IS
'Refreshes heartbeat_at of the jobs runner node p_node is executing and returns those still its own (a missing id was cancelled or rescued).';
