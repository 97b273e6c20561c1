-- autopilot.plan_index_maintenance(): which index statements a cycle of index-reindex runs.
BEGIN;
SELECT plan(8);

SELECT has_function(
    'autopilot', 'plan_index_maintenance', ARRAY[]::text[], 'autopilot.plan_index_maintenance() exists'
);

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
DELETE FROM autopilot.index_maintenance;
INSERT INTO autopilot.agents (name) SELECT 'plan-agent-' || lpad(g::text, 6, '0') FROM generate_series(1, 20000) AS g;
DELETE FROM autopilot.agents
WHERE id % 10 <> 0;
ANALYZE autopilot.agents;

SELECT set_config(
    'autopilot.tap_size',
    (
        SELECT max(pg_relation_size(indexrelid)) FROM pg_index
        WHERE indrelid = 'autopilot.agents'::regclass
    )::text,
    true
);

-- the size floor keeps a bloated but small index out
SELECT autopilot.set_setting('reindex.min_size_bytes', (current_setting('autopilot.tap_size')::bigint + 1)::text);
SELECT autopilot.set_setting('reindex.bloat_threshold', '0.5');
SELECT is(autopilot.plan_index_maintenance(), 0, 'nothing is planned below the size floor');

SELECT autopilot.set_setting('reindex.min_size_bytes', '0');
-- an invalid leftover of a failed REINDEX CONCURRENTLY
CREATE INDEX agents_pkey_ccnew ON autopilot.agents (id);
UPDATE pg_index SET indisvalid = false
WHERE indexrelid = 'autopilot.agents_pkey_ccnew'::regclass;

SELECT cmp_ok(autopilot.plan_index_maintenance(), '>=', 2, 'the leftover and the bloated index are planned');
SELECT is(
    (
        SELECT statement FROM autopilot.index_maintenance
        ORDER BY id LIMIT 1
    ),
    'DROP INDEX CONCURRENTLY IF EXISTS autopilot.agents_pkey_ccnew',
    'invalid leftovers are dropped first, concurrently'
);
SELECT ok(
    EXISTS (
        SELECT FROM autopilot.index_maintenance
        WHERE
            statement = 'REINDEX INDEX CONCURRENTLY autopilot.agents_pkey' AND state = 'pending'
            AND reason LIKE 'bloat %'
    ),
    'the bloated index is rebuilt concurrently, with the measured bloat as its reason'
);
SELECT is_empty(
    $$SELECT statement FROM autopilot.index_maintenance
      WHERE action = 'reindex' AND (bloat_ratio < 0.5 OR index_name LIKE '%\_ccnew')$$,
    'nothing under the bloat threshold, and no leftover, is rebuilt'
);
SELECT is(autopilot.plan_index_maintenance(), 0, 'no new cycle while one is open');

SELECT throws_ok(
    $$SELECT autopilot.set_setting('reindex.bloat_threshold', '1.5')$$,
    '22023', NULL, 'a bloat threshold above 1 is rejected'
);

SELECT * FROM finish();
ROLLBACK;
