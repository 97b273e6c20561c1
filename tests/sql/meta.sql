-- Conventions (DESIGN.md), driven by the system catalogs so that every
-- function, procedure, table and index of schema autopilot is covered at once.
BEGIN;
SELECT plan(20);

CREATE TEMPORARY VIEW tap_routines AS
SELECT
    p.oid,
    p.oid::regprocedure::text AS signature,
    p.proname,
    p.prokind,
    p.proconfig,
    p.prosecdef
FROM pg_proc AS p
WHERE p.pronamespace = 'autopilot'::regnamespace;

CREATE TEMPORARY VIEW tap_relations AS
SELECT
    c.oid,
    c.relname,
    c.relkind
FROM pg_class AS c
WHERE c.relnamespace = 'autopilot'::regnamespace;

-- the public interface; everything else is private and starts with _
SELECT set_eq(
    $$SELECT proname FROM tap_routines WHERE proname !~ '^_'$$,
    ARRAY[
        'version', 'get_setting', 'set_setting', 'reset_setting', 'cron_expression_error', 'is_valid_cron',
        'pg_cron_database', 'plan_cron_sync', 'sync_schedules', 'set_job_schedule', 'set_job_enabled',
        'set_job_timeout', 'set_job_retries', 'reset_job', 'run_job', 'run_scheduled_job', 'collect_vector_stats',
        'analyze_database',
        'index_bloat', 'plan_index_maintenance', 'finish_index_maintenance_item', 'reindex_bloated_indexes',
        'learn_patterns_from_analysis', 'update_agent_knowledge', 'assign_pending_tasks',
        'refresh_performance_metrics', 'recalculate_all_pagerank', 'sync_learning_to_centralcloud',
        'merge_central_patterns', 'enqueue', 'enqueue_many', 'claim', 'complete', 'complete_many', 'fail',
        'snooze', 'cancel', 'retry', 'heartbeat', 'release', 'rescue_orphaned_jobs', 'enqueue_startup_jobs',
        'search_code', 'search_knowledge', 'create_vector_index', 'drop_vector_index',
        'populate_code_graph', 'seed_plan', 'record_analysis_snapshot'
    ],
    'the public functions and procedures are exactly the documented ones (each has its own test file)'
);

-- pinned search_path
SELECT is_empty(
    $$SELECT signature FROM tap_routines
      WHERE prokind = 'f' AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY(proconfig), false)
        AND signature NOT IN ('autopilot._inner_product(real[],real[])', 'autopilot._code_tokens(text)')$$,
    'every function pins search_path = pg_catalog, pg_temp (but the per-row C inner product and code '
    || 'tokenizer: they resolve no name, and the SET would cost 40% of a search)'
);
SELECT is_empty(
    $$SELECT signature FROM tap_routines WHERE prokind = 'p' AND proconfig IS NOT NULL$$,
    'procedures carry no SET clause (it would forbid their COMMITs)'
);
SELECT is_empty(
    $$SELECT signature FROM tap_routines, unnest(proconfig) AS s (setting)
      WHERE s.setting !~ '^search_path='
        AND NOT (signature = 'autopilot.complete_many(bigint[],integer[])'
                 AND s.setting = 'plan_cache_mode=force_custom_plan')$$,
    'no routine changes any other setting (but complete_many, planned for each batch of completions)'
);

