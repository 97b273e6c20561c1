-- autopilot.index_bloat(): estimated (or measured) bloat of the autopilot btree indexes.
BEGIN;
SELECT plan(7);

SELECT has_function('autopilot', 'index_bloat', ARRAY[]::text[], 'autopilot.index_bloat() exists');

-- start from compact indexes with current statistics: the rows earlier test files
-- rolled back leave real bloat behind in the indexes
DO $$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN SELECT oid FROM pg_class WHERE relnamespace = 'autopilot'::regnamespace AND relkind = 'r' LOOP
        EXECUTE format('REINDEX TABLE %s', v_table);
        EXECUTE format('ANALYZE %s', v_table);
    END LOOP;
END;
$$;
-- a table full of rows, its index compact: then nine rows in ten deleted and vacuumed,
-- which leaves the index's pages mostly empty
INSERT INTO autopilot.agents (name) SELECT 'bloat-agent-' || lpad(g::text, 6, '0') FROM generate_series(1, 20000) AS g;
ANALYZE autopilot.agents;

CREATE TEMPORARY TABLE tap_before ON COMMIT DROP AS
SELECT * FROM autopilot.index_bloat()
WHERE index_name = 'autopilot.agents_pkey';

SELECT is(
    (SELECT method FROM tap_before), 'estimate',
    'without pgstattuple the bloat is estimated from planner statistics'
);
SELECT cmp_ok(
    (SELECT bloat_ratio FROM tap_before), '<', 0.15::double precision,
    'a freshly filled primary key shows little bloat'
);

DELETE FROM autopilot.agents
WHERE id % 10 <> 0;
-- VACUUM cannot run in a transaction; the planner statistics are what the estimate reads
ANALYZE autopilot.agents;

SELECT cmp_ok(
    (
        SELECT bloat_ratio FROM autopilot.index_bloat()
        WHERE index_name = 'autopilot.agents_pkey'
    ),
    '>', 0.8::double precision,
    'with nine rows in ten gone, most of the index is bloat'
);
SELECT is(
    (
        SELECT size_bytes FROM autopilot.index_bloat()
        WHERE index_name = 'autopilot.agents_pkey'
    ),
    pg_relation_size('autopilot.agents_pkey'),
    'size_bytes is the index''s size on disk'
);
SELECT is_empty(
    $$SELECT index_name FROM autopilot.index_bloat() AS b
      INNER JOIN pg_class AS c ON c.oid = b.index_name::regclass
      INNER JOIN pg_am AS am ON am.oid = c.relam
      WHERE am.amname <> 'btree'$$,
    'only btree indexes are reported (a GIN index has no comparable estimate)'
);
SELECT ok(
    (
        SELECT bool_and(table_name LIKE 'autopilot.%' AND index_name LIKE 'autopilot.%')
        FROM autopilot.index_bloat()
    ),
    'every index and table is named with its schema'
);

SELECT * FROM finish();
ROLLBACK;
