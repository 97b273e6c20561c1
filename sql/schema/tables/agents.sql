CREATE TABLE autopilot.agents (
    id bigint GENERATED ALWAYS AS IDENTITY,
    name text NOT NULL,
    skills text[] NOT NULL DEFAULT '{}',
    capacity integer NOT NULL DEFAULT 1,
    status text NOT NULL DEFAULT 'active',
    last_seen_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agents_pkey PRIMARY KEY (id),
    CONSTRAINT agents_name_key UNIQUE (name),
    CONSTRAINT agents_capacity_check CHECK (capacity >= 0),
    CONSTRAINT agents_status_check CHECK (status IN ('active', 'paused', 'retired'))
);

CREATE INDEX agents_skills_idx ON autopilot.agents USING gin (skills);

COMMENT ON TABLE autopilot.agents IS 'The platform''s AI agents: their skills, how many tasks they take at once, and when they were last seen.';
COMMENT ON COLUMN autopilot.agents.capacity IS 'How many assigned or running tasks the agent may hold at once.';
COMMENT ON COLUMN autopilot.agents.last_seen_at IS 'Last heartbeat of the agent; task assignment takes tasks back from agents silent for too long.';