-- comments: \df+ and \dt+ read as a manual
SELECT is_empty(
    $$SELECT signature FROM tap_routines WHERE obj_description(oid, 'pg_proc') IS NULL$$,
    'every function and procedure has a COMMENT'
);
SELECT is_empty(
    $$SELECT relname FROM tap_relations
      WHERE relkind IN ('r', 'p', 'v', 'm', 'f') AND obj_description(oid, 'pg_class') IS NULL$$,
    'every table and view has a COMMENT'
);
SELECT is_empty(
    $$SELECT t.typname FROM pg_type AS t
      WHERE t.typnamespace = 'autopilot'::regnamespace AND t.typtype IN ('c', 'e', 'd')
        AND NOT EXISTS (SELECT FROM pg_class AS c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
        AND obj_description(t.oid, 'pg_type') IS NULL$$,
    'every type has a COMMENT'
);

-- privileges: nothing for PUBLIC, no SECURITY DEFINER
SELECT is_empty(
    $$SELECT signature FROM tap_routines WHERE has_function_privilege('public', oid, 'EXECUTE')$$,
    'no function or procedure is executable by PUBLIC'
);
SELECT ok(NOT has_schema_privilege('public', 'autopilot', 'USAGE'), 'PUBLIC has no USAGE on schema autopilot');
SELECT ok(NOT has_schema_privilege('public', 'autopilot', 'CREATE'), 'PUBLIC has no CREATE on schema autopilot');
SELECT is_empty(
    $$SELECT relname FROM tap_relations
      WHERE relkind IN ('r', 'p', 'v', 'm')
        AND has_table_privilege('public', oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')$$,
    'PUBLIC has no privilege on any table or view'
);
SELECT is_empty(
    $$SELECT signature FROM tap_routines WHERE prosecdef AND proname <> '_health_cron_jobs'$$,
    'no function is SECURITY DEFINER but _health_cron_jobs (pg_cron''s row security, for autopilot.health)'
);
SELECT is_empty(
    $$SELECT signature FROM tap_routines AS r
      INNER JOIN pg_language AS l ON l.oid = (SELECT p.prolang FROM pg_proc AS p WHERE p.oid = r.oid)
      WHERE l.lanname NOT IN ('plpgsql', 'sql')
        AND r.proname NOT IN ('_pagerank_kernel', '_inner_product', '_code_tokens')$$,
    'every routine is written in PL/pgSQL or SQL, but the compiled kernels (src/pagerank.c, src/vector.c, '
    || 'src/code_tokens.c)'
);

-- keys and names
SELECT is_empty(
    $$SELECT relname FROM tap_relations AS r
      WHERE r.relkind IN ('r', 'p')
        AND NOT EXISTS (SELECT FROM pg_constraint AS c WHERE c.conrelid = r.oid AND c.contype = 'p')$$,
    'every table has a primary key'
);
SELECT is_empty(
    $$SELECT relname FROM tap_relations
      WHERE relkind = 'i' AND relname ~ '_(idx|key|pkey|excl)[0-9]+$'$$,
    'no index has an auto-generated name (suffix _idx1, _key1, ...)'
);
SELECT is_empty(
    $$SELECT c.conname FROM pg_constraint AS c
      WHERE c.connamespace = 'autopilot'::regnamespace
        AND c.conname ~ '_(check|fkey|key|pkey|excl|not_null)[0-9]+$'$$,
    'no constraint has an auto-generated name'
);
SELECT is_empty(
    $$SELECT format('%s on %s', i.indexrelid::regclass, i.indrelid::regclass) FROM pg_index AS i
      INNER JOIN tap_relations AS t ON i.indrelid = t.oid
      WHERE NOT starts_with((SELECT c.relname FROM pg_class AS c WHERE c.oid = i.indexrelid), t.relname || '_')
      UNION ALL
      SELECT format('%s on %s', c.conname, t.relname) FROM pg_constraint AS c
      INNER JOIN tap_relations AS t ON c.conrelid = t.oid
      WHERE NOT starts_with(c.conname, t.relname || '_')$$,
    'every index and constraint is named after its table'
);
SELECT is_empty(
    $$SELECT format('%s: %s', r.signature, a.name)
      FROM tap_routines AS r
      INNER JOIN pg_proc AS p ON r.oid = p.oid
      CROSS JOIN LATERAL unnest(p.proargnames, p.proargmodes) AS a (name, mode)
      WHERE coalesce(a.mode, 'i') IN ('i', 'b', 'v') AND a.name !~ '^p_'$$,
    'every parameter is named p_*'
);

-- extension mode: every object belongs to the extension; the user's tables are dumped
SELECT is_empty(
    $$SELECT pg_describe_object(d.classid, d.objid, 0)
      FROM (
          SELECT 'pg_proc'::regclass AS classid, oid AS objid FROM tap_routines
          UNION ALL
          SELECT 'pg_class'::regclass, oid FROM tap_relations WHERE relkind IN ('r', 'p', 'v', 'm', 'S')
          UNION ALL
          SELECT 'pg_type'::regclass, t.oid FROM pg_type AS t
          WHERE t.typnamespace = 'autopilot'::regnamespace AND t.typtype = 'c'
            AND (SELECT c.relkind FROM pg_class AS c WHERE c.oid = t.typrelid) = 'c'
      ) AS d
      WHERE EXISTS (SELECT FROM pg_extension WHERE extname = 'autopilot')
        AND NOT EXISTS (
            SELECT FROM pg_depend AS dep
            WHERE dep.classid = d.classid AND dep.objid = d.objid AND dep.deptype = 'e'
              AND dep.refobjid = (SELECT e.oid FROM pg_extension AS e WHERE e.extname = 'autopilot')
        )$$,
    'in extension mode, every function, table, view, sequence and type is a member of the extension'
);
SELECT set_eq(
    $$SELECT c.relname::text FROM pg_extension AS e, unnest(e.extconfig) AS x (oid)
      INNER JOIN pg_class AS c ON x.oid = c.oid
      WHERE e.extname = 'autopilot' AND c.relkind = 'r'$$,
    $$SELECT relname::text FROM tap_relations
      WHERE relkind = 'r' AND relname NOT IN ('job_catalog', 'settings')
        AND EXISTS (SELECT FROM pg_extension WHERE extname = 'autopilot')$$,
    'in extension mode, pg_dump dumps every table but the catalog and the setting definitions'
);

SELECT * FROM finish();
ROLLBACK;
