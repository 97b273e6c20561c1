CREATE TABLE autopilot.agents (
    id bigint GENERATED ALWAYS AS IDENTITY,
    name text NOT NULL,
    skills text[] NOT NULL DEFAULT '{}',
    capacity integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'active',
    last_seen_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    active_tasks integer NOT NULL DEFAULT 0,
    CONSTRAINT agents_pkey PRIMARY KEY (id),
    CONSTRAINT agents_name_key UNIQUE (name),
    CONSTRAINT agents_capacity_check CHECK (capacity >= 0),
    CONSTRAINT agents_status_check CHECK (status IN ('active', 'paused', 'retired')),
    -- the schema's guarantee that no agent ever holds more tasks than its capacity
    CONSTRAINT agents_active_tasks_check CHECK (active_tasks BETWEEN 0 AND capacity)
);

CREATE INDEX agents_skills_idx ON autopilot.agents USING gin (skills);

COMMENT ON TABLE autopilot.agents IS 'The platform''s AI agents: their skills, how many tasks they take at once, and when they were last seen.';
COMMENT ON COLUMN autopilot.agents.skills IS
'What the agent can do: it may hold a task only when it has every skill the task requires (tasks.required_skills <@ skills).';
COMMENT ON COLUMN autopilot.agents.capacity IS 'How many assigned or running tasks the agent may hold at once.';
COMMENT ON COLUMN autopilot.agents.last_seen_at IS 'Last heartbeat of the agent; task assignment takes tasks back from agents silent for too long.';
COMMENT ON COLUMN autopilot.agents.active_tasks IS
'How many tasks the agent holds (status assigned or running), kept exact by the statement triggers on autopilot.tasks (autopilot._track_agent_load); always at most capacity (agents_active_tasks_check). Read it, never set it: a new agent starts at 0 and a direct change is refused.';
