CREATE FUNCTION autopilot.assign_pending_tasks()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- task-assignment. Semantics (README, "Task assignment"):
--
-- 1. Tasks assigned to an agent not seen (last_seen_at NULL, or older than
--    agents.silence_timeout) go back to pending (agent_id, assigned_at cleared).
--    Running tasks are left alone: they may have side effects.
-- 2. Pending tasks go, highest priority first, then oldest (created_at, then
--    id), each to the least-loaded agent that can take it: status active, seen
--    within the timeout, every required skill (required_skills <@ skills),
--    active_tasks < capacity. Least loaded = lowest active_tasks / capacity
--    (double precision), then lowest id -- counting the tasks this run gave it.
--    That is the sequential greedy, computed exactly: it is the unique stable
--    matching of tasks (ranked by order) to agent slots (ranked by the load
--    ratio at which the agent would take it), so it is built from the slot
--    side -- free slots in ratio order, each taking the first remaining task
--    any of its agent's skill sets offers -- over arrays in memory, with the
--    reading and the writing done set-based (one statement each).
--    A pending task that depends on a task not yet succeeded
--    (autopilot.task_dependencies) is not given out: it is counted as
--    blocked, and waits for a later run.
-- 3. Every agent that got tasks gets one NOTIFY autopilot_task_assigned,
--    payload {"agent_id": n, "task_ids": [...]} (at most 256 ids each, a
--    payload stays far below the 8000-byte limit); delivered at commit.
--
-- Locking: the job's advisory lock makes runs exclusive (a second caller waits
-- and then sees the first one's assignments). The agents it plans for are
-- locked (FOR NO KEY UPDATE SKIP LOCKED: an agent another transaction is
-- changing waits for the next run), so their load cannot move under the plan;
-- the tasks it writes are locked the same way (a task the application is
-- changing is left for the next run), and the UPDATE re-checks status and
-- skills on the row it writes. Capacity and skills are also the schema's
-- (agents_active_tasks_check, autopilot._track_agent_load), whoever writes.
DECLARE
    c_none CONSTANT bigint := 9223372036854775807;
    v_timeout interval := autopilot.get_setting('agents.silence_timeout')::interval;
    v_reclaimed bigint;
    -- the agents planned for, in id order: index i everywhere below
    v_agent_ids bigint[];
    v_load integer[];
    v_capacity integer[];
    v_dead boolean[];
    v_busy_agents bigint;
    -- candidates: the first tasks of each skill set (as many as its agents have
    -- free slots), grouped by skill set (g = 1..) and in order within a group
    v_read_ids bigint[];
    v_read_ords bigint[];
    v_read_pos integer[];
    v_task_ids bigint[];
    v_task_ord bigint[];
    v_head integer[];
    v_head_ord bigint[];
    v_group_end integer[];
    -- the skill sets agent i can serve: v_capable[v_capable_first[i] .. v_capable_last[i]]
    v_capable integer[];
    v_capable_first integer[];
    v_capable_last integer[];
    v_pending bigint;
    v_unassignable bigint;
    v_blocked bigint;
    v_left integer;
    -- slots: agent indexes, in the order of the load ratio at which they take a task
    v_slots integer[];
    v_per_agent integer;
    v_cut_key double precision;
    v_cut_agent integer;
    v_batches integer := 0;
    -- the plan
    v_plan_tasks bigint[] := '{}'::bigint[];
    v_plan_agents bigint[] := '{}'::bigint[];
    v_planned integer := 0;
    v_i integer;
    v_h integer;
    v_best integer;
    v_best_ord bigint;
    -- the outcome
    v_assigned bigint;
    v_agents_used bigint;
    v_notifications bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(autopilot._job_lock_key('task-assignment'));

    -- 1. take tasks back from silent agents
    UPDATE autopilot.tasks AS t
    SET status = 'pending', agent_id = NULL, assigned_at = NULL
    FROM autopilot.agents AS a
    WHERE t.agent_id = a.id
      AND t.status = 'assigned'
      AND (a.last_seen_at IS NULL OR a.last_seen_at < now() - v_timeout);
    GET DIAGNOSTICS v_reclaimed = ROW_COUNT;

    -- 2. the agents that can take tasks now, locked
    SELECT
        coalesce(array_agg(e.id ORDER BY e.id), '{}'),
        coalesce(array_agg(e.active_tasks ORDER BY e.id), '{}'),
        coalesce(array_agg(e.capacity ORDER BY e.id), '{}'),
        coalesce(array_agg(false ORDER BY e.id), '{}')
    INTO v_agent_ids, v_load, v_capacity, v_dead
    FROM (
        SELECT a.id, a.active_tasks, a.capacity
        FROM autopilot.agents AS a
        WHERE a.status = 'active'
          AND a.active_tasks < a.capacity
          AND a.last_seen_at >= now() - v_timeout
        ORDER BY a.id
        FOR NO KEY UPDATE SKIP LOCKED
    ) AS e;

    SELECT count(*) - cardinality(v_agent_ids)
    INTO v_busy_agents
    FROM autopilot.agents AS a
    WHERE a.status = 'active'
      AND a.active_tasks < a.capacity
      AND a.last_seen_at >= now() - v_timeout;

    -- 3. the pending tasks waiting for a task that has not succeeded (set-based
    -- from the dependencies: nothing to read when there are none)
    SELECT count(DISTINCT d.task_id)
    INTO v_blocked
    FROM autopilot.task_dependencies AS d
    INNER JOIN autopilot.tasks AS t ON d.task_id = t.id
    INNER JOIN autopilot.tasks AS p ON d.depends_on_task_id = p.id
    WHERE t.status = 'pending' AND p.status <> 'succeeded';

    -- the other pending tasks, by skill set (a set: {b,a} and {a,b,a} are {a,b}).
    -- A skill set's candidates are its first tasks in order, as many as the free
    -- slots of the agents that have every skill in it (it can never use more);
    -- they get positions first_pos .. first_pos + take - 1 of the arrays below.
    WITH pending AS MATERIALIZED (
        SELECT
            t.id,
            t.required_skills,
            row_number() OVER (ORDER BY t.priority DESC, t.created_at ASC, t.id ASC) AS ord
        FROM autopilot.tasks AS t
        WHERE t.status = 'pending'
          AND NOT EXISTS (
              SELECT
              FROM autopilot.task_dependencies AS d
              INNER JOIN autopilot.tasks AS p ON d.depends_on_task_id = p.id
              WHERE d.task_id = t.id AND p.status <> 'succeeded'
          )
    ),

    eligible AS MATERIALIZED (
        SELECT
            e.i::integer AS i,
            a.skills,
            a.capacity - a.active_tasks AS free
        FROM unnest(v_agent_ids) WITH ORDINALITY AS e (id, i)
        INNER JOIN autopilot.agents AS a ON e.id = a.id
    ),

    written AS MATERIALIZED (
        SELECT
            p.required_skills AS written,
            count(*) AS tasks,
            array(SELECT DISTINCT r.skill FROM unnest(p.required_skills) AS r (skill) ORDER BY r.skill) AS skills
        FROM pending AS p
        GROUP BY p.required_skills
    ),

    skill_sets AS MATERIALIZED (
        SELECT
            w.skills,
            sum(w.tasks)::bigint AS tasks,
            (
                SELECT coalesce(sum(e.free), 0)
                FROM eligible AS e
                WHERE w.skills <@ e.skills
            ) AS free,
            EXISTS (
                SELECT
                FROM autopilot.agents AS a
                WHERE a.status = 'active' AND a.capacity > 0 AND w.skills <@ a.skills
            ) AS assignable
        FROM written AS w
        GROUP BY w.skills
    ),

    groups AS MATERIALIZED (
        SELECT
            s.skills,
            row_number() OVER (ORDER BY s.skills)::integer AS g,
            least(s.tasks, s.free)::integer AS take,
            (sum(least(s.tasks, s.free)) OVER (ORDER BY s.skills) - least(s.tasks, s.free) + 1)::integer AS first_pos
        FROM skill_sets AS s
        WHERE s.free > 0
    ),

    candidates AS MATERIALIZED (
        SELECT
            r.id,
            r.ord,
            (r.first_pos + r.rank - 1)::integer AS pos
        FROM (
            SELECT
                p.id,
                p.ord,
                g.take,
                g.first_pos,
                row_number() OVER (PARTITION BY g.g ORDER BY p.ord) AS rank
            FROM pending AS p
            INNER JOIN written AS w ON p.required_skills = w.written
            INNER JOIN groups AS g ON w.skills = g.skills
        ) AS r
        WHERE r.rank <= r.take
    ),

    capable AS MATERIALIZED (
        SELECT
            e.i,
            g.g,
            row_number() OVER (ORDER BY e.i, g.g)::integer AS pos
        FROM eligible AS e
        INNER JOIN groups AS g ON g.skills <@ e.skills
    )

    SELECT
        (SELECT count(*) FROM pending),
        (SELECT coalesce(sum(s.tasks), 0)::bigint FROM skill_sets AS s WHERE NOT s.assignable),
        (SELECT coalesce(array_agg(g.first_pos ORDER BY g.g), '{}') FROM groups AS g),
        (SELECT coalesce(array_agg(g.first_pos + g.take - 1 ORDER BY g.g), '{}') FROM groups AS g),
        (SELECT coalesce(array_agg(c.g ORDER BY c.pos), '{}') FROM capable AS c),
        (
            SELECT coalesce(array_agg(coalesce(b.first_pos, 1) ORDER BY e.i), '{}')
            FROM eligible AS e
            LEFT JOIN (SELECT c.i, min(c.pos) AS first_pos FROM capable AS c GROUP BY c.i) AS b ON e.i = b.i
        ),
        (
            SELECT coalesce(array_agg(coalesce(b.last_pos, 0) ORDER BY e.i), '{}')
            FROM eligible AS e
            LEFT JOIN (SELECT c.i, max(c.pos) AS last_pos FROM capable AS c GROUP BY c.i) AS b ON e.i = b.i
        ),
        -- one aggregate pass: the three arrays are aligned, in no particular order
        coalesce(array_agg(c.id), '{}'),
        coalesce(array_agg(c.ord), '{}'),
        coalesce(array_agg(c.pos), '{}')
    INTO
        v_pending, v_unassignable, v_head, v_group_end, v_capable, v_capable_first, v_capable_last,
        v_read_ids, v_read_ords, v_read_pos
    FROM candidates AS c;

    v_left := cardinality(v_read_ids);
    v_task_ids := array_fill(0::bigint, ARRAY[v_left]);
    v_task_ord := array_fill(0::bigint, ARRAY[v_left]);
    FOR v_p IN 1 .. v_left LOOP
        v_task_ids[v_read_pos[v_p]] := v_read_ids[v_p];
        v_task_ord[v_read_pos[v_p]] := v_read_ords[v_p];
    END LOOP;
    v_head_ord := array_fill(0::bigint, ARRAY[cardinality(v_head)]);
    FOR v_g IN 1 .. cardinality(v_head) LOOP
        v_head_ord[v_g] := v_task_ord[v_head[v_g]];
    END LOOP;

    -- 4. the plan: free slots in the order of the load ratio at which their agent
    -- takes a task (agent i's k-th free slot: (active_tasks + k) / capacity, then
    -- i), each taking the first remaining task of the skill sets agent i serves.
    -- An agent whose slot finds nothing is done: tasks only ever get taken.
    -- Slots come in batches of at most ~2 per candidate (an agent's huge capacity
    -- is never spelled out): a batch holds every slot ordered before the first
    -- one it leaves out, so the order across batches is exact.
    WHILE v_left > 0 LOOP
        v_per_agent := greatest(1, ceil(2.0 * v_left / greatest(cardinality(v_agent_ids), 1)))::integer;

        SELECT (a.load + v_per_agent)::double precision / a.capacity, a.i::integer
        INTO v_cut_key, v_cut_agent
        FROM unnest(v_load, v_capacity, v_dead) WITH ORDINALITY AS a (load, capacity, dead, i)
        WHERE NOT a.dead AND a.capacity - a.load > v_per_agent
        ORDER BY 1, 2
        LIMIT 1;

        SELECT array_agg(s.i ORDER BY s.slot_key, s.i)
        INTO v_slots
        FROM (
            SELECT
                a.i::integer AS i,
                (a.load + k.k)::double precision / a.capacity AS slot_key
            FROM unnest(v_load, v_capacity, v_dead) WITH ORDINALITY AS a (load, capacity, dead, i)
            CROSS JOIN LATERAL generate_series(0, least(a.capacity - a.load, v_per_agent) - 1) AS k (k)
            WHERE NOT a.dead AND a.load < a.capacity
        ) AS s
        WHERE v_cut_agent IS NULL OR (s.slot_key, s.i) < (v_cut_key, v_cut_agent);

        EXIT WHEN v_slots IS NULL;
        v_batches := v_batches + 1;

        FOREACH v_i IN ARRAY v_slots LOOP
            CONTINUE WHEN v_dead[v_i];
            v_best := 0;
            v_best_ord := c_none;
            FOR v_p IN v_capable_first[v_i] .. v_capable_last[v_i] LOOP
                IF v_head_ord[v_capable[v_p]] < v_best_ord THEN
                    v_best := v_capable[v_p];
                    v_best_ord := v_head_ord[v_best];
                END IF;
            END LOOP;
            IF v_best = 0 THEN
                v_dead[v_i] := true;
                CONTINUE;
            END IF;
            v_h := v_head[v_best];
            v_planned := v_planned + 1;
            v_plan_tasks[v_planned] := v_task_ids[v_h];
            v_plan_agents[v_planned] := v_agent_ids[v_i];
            IF v_h = v_group_end[v_best] THEN
                v_head_ord[v_best] := c_none;
            ELSE
                v_head[v_best] := v_h + 1;
                v_head_ord[v_best] := v_task_ord[v_h + 1];
            END IF;
            v_load[v_i] := v_load[v_i] + 1;
            v_left := v_left - 1;
            EXIT WHEN v_left = 0;
        END LOOP;

        EXIT WHEN v_cut_agent IS NULL;
    END LOOP;

    -- 5. write the plan, announce it
    WITH plan AS (
        SELECT p.task_id, p.agent_id
        FROM unnest(v_plan_tasks, v_plan_agents) AS p (task_id, agent_id)
    ),

    claimed AS MATERIALIZED (
        SELECT
            t.id,
            p.agent_id
        FROM autopilot.tasks AS t
        INNER JOIN plan AS p ON t.id = p.task_id
        WHERE t.status = 'pending'
        FOR NO KEY UPDATE OF t SKIP LOCKED
    ),

    assigned AS (
        UPDATE autopilot.tasks AS t
        SET status = 'assigned', agent_id = c.agent_id, assigned_at = now()
        FROM claimed AS c
        WHERE t.id = c.id
          AND t.status = 'pending'
          -- the agent is locked: its skills are as planned; the task's may have changed since
          AND t.required_skills <@ (SELECT a.skills FROM autopilot.agents AS a WHERE a.id = c.agent_id)
          -- and so may its dependencies
          AND NOT EXISTS (
              SELECT
              FROM autopilot.task_dependencies AS d
              INNER JOIN autopilot.tasks AS p ON d.depends_on_task_id = p.id
              WHERE d.task_id = t.id AND p.status <> 'succeeded'
          )
        RETURNING t.id, t.agent_id
    ),

    notifications AS (
        SELECT
            pg_notify(
                'autopilot_task_assigned',
                json_build_object('agent_id', n.agent_id, 'task_ids', n.task_ids)::text
            )
        FROM (
            SELECT
                x.agent_id,
                array_agg(x.id ORDER BY x.id) AS task_ids
            FROM (
                SELECT
                    s.agent_id,
                    s.id,
                    (row_number() OVER (PARTITION BY s.agent_id ORDER BY s.id) - 1) / 256 AS chunk
                FROM assigned AS s
            ) AS x
            GROUP BY x.agent_id, x.chunk
        ) AS n
    )

    SELECT
        (SELECT count(*) FROM assigned),
        (SELECT count(DISTINCT s.agent_id) FROM assigned AS s),
        (SELECT count(*) FROM notifications)
    INTO v_assigned, v_agents_used, v_notifications;

    RETURN jsonb_build_object(
        'rows_affected', v_assigned,
        'message', format(
            'assigned %s %s to %s %s; %s taken back from silent agents; %s still pending (%s unassignable%s)',
            v_assigned, CASE WHEN v_assigned = 1 THEN 'task' ELSE 'tasks' END,
            v_agents_used, CASE WHEN v_agents_used = 1 THEN 'agent' ELSE 'agents' END,
            v_reclaimed, v_pending + v_blocked - v_assigned, v_unassignable,
            CASE WHEN v_blocked > 0 THEN format(', %s waiting for their dependencies', v_blocked) ELSE '' END
        ),
        'assigned', v_assigned,
        'agents', v_agents_used,
        'reclaimed', v_reclaimed,
        'pending', v_pending + v_blocked - v_assigned,
        'unassignable', v_unassignable,
        'blocked', v_blocked,
        'waiting', v_pending - v_assigned - v_unassignable,
        'skipped_busy_tasks', v_planned - v_assigned,
        'skipped_busy_agents', v_busy_agents,
        'notifications', v_notifications,
        'slot_batches', v_batches
    );
END;
$$;

COMMENT ON FUNCTION autopilot.assign_pending_tasks() IS
'task-assignment: takes assigned tasks back from agents silent longer than agents.silence_timeout, then gives pending tasks (highest priority, then oldest first) to active, recently seen agents with every required skill and free capacity, each to the least-loaded one (lowest active_tasks/capacity, then id); one NOTIFY autopilot_task_assigned per agent, payload {"agent_id", "task_ids"}. Unassignable tasks (no active agent with capacity has their skills) stay pending and are counted, as are blocked ones (a task they depend on, autopilot.task_dependencies, has not succeeded).';
