CREATE FUNCTION autopilot._mark_agent_knowledge_pending()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement trigger on autopilot.tasks (after INSERT, UPDATE, DELETE,
-- TRUNCATE): records in autopilot.agent_knowledge_pending, once per agent and
-- transaction, the agents whose task outcomes changed -- a task with an agent
-- entering or leaving succeeded/failed, or a finished task changing agent or
-- required skills; after TRUNCATE, every agent. Assigning, starting or
-- cancelling work writes nothing. One set-based INSERT per statement; ON
-- CONFLICT DO NOTHING on (transaction, agent) never waits on another
-- transaction.
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT a.id FROM autopilot.agents AS a
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT DISTINCT n.agent_id
        FROM new_rows AS n
        WHERE n.agent_id IS NOT NULL AND n.status IN ('succeeded', 'failed')
        ON CONFLICT DO NOTHING;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT DISTINCT o.agent_id
        FROM old_rows AS o
        WHERE o.agent_id IS NOT NULL AND o.status IN ('succeeded', 'failed')
        ON CONFLICT DO NOTHING;
    ELSE
        INSERT INTO autopilot.agent_knowledge_pending (agent_id)
        SELECT DISTINCT c.agent_id
        FROM (
            (
                SELECT n.id, n.agent_id, n.status, n.required_skills
                FROM new_rows AS n
                WHERE n.agent_id IS NOT NULL AND n.status IN ('succeeded', 'failed')
                EXCEPT
                SELECT o.id, o.agent_id, o.status, o.required_skills
                FROM old_rows AS o
                WHERE o.agent_id IS NOT NULL AND o.status IN ('succeeded', 'failed')
            )
            UNION ALL
            (
                SELECT o.id, o.agent_id, o.status, o.required_skills
                FROM old_rows AS o
                WHERE o.agent_id IS NOT NULL AND o.status IN ('succeeded', 'failed')
                EXCEPT
                SELECT n.id, n.agent_id, n.status, n.required_skills
                FROM new_rows AS n
                WHERE n.agent_id IS NOT NULL AND n.status IN ('succeeded', 'failed')
            )
        ) AS c
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._mark_agent_knowledge_pending() IS
'Private: statement trigger on autopilot.tasks (insert, update, delete, truncate); records in autopilot.agent_knowledge_pending the agents whose finished (succeeded/failed) tasks changed, for agent-knowledge-update.';

CREATE TRIGGER tasks_agent_knowledge_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

CREATE TRIGGER tasks_agent_knowledge_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

CREATE TRIGGER tasks_agent_knowledge_delete_trg
AFTER DELETE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

CREATE TRIGGER tasks_agent_knowledge_truncate_trg
AFTER TRUNCATE ON autopilot.tasks
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._mark_agent_knowledge_pending();

COMMENT ON TRIGGER tasks_agent_knowledge_insert_trg ON autopilot.tasks IS
'Agents given an already finished task: their knowledge summary is recomputed by agent-knowledge-update.';
COMMENT ON TRIGGER tasks_agent_knowledge_update_trg ON autopilot.tasks IS
'Agents whose tasks finished, left a finished state, or changed agent or skills while finished: recomputed by agent-knowledge-update.';
COMMENT ON TRIGGER tasks_agent_knowledge_delete_trg ON autopilot.tasks IS
'Agents whose finished tasks were deleted: recomputed by agent-knowledge-update.';
COMMENT ON TRIGGER tasks_agent_knowledge_truncate_trg ON autopilot.tasks IS
'Every agent, after autopilot.tasks is truncated: recomputed by agent-knowledge-update.';
