CREATE TABLE autopilot.agent_knowledge_pending (
    changed_xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    agent_id bigint NOT NULL,
    CONSTRAINT agent_knowledge_pending_pkey PRIMARY KEY (changed_xid, agent_id)
);

COMMENT ON TABLE autopilot.agent_knowledge_pending IS
'Agents whose task outcomes changed: one row per agent and writing transaction, added by the statement triggers on autopilot.tasks and consumed by agent-knowledge-update once the transaction has ended. No foreign key: a deleted agent''s rows are simply consumed.';
COMMENT ON COLUMN autopilot.agent_knowledge_pending.changed_xid IS
'The transaction that changed the agent''s tasks (pg_current_xact_id()).';
