CREATE TABLE autopilot.tasks (
    id bigint GENERATED ALWAYS AS IDENTITY,
    title text NOT NULL,
    required_skills text[] NOT NULL DEFAULT '{}',
    priority integer NOT NULL DEFAULT 0,
    status text NOT NULL DEFAULT 'pending',
    agent_id bigint,
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    assigned_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    plan_key text,
    CONSTRAINT tasks_pkey PRIMARY KEY (id),
    CONSTRAINT tasks_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES autopilot.agents (id),
    CONSTRAINT tasks_status_check CHECK (
        status IN ('pending', 'assigned', 'running', 'succeeded', 'failed', 'cancelled')
    ),
    CONSTRAINT tasks_agent_check CHECK (
        (status IN ('assigned', 'running')) <= (agent_id IS NOT NULL)
    ),
    -- planning-seed adds each item of the plan once, by its key
    CONSTRAINT tasks_plan_key_key UNIQUE (plan_key)
);

-- task assignment: pending tasks, highest priority first, then oldest
CREATE INDEX tasks_pending_idx ON autopilot.tasks (priority DESC, created_at, id)
WHERE status = 'pending';
-- load per agent and per-agent history
CREATE INDEX tasks_agent_id_status_idx ON autopilot.tasks (agent_id, status);
-- metrics: finished tasks by hour
CREATE INDEX tasks_finished_at_idx ON autopilot.tasks (finished_at)
WHERE finished_at IS NOT NULL;

COMMENT ON TABLE autopilot.tasks IS 'Work for the agents: what skills it needs, its priority, who holds it and how it ended.';
COMMENT ON COLUMN autopilot.tasks.status IS 'pending, assigned, running, succeeded, failed, cancelled.';
COMMENT ON COLUMN autopilot.tasks.plan_key IS
'The key of the plan item this task was seeded from (planning-seed, autopilot.seed_plan); NULL for tasks written otherwise.';
