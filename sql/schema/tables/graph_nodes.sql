CREATE TABLE autopilot.graph_nodes (
    id bigint GENERATED ALWAYS AS IDENTITY,
    codebase text NOT NULL,
    node_key text NOT NULL,
    kind text NOT NULL DEFAULT 'module',
    pagerank double precision,
    attributes jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT graph_nodes_pkey PRIMARY KEY (id),
    CONSTRAINT graph_nodes_codebase_node_key_key UNIQUE (codebase, node_key)
);

-- graph-populate: the nodes of one file, and the definitions of one name
CREATE INDEX graph_nodes_file_idx ON autopilot.graph_nodes (codebase, (attributes ->> 'file'));
CREATE INDEX graph_nodes_name_idx ON autopilot.graph_nodes (codebase, (attributes ->> 'name'))
WHERE kind <> 'file';

COMMENT ON TABLE autopilot.graph_nodes IS 'Nodes of the code dependency graph (written by graph-populate), with their PageRank.';
