CREATE TABLE autopilot.agent_knowledge (
    agent_id bigint NOT NULL,
    summary jsonb NOT NULL DEFAULT '{}',
    computed_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT agent_knowledge_pkey PRIMARY KEY (agent_id),
    CONSTRAINT agent_knowledge_agent_id_fkey FOREIGN KEY (agent_id)
    REFERENCES autopilot.agents (id) ON DELETE CASCADE
);

COMMENT ON TABLE autopilot.agent_knowledge IS
'Per-agent knowledge summary (task outcomes, skills, patterns met), readable by an agent in one query.';
