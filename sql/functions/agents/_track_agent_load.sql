CREATE FUNCTION autopilot._track_agent_load()
RETURNS trigger
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- @plpgsql_check_options: oldtable = old_rows, newtable = new_rows
--
-- Statement triggers on autopilot.tasks (after INSERT, UPDATE, DELETE, TRUNCATE):
-- keep autopilot.agents.active_tasks equal to the number of the agent's tasks in
-- status assigned or running, and refuse a statement that would give an agent a
-- task it lacks a skill for or more tasks than its capacity. Whoever writes the
-- tasks (assign_pending_tasks or the application), the schema holds both
-- invariants.
--
-- Set-based: one pass over the transition tables per statement, so a bulk
-- assignment of 100,000 tasks costs one UPDATE per agent, not per task.
--
-- Concurrency: the agents concerned are locked in id order (FOR NO KEY UPDATE)
-- before anything is read from them, so two statements changing the same agent
-- queue up instead of both reading the old count; the counter itself moves by
-- a delta computed from the changed rows (never recounted from a snapshot), so
-- it is exact in any isolation level. The skills are compared after the lock:
-- a concurrent change of the agent's skills (autopilot._guard_agent, under the
-- same row lock) is either seen or waits.
DECLARE
    v_agents bigint[];
    v_deltas integer[];
    -- the (agent, required skills) pairs of the tasks that became held, changed
    -- agent or changed skills: the only ones whose skills need checking
    v_pair_agents bigint[];
    v_pair_skills text[];
    v_old_held bigint := 0;
    v_agent bigint;
    v_skills text;
    v_task bigint;
    v_held integer;
    v_capacity integer;
    v_delta integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE autopilot.agents SET active_tasks = 0 WHERE active_tasks <> 0;
        RETURN NULL;
    END IF;

    -- Only aggregates and set operations over the transition tables: their
    -- plans are cached with the size of the first statement a session ran, and
    -- these stay linear whatever that was.
    IF TG_OP = 'INSERT' THEN
        SELECT
            array_agg(d.agent_id ORDER BY d.agent_id),
            array_agg(d.delta ORDER BY d.agent_id)
        INTO v_agents, v_deltas
        FROM (
            SELECT n.agent_id, count(*)::integer AS delta
            FROM new_rows AS n
            WHERE n.status IN ('assigned', 'running')
            GROUP BY n.agent_id
        ) AS d;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT
            array_agg(d.agent_id ORDER BY d.agent_id),
            array_agg(d.delta ORDER BY d.agent_id)
        INTO v_agents, v_deltas
        FROM (
            SELECT o.agent_id, -count(*)::integer AS delta
            FROM old_rows AS o
            WHERE o.status IN ('assigned', 'running')
            GROUP BY o.agent_id
        ) AS d;
    ELSE
        SELECT
            array_agg(d.agent_id ORDER BY d.agent_id) FILTER (WHERE d.delta <> 0),
            array_agg(d.delta ORDER BY d.agent_id) FILTER (WHERE d.delta <> 0),
            coalesce(sum(d.old_held), 0)
        INTO v_agents, v_deltas, v_old_held
        FROM (
            SELECT
                c.agent_id,
                sum(c.delta)::integer AS delta,
                count(*) FILTER (WHERE c.delta < 0) AS old_held
            FROM (
                SELECT n.agent_id, 1 AS delta
                FROM new_rows AS n
                WHERE n.status IN ('assigned', 'running')
                UNION ALL
                SELECT o.agent_id, -1 AS delta
                FROM old_rows AS o
                WHERE o.status IN ('assigned', 'running')
            ) AS c
            GROUP BY c.agent_id
        ) AS d;
    END IF;

    IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND v_old_held = 0) THEN
        -- every held task in the statement is newly held
        SELECT array_agg(c.agent_id), array_agg(c.required_skills::text)
        INTO v_pair_agents, v_pair_skills
        FROM (
            SELECT DISTINCT n.agent_id, n.required_skills
            FROM new_rows AS n
            WHERE n.status IN ('assigned', 'running')
        ) AS c;
    ELSIF TG_OP = 'UPDATE' THEN
        SELECT array_agg(c.agent_id), array_agg(c.required_skills::text)
        INTO v_pair_agents, v_pair_skills
        FROM (
            SELECT DISTINCT x.agent_id, x.required_skills
            FROM (
                SELECT n.id, n.agent_id, n.required_skills
                FROM new_rows AS n
                WHERE n.status IN ('assigned', 'running')
                EXCEPT
                SELECT o.id, o.agent_id, o.required_skills
                FROM old_rows AS o
                WHERE o.status IN ('assigned', 'running')
            ) AS x
        ) AS c;
    END IF;

    IF v_agents IS NULL AND v_pair_agents IS NULL THEN
        RETURN NULL;
    END IF;

    PERFORM
    FROM autopilot.agents AS a
    WHERE a.id = ANY(v_agents) OR a.id = ANY(v_pair_agents)
    ORDER BY a.id
    FOR NO KEY UPDATE;

    -- capacity (agents_active_tasks_check would refuse it too, with a vaguer message)
    SELECT a.id, a.active_tasks, a.capacity, d.delta
    INTO v_agent, v_held, v_capacity, v_delta
    FROM unnest(v_agents, v_deltas) AS d (agent_id, delta)
    INNER JOIN autopilot.agents AS a ON d.agent_id = a.id
    WHERE a.active_tasks + d.delta > a.capacity;
    IF FOUND THEN
        RAISE EXCEPTION 'agent % would hold % tasks, more than its capacity of %', v_agent, v_held + v_delta, v_capacity
            USING ERRCODE = 'check_violation',
                  DETAIL = format('It holds %s assigned or running tasks; this statement adds %s.', v_held, v_delta),
                  HINT = 'Assign tasks only to agents with free capacity (autopilot.assign_pending_tasks() does), '
                      || 'or raise the agent''s capacity first.';
    END IF;

    UPDATE autopilot.agents AS a
    SET active_tasks = a.active_tasks + d.delta
    FROM unnest(v_agents, v_deltas) AS d (agent_id, delta)
    WHERE a.id = d.agent_id;

    -- skills, read under the lock
    SELECT c.agent_id, c.required_skills
    INTO v_agent, v_skills
    FROM unnest(v_pair_agents, v_pair_skills) AS c (agent_id, required_skills)
    INNER JOIN autopilot.agents AS a ON c.agent_id = a.id
    WHERE NOT c.required_skills::text[] <@ a.skills;
    IF FOUND THEN
        SELECT min(n.id)
        INTO v_task
        FROM new_rows AS n
        WHERE n.agent_id = v_agent AND n.required_skills = v_skills::text[] AND n.status IN ('assigned', 'running');
        RAISE EXCEPTION 'task % requires a skill agent % does not have', v_task, v_agent
            USING ERRCODE = 'check_violation',
                  DETAIL = format('Required skills %s; an assigned or running task''s required skills must all be among its agent''s.', v_skills),
                  HINT = 'Give the task to an agent with every required skill (autopilot.assign_pending_tasks() does).';
    END IF;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION autopilot._track_agent_load() IS
