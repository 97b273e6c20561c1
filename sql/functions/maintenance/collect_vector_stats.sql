CREATE FUNCTION autopilot.collect_vector_stats()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- vector-stats. An embedding column is a column of schema autopilot named
-- "embedding" or "*_embedding" of an array type; its model is in the column
-- "<name>_model" of the same table when there is one. For each: rows, rows
-- without an embedding, rows per dimension and per model, into
-- autopilot.vector_stats_history; then ANALYZE of each such table.
DECLARE
    v_column record;
    v_model_column text;
    v_row_count bigint;
    v_missing_count bigint;
    v_dimensions jsonb;
    v_models jsonb;
    v_tables text[] := '{}'::text[];
    v_table text;
    v_columns integer := 0;
BEGIN
    FOR v_column IN
        SELECT c.relname AS table_name, a.attname AS column_name, c.oid AS table_oid
        FROM pg_attribute AS a
        INNER JOIN pg_class AS c ON a.attrelid = c.oid
        INNER JOIN pg_type AS t ON a.atttypid = t.oid
        WHERE c.relnamespace = 'autopilot'::regnamespace
          AND c.relkind = 'r'
          AND a.attnum > 0 AND NOT a.attisdropped
          AND (a.attname = 'embedding' OR a.attname LIKE '%\_embedding')
          AND t.typcategory = 'A'
        ORDER BY 1, 2
    LOOP
        SELECT a.attname INTO v_model_column
        FROM pg_attribute AS a
        WHERE a.attrelid = v_column.table_oid
          AND a.attname = v_column.column_name || '_model'
          AND a.attnum > 0 AND NOT a.attisdropped;

        EXECUTE format(
            $q$
            SELECT
                count(*),
                count(*) FILTER (WHERE %1$I IS NULL),
                coalesce((SELECT jsonb_object_agg(d.dims, d.n) FROM (
                    SELECT cardinality(%1$I)::text AS dims, count(*) AS n
                    FROM autopilot.%2$I WHERE %1$I IS NOT NULL GROUP BY 1) AS d), '{}')
            FROM autopilot.%2$I
            $q$,
            v_column.column_name, v_column.table_name
        ) INTO v_row_count, v_missing_count, v_dimensions;

        IF v_model_column IS NULL THEN
            -- no model column: every row with an embedding is of an unknown model
            v_models := CASE
                WHEN v_row_count > v_missing_count
                    THEN jsonb_build_object('(unknown)', v_row_count - v_missing_count)
                ELSE '{}'::jsonb
            END;
        ELSE
            EXECUTE format(
                $q$
                SELECT coalesce(jsonb_object_agg(m.model, m.n), '{}') FROM (
                    SELECT coalesce(%3$I::text, '(unknown)') AS model, count(*) AS n
                    FROM autopilot.%2$I WHERE %1$I IS NOT NULL GROUP BY 1) AS m
                $q$,
                v_column.column_name, v_column.table_name, v_model_column
            ) INTO v_models;
        END IF;

        INSERT INTO autopilot.vector_stats_history (
            table_name, column_name, row_count, missing_count, dimensions, models
        )
        VALUES (
            v_column.table_name, v_column.column_name, v_row_count,
            v_missing_count, v_dimensions, v_models
        );
        v_columns := v_columns + 1;
        IF NOT v_column.table_name = ANY(v_tables) THEN
            v_tables := v_tables || v_column.table_name::text;
        END IF;
    END LOOP;

    -- fresh planner statistics for the tables that hold embeddings
    FOREACH v_table IN ARRAY v_tables LOOP
        EXECUTE format('ANALYZE autopilot.%I', v_table);
    END LOOP;

    RETURN jsonb_build_object(
        'rows_affected', v_columns,
        'message', format('%s embedding columns measured; analyzed %s', v_columns,
                          coalesce(nullif(array_to_string(v_tables, ', '), ''), 'nothing')),
        'tables', to_jsonb(v_tables)
    );
END;
$$;

COMMENT ON FUNCTION autopilot.collect_vector_stats() IS
'vector-stats: for every embedding column of autopilot (named embedding or *_embedding, an array), records rows, rows missing an embedding, rows per dimension and per model into autopilot.vector_stats_history, then ANALYZEs those tables.';
