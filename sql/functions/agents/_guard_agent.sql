CREATE FUNCTION autopilot._guard_agent()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row trigger on autopilot.agents (before INSERT, and before UPDATE of
-- active_tasks, capacity or skills): the agent's side of the invariants that
-- autopilot._track_agent_load keeps on the tasks' side.
--
-- * active_tasks belongs to the triggers on autopilot.tasks: a new agent holds
--   no task yet (0, whatever the INSERT says: a restore copies the agents before
--   their tasks, whose trigger counts them again), and a direct UPDATE of it is
--   refused (pg_trigger_depth() = 1: not from within a trigger).
-- * capacity may not drop below the tasks the agent holds;
-- * a skill may not be taken away while a held task requires it. The row is
--   locked while this runs, and every statement that gives the agent a task
--   takes the same lock first, so the check cannot miss a concurrent assignment.
DECLARE
    v_task bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        NEW.active_tasks := 0;
        RETURN NEW;
    END IF;

    IF NEW.active_tasks IS DISTINCT FROM OLD.active_tasks AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'agents.active_tasks is maintained by autopilot and cannot be set'
            USING ERRCODE = 'generated_always',
                  DETAIL = 'It counts the agent''s tasks in status assigned or running.',
                  HINT = 'Change the tasks instead; their triggers keep the count.';
    END IF;

    IF NEW.capacity < NEW.active_tasks THEN
        RAISE EXCEPTION 'agent % holds % tasks: its capacity cannot drop to %', NEW.id, NEW.active_tasks, NEW.capacity
            USING ERRCODE = 'check_violation',
                  HINT = 'Let tasks finish, or take them back (status pending, agent_id NULL) first; '
                      || 'status ''paused'' stops new assignments at once.';
    END IF;

    IF NEW.skills IS DISTINCT FROM OLD.skills AND NEW.active_tasks > 0 THEN
        SELECT t.id
        INTO v_task
        FROM autopilot.tasks AS t
        WHERE t.agent_id = NEW.id
          AND t.status IN ('assigned', 'running')
          AND NOT t.required_skills <@ NEW.skills
        LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'agent % holds task %, which requires a skill the agent would no longer have', NEW.id, v_task
                USING ERRCODE = 'check_violation',
                      HINT = 'Let the task finish, or take it back (status pending, agent_id NULL) first.';
        END IF;
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION autopilot._guard_agent() IS
'Private: row trigger on autopilot.agents; a new agent holds no task (active_tasks 0), active_tasks cannot be set directly, capacity cannot drop below the held tasks, and a skill a held task requires cannot be removed (check_violation).';

CREATE TRIGGER agents_guard_insert_trg
BEFORE INSERT ON autopilot.agents
FOR EACH ROW EXECUTE FUNCTION autopilot._guard_agent();

CREATE TRIGGER agents_guard_update_trg
BEFORE UPDATE OF active_tasks, capacity, skills ON autopilot.agents
FOR EACH ROW EXECUTE FUNCTION autopilot._guard_agent();

COMMENT ON TRIGGER agents_guard_insert_trg ON autopilot.agents IS
'A new agent holds no task: active_tasks starts at 0 (the triggers on autopilot.tasks count its tasks).';
COMMENT ON TRIGGER agents_guard_update_trg ON autopilot.agents IS
'active_tasks is not set directly; capacity stays at or above it; skills held tasks require stay.';