'Private: statement trigger on autopilot.tasks; keeps agents.active_tasks equal to the agent''s assigned and running tasks and refuses a statement that would put an agent over its capacity or give it a task it lacks a skill for (check_violation).';

CREATE TRIGGER tasks_agent_load_insert_trg
AFTER INSERT ON autopilot.tasks
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

CREATE TRIGGER tasks_agent_load_update_trg
AFTER UPDATE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

CREATE TRIGGER tasks_agent_load_delete_trg
AFTER DELETE ON autopilot.tasks
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

CREATE TRIGGER tasks_agent_load_truncate_trg
AFTER TRUNCATE ON autopilot.tasks
FOR EACH STATEMENT EXECUTE FUNCTION autopilot._track_agent_load();

COMMENT ON TRIGGER tasks_agent_load_insert_trg ON autopilot.tasks IS
'Inserted assigned/running tasks count towards their agent''s active_tasks (capacity and skills checked).';
COMMENT ON TRIGGER tasks_agent_load_update_trg ON autopilot.tasks IS
'Tasks entering or leaving assigned/running, or changing agent: active_tasks follows (capacity and skills checked).';
COMMENT ON TRIGGER tasks_agent_load_delete_trg ON autopilot.tasks IS
'Deleted assigned/running tasks no longer count towards their agent''s active_tasks.';
COMMENT ON TRIGGER tasks_agent_load_truncate_trg ON autopilot.tasks IS
'After TRUNCATE of the tasks no agent holds any: every active_tasks goes back to 0.';
