CREATE TABLE autopilot.graph_edges (
    source_id bigint NOT NULL,
    target_id bigint NOT NULL,
    weight double precision NOT NULL DEFAULT 1,
    kind text NOT NULL DEFAULT 'depends_on',
    CONSTRAINT graph_edges_pkey PRIMARY KEY (source_id, target_id),
    CONSTRAINT graph_edges_source_id_fkey FOREIGN KEY (source_id)
    REFERENCES autopilot.graph_nodes (id) ON DELETE CASCADE,
    CONSTRAINT graph_edges_target_id_fkey FOREIGN KEY (target_id)
    REFERENCES autopilot.graph_nodes (id) ON DELETE CASCADE,
    CONSTRAINT graph_edges_weight_check CHECK (weight > 0 AND weight < 'infinity')
);

CREATE INDEX graph_edges_target_id_idx ON autopilot.graph_edges (target_id);

COMMENT ON TABLE autopilot.graph_edges IS
'Directed, weighted edges of the code graph; the primary key guarantees one edge per pair, so PageRank never de-duplicates at run time.';
