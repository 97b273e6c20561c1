-- autopilot.finish_index_maintenance_item(): how one index statement ended.
BEGIN;
SELECT plan(6);

SELECT has_function(
    'autopilot', 'finish_index_maintenance_item', ARRAY['bigint', 'boolean', 'text'],
    'autopilot.finish_index_maintenance_item(bigint, boolean, text) exists'
);

DELETE FROM autopilot.index_maintenance;
INSERT INTO autopilot.index_maintenance (index_name, action, statement, reason)
VALUES
('autopilot.agents_pkey', 'reindex', 'REINDEX INDEX CONCURRENTLY autopilot.agents_pkey', 'test'),
('autopilot.tasks_pkey', 'reindex', 'REINDEX INDEX CONCURRENTLY autopilot.tasks_pkey', 'test');

SELECT is(
    (autopilot.finish_index_maintenance_item(
        (
            SELECT id FROM autopilot.index_maintenance
            WHERE index_name = 'autopilot.agents_pkey'
        ), true, 'ok'
    )).state,
    'done', 'a statement that ran is done'
);
SELECT is(
    (autopilot.finish_index_maintenance_item(
        (
            SELECT id FROM autopilot.index_maintenance
            WHERE index_name = 'autopilot.tasks_pkey'
        ), false, 'deadlock'
    )).message,
    'deadlock', 'a failed statement keeps its error'
);
SELECT ok(
    (SELECT bool_and(finished_at IS NOT NULL) FROM autopilot.index_maintenance),
    'finished statements carry their finish time'
);
SELECT throws_ok(
    $$SELECT autopilot.finish_index_maintenance_item(
        (SELECT id FROM autopilot.index_maintenance WHERE index_name = 'autopilot.tasks_pkey'), true)$$,
    'P0002', NULL, 'a finished statement cannot be finished again'
);
SELECT throws_ok(
    $$SELECT autopilot.finish_index_maintenance_item(-1, true)$$,
    'P0002', NULL, 'an unknown item raises no_data_found'
);

SELECT * FROM finish();
ROLLBACK;
