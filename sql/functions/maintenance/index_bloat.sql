CREATE FUNCTION autopilot.index_bloat()
RETURNS TABLE (
    index_name text,
    table_name text,
    size_bytes bigint,
    bloat_ratio double precision,
    method text
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Bloat of every valid btree index of schema autopilot: the share of its size that a
-- rebuild would give back. Measured with pgstattuple's pgstatindex() when that
-- extension is installed (it reads the whole index); otherwise estimated from the
-- planner's statistics: the size the index's entries need at its fillfactor
-- (8-byte tuple header + key widths, MAXALIGNed, + 4-byte line pointer per entry;
-- 24-byte page header + 16-byte btree special space per page; one meta page),
-- against its real size. An index whose table was never analyzed has no estimate.
DECLARE
    v_pgstattuple_schema text;
    v_index record;
    v_density double precision;
BEGIN
    SELECT n.nspname
    INTO v_pgstattuple_schema
    FROM pg_extension AS e
    INNER JOIN pg_namespace AS n ON e.extnamespace = n.oid
    WHERE e.extname = 'pgstattuple';

    FOR v_index IN
        SELECT
            i.indexrelid,
            ic.relname AS index_relname,
            tc.relname AS table_relname,
            pg_relation_size(i.indexrelid) AS bytes,
            ic.relpages,
            ic.reltuples,
            coalesce((
                SELECT split_part(o, '=', 2)::integer
                FROM unnest(ic.reloptions) AS o WHERE o LIKE 'fillfactor=%'
            ), 90) AS fillfactor,
            current_setting('block_size')::integer AS block_size,
            (
                SELECT sum(coalesce(
                    s.avg_width,
                    CASE WHEN t.typlen > 0 THEN t.typlen ELSE 32 END
                ))
                FROM pg_attribute AS a
                INNER JOIN pg_type AS t ON a.atttypid = t.oid
                LEFT JOIN pg_attribute AS ta
                    ON ta.attrelid = i.indrelid AND ta.attnum = i.indkey[a.attnum - 1]
                LEFT JOIN pg_stats AS s
                    ON s.schemaname = 'autopilot'
                   AND ((ta.attname IS NOT NULL AND s.tablename = tc.relname AND s.attname = ta.attname)
                        OR (ta.attname IS NULL AND s.tablename = ic.relname AND s.attname = a.attname))
                WHERE a.attrelid = i.indexrelid AND a.attnum > 0
            ) AS key_width
        FROM pg_index AS i
        INNER JOIN pg_class AS ic ON i.indexrelid = ic.oid
        INNER JOIN pg_class AS tc ON i.indrelid = tc.oid
        INNER JOIN pg_am AS am ON ic.relam = am.oid
        WHERE ic.relnamespace = 'autopilot'::regnamespace
          AND am.amname = 'btree'
          AND i.indisvalid
        ORDER BY 2
    LOOP
        index_name := format('autopilot.%I', v_index.index_relname);
        table_name := format('autopilot.%I', v_index.table_relname);
        size_bytes := v_index.bytes;
        IF v_pgstattuple_schema IS NOT NULL THEN
            EXECUTE format('SELECT avg_leaf_density FROM %I.pgstatindex($1)', v_pgstattuple_schema)
            INTO v_density USING v_index.indexrelid;
            method := 'pgstattuple';
            bloat_ratio := CASE WHEN v_density = 'NaN' THEN 0
                                ELSE greatest(0, 1 - v_density / v_index.fillfactor) END;
        ELSIF v_index.reltuples < 0 OR v_index.relpages = 0 THEN
            method := 'no statistics';
            bloat_ratio := NULL;
        ELSE
            method := 'estimate';
            bloat_ratio := greatest(0, 1 - (
                1 + ceil(
                    v_index.reltuples * (8 * ceil((8 + v_index.key_width) / 8.0) + 4)
                    / ((v_index.block_size - 24 - 16) * v_index.fillfactor / 100.0)
                )
            ) / v_index.relpages);
        END IF;
        RETURN NEXT;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION autopilot.index_bloat() IS
'Bloat of every valid btree index of schema autopilot (share of its size a rebuild would give back): measured with pgstattuple when installed, else estimated from planner statistics (method says which; NULL without statistics).';
