-- Every foreign key in schema autopilot has an index on its referencing side: deleting (or
-- changing the key of) a referenced row looks its referencing rows up, once per row; without an
-- index, each lookup scans the whole referencing table (deleting 20,287 tasks took 15 s while
-- analysis_results.task_id had none).
BEGIN;
SELECT plan(4);

-- A foreign key is covered by an index whose leading key columns are its referencing columns
-- (in any order). A partial index covers it only when its predicate is implied by the lookup
-- (referencing column = value): IS NOT NULL of referencing columns, nothing else.
CREATE TEMPORARY VIEW tap_unindexed_foreign_keys AS
SELECT format('%s.%s', r.relname, c.conname) AS foreign_key
FROM pg_constraint AS c
INNER JOIN pg_class AS r ON c.conrelid = r.oid
WHERE
    c.contype = 'f'
    AND r.relnamespace = 'autopilot'::regnamespace
    AND NOT EXISTS (
        SELECT FROM pg_index AS i
        WHERE
            i.indrelid = c.conrelid
            AND i.indisvalid
            AND i.indnkeyatts >= cardinality(c.conkey)
            AND array(
                SELECT u.k FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS u (k, n)
                WHERE u.n <= cardinality(c.conkey)
                ORDER BY u.k
            ) = array(
                SELECT f.k FROM unnest(c.conkey) AS f (k)
                ORDER BY f.k
            )
            AND (
                i.indpred IS NULL
                OR NOT EXISTS (
                    SELECT FROM
                        regexp_split_to_table(
                            regexp_replace(pg_get_expr(i.indpred, i.indrelid), '[()]', '', 'g'), ' AND '
                        ) AS p (conjunct)
                    WHERE p.conjunct NOT IN (
                        SELECT format('%I IS NOT NULL', a.attname) FROM pg_attribute AS a
                        WHERE a.attrelid = c.conrelid AND a.attnum = any(c.conkey)
                    )
                )
            )
    );

SELECT is_empty(
    $$SELECT foreign_key FROM tap_unindexed_foreign_keys$$,
    'every foreign key''s referencing columns lead an index (deletes of referenced rows do not scan)'
);

SELECT cmp_ok(
    (
        SELECT count(*)::integer FROM pg_constraint AS c
        WHERE c.contype = 'f' AND c.connamespace = 'autopilot'::regnamespace
    ),
    '>=', 9,
    '... and the check is not vacuous: the schema''s foreign keys are there'
);

SELECT has_index(
    'autopilot', 'analysis_results', 'analysis_results_task_id_idx', ARRAY['task_id'],
    'analysis_results.task_id is indexed (deleting tasks sets it to NULL)'
);

-- the check itself: a foreign key with no index, one with a partial index whose predicate the
-- lookup does not imply, and one covered by a composite index are told apart
CREATE TABLE autopilot.tap_fk_probe (
    id integer PRIMARY KEY,
    agent_id bigint CONSTRAINT tap_fk_probe_agent_fkey REFERENCES autopilot.agents (id),
    task_id bigint CONSTRAINT tap_fk_probe_task_fkey REFERENCES autopilot.tasks (id),
    node_id bigint CONSTRAINT tap_fk_probe_node_fkey REFERENCES autopilot.graph_nodes (id)
);
CREATE INDEX tap_fk_probe_task_idx ON autopilot.tap_fk_probe (task_id, id) WHERE task_id IS NOT NULL;
CREATE INDEX tap_fk_probe_node_idx ON autopilot.tap_fk_probe (node_id) WHERE id > 0;
CREATE INDEX tap_fk_probe_id_agent_idx ON autopilot.tap_fk_probe (id, agent_id);
SELECT set_eq(
    $$SELECT foreign_key FROM tap_unindexed_foreign_keys WHERE foreign_key LIKE 'tap\_fk\_probe.%'$$,
    ARRAY['tap_fk_probe.tap_fk_probe_agent_fkey', 'tap_fk_probe.tap_fk_probe_node_fkey'],
    'the check finds a foreign key that no index leads with, or only a partial index it does not imply'
);

SELECT * FROM finish();
ROLLBACK;
