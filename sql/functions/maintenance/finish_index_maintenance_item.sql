CREATE FUNCTION autopilot.finish_index_maintenance_item(
    p_id bigint, p_succeeded boolean, p_message text DEFAULT NULL
)
RETURNS autopilot.index_maintenance
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_item autopilot.index_maintenance;
BEGIN
    UPDATE autopilot.index_maintenance
    SET state = CASE WHEN p_succeeded THEN 'done' ELSE 'failed' END,
        finished_at = now(),
        message = p_message
    WHERE id = p_id AND state IN ('pending', 'armed')
    RETURNING * INTO v_item;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'index maintenance item % is not open', p_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT * FROM autopilot.index_maintenance WHERE state IN (''pending'', ''armed'') lists the open items.';
    END IF;
    RETURN v_item;
END;
$$;

COMMENT ON FUNCTION autopilot.finish_index_maintenance_item(bigint, boolean, text) IS
'Records how one statement of an index-reindex cycle ended (done or failed, with a message); called by index-reindex when pg_cron ran it, and by "autopilot run index-reindex", which runs the statements itself.';
