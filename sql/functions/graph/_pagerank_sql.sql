CREATE FUNCTION autopilot._pagerank_sql(
    p_node_ids bigint[],
    p_sources bigint[],
    p_targets bigint[],
    p_weights double precision[],
    p_damping double precision,
    p_tolerance double precision,
    p_max_iterations integer,
    OUT ranks double precision[],
    OUT iterations integer,
    OUT delta double precision,
    OUT ignored_edges bigint
)
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- PageRank's power iteration in SQL: the same computation, arguments, results
-- and errors as the compiled autopilot._pagerank_kernel, for servers where the
-- extension's library cannot be loaded (installed as a plain schema, or by a
-- role that may not create C functions). Each iteration is one join and one
-- aggregate over every edge: expect seconds per iteration on a million edges.
DECLARE
    v_count integer := coalesce(cardinality(p_node_ids), 0);
    v_edge_source integer [];
    v_edge_target integer [];
    v_edge_share double precision [];
    v_dangling integer [];
    v_next double precision [];
    v_base double precision;
BEGIN
    IF num_nulls(p_node_ids, p_sources, p_targets, p_weights, p_damping, p_tolerance, p_max_iterations) > 0 THEN
        RAISE EXCEPTION '_pagerank_sql: no argument may be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT (p_damping >= 0 AND p_damping < 1) THEN
        RAISE EXCEPTION 'pagerank damping must be at least 0 and less than 1, not %', p_damping
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT (p_tolerance > 0 AND p_tolerance < 'infinity') THEN
        RAISE EXCEPTION 'pagerank tolerance must be a positive number, not %', p_tolerance
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_max_iterations < 1 THEN
        RAISE EXCEPTION 'pagerank max_iterations must be at least 1, not %', p_max_iterations
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF array_position(p_node_ids, NULL) IS NOT NULL OR array_position(p_sources, NULL) IS NOT NULL
        OR array_position(p_targets, NULL) IS NOT NULL OR array_position(p_weights, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'pagerank arrays must not contain NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF cardinality(p_sources) <> cardinality(p_targets) OR cardinality(p_sources) <> cardinality(p_weights) THEN
        RAISE EXCEPTION 'sources, targets and weights differ in length (%, % and %)',
            cardinality(p_sources), cardinality(p_targets), cardinality(p_weights)
        USING ERRCODE = 'array_subscript_error';
    END IF;
    IF EXISTS (
        SELECT
        FROM unnest(p_node_ids) WITH ORDINALITY AS n (id, position)
        WHERE n.position > 1 AND n.id <= p_node_ids[n.position - 1]
    ) THEN
        RAISE EXCEPTION 'node_ids must be ascending and unique' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT FROM unnest(p_weights) AS w (weight) WHERE NOT (w.weight > 0 AND w.weight < 'infinity')) THEN
        RAISE EXCEPTION 'pagerank edge weights must be positive and finite' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- edges as positions in p_node_ids, each with its damped share of its source's rank
    WITH nodes AS (
        SELECT
            n.id,
            n.position::integer AS position
        FROM unnest(p_node_ids) WITH ORDINALITY AS n (id, position)
    ),

    edges AS (
        SELECT
            s.position AS source,
            t.position AS target,
            e.weight
        FROM unnest(p_sources, p_targets, p_weights) AS e (source_id, target_id, weight)
        INNER JOIN nodes AS s ON e.source_id = s.id
        INNER JOIN nodes AS t ON e.target_id = t.id
    ),

    out_weight AS (
        SELECT
            e.source,
            sum(e.weight) AS total
        FROM edges AS e
        GROUP BY e.source
    )

    SELECT
        coalesce(array_agg(e.source), '{}'),
        coalesce(array_agg(e.target), '{}'),
        coalesce(array_agg(p_damping * e.weight / o.total), '{}')
    INTO v_edge_source, v_edge_target, v_edge_share
    FROM edges AS e
    INNER JOIN out_weight AS o ON e.source = o.source;

    ignored_edges := cardinality(p_sources) - cardinality(v_edge_source);

    SELECT coalesce(array_agg(g.position), '{}')
    INTO v_dangling
    FROM generate_series(1, v_count) AS g (position)
    WHERE g.position <> ALL(v_edge_source);

    iterations := 0;
    delta := 0;
    IF v_count = 0 THEN
        ranks := '{}';
        RETURN;
    END IF;
    ranks := array_fill(1.0::double precision / v_count, ARRAY[v_count]);

    WHILE iterations < p_max_iterations LOOP
        SELECT (1 - p_damping) / v_count + p_damping * coalesce(sum(ranks[d.position]), 0) / v_count
        INTO v_base
        FROM unnest(v_dangling) AS d (position);

        SELECT array_agg(v_base + coalesce(i.inflow, 0) ORDER BY g.position)
        INTO v_next
        FROM generate_series(1, v_count) AS g (position)
        LEFT JOIN (
            SELECT
                e.target,
                sum(ranks[e.source] * e.share) AS inflow
            FROM unnest(v_edge_source, v_edge_target, v_edge_share) AS e (source, target, share)
            GROUP BY e.target
        ) AS i ON g.position = i.target;

        SELECT sum(abs(u.new_rank - u.old_rank))
        INTO delta
        FROM unnest(v_next, ranks) AS u (new_rank, old_rank);

        ranks := v_next;
        iterations := iterations + 1;
        EXIT WHEN delta < p_tolerance;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION autopilot._pagerank_sql(
    bigint[], bigint[], bigint[], double precision[], double precision, double precision, integer
) IS
'Private: PageRank power iteration in SQL, identical in arguments and results to autopilot._pagerank_kernel; '
'recalculate_all_pagerank() uses it where the compiled kernel is not installed.';
