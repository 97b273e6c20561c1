-- The job catalog against DESIGN.md's two tables: names, schedules (UTC),
-- side and kind, and what each entry needs to run.
BEGIN;
SELECT plan(16);

SELECT set_eq(
    $$SELECT name, schedule, only_on_dow, side, kind FROM autopilot.job_catalog WHERE side = 'database'$$,
    $$VALUES
        ('pattern-learning'::text, '*/5 * * * *'::text, NULL::smallint, 'database'::text, 'function'::text),
        ('centralcloud-sync', '*/10 * * * *', NULL, 'database', 'function'),
        ('centralcloud-merge', '5-59/10 * * * *', NULL, 'database', 'function'),
        ('agent-knowledge-update', '0 * * * *', NULL, 'database', 'function'),
        ('task-assignment', '*/2 * * * *', NULL, 'database', 'function'),
        ('metrics-refresh', '*/30 * * * *', NULL, 'database', 'function'),
        ('vacuum-analyze', '0 23 * * *', NULL, 'database', 'statement'),
        ('table-statistics', '0 */6 * * *', NULL, 'database', 'function'),
        ('old-job-cleanup', '0 0 * * 0', NULL, 'database', 'batched'),
        ('old-artifact-cleanup', '0 1 * * 0', NULL, 'database', 'batched'),
        ('code-chunk-cleanup', '0 2 * * 0', NULL, 'database', 'batched'),
        ('index-reindex', '0 3 * * 0', NULL, 'database', 'function'),
        ('vector-stats', '0 4 * * 0', NULL, 'database', 'function'),
        ('backup-archival', '0 5 1-7 * *', 0, 'database', 'batched'),
        ('pagerank', '0 3 * * *', NULL, 'database', 'function'),
        ('rescue-orphaned-jobs', '* * * * *', NULL, 'database', 'function'),
        ('cron-history-cleanup', '30 0 * * *', NULL, 'database', 'batched'),
        ('index-reindex-step', '* * * * *', NULL, 'database', 'statement')$$,
    'the database-side jobs of DESIGN.md, plus centralcloud-merge, rescue-orphaned-jobs, cron-history-cleanup '
    || 'and index-reindex''s step, with their schedules and kinds'
);
SELECT set_eq(
    $$SELECT name, schedule, run_at_startup, side, kind, queue, target FROM autopilot.job_catalog
      WHERE side = 'runner'$$,
    $$VALUES
        ('backup-hourly'::text, '0 * * * *'::text, false, 'runner'::text, 'enqueue'::text, 'backups'::text,
         'backup'::text),
        ('backup-daily', '0 1 * * *', false, 'runner', 'enqueue', 'backups', 'backup'),
        ('template-sync', '0 2 * * *', false, 'runner', 'enqueue', 'default', 'template_sync'),
        ('cache-cleanup', '0 3 * * *', false, 'runner', 'enqueue', 'default', 'cache_cleanup'),
        ('registry-sync', '0 4 * * *', false, 'runner', 'enqueue', 'default', 'registry_sync'),
        ('template-embed', '0 5 * * 0', false, 'runner', 'enqueue', 'default', 'template_embed'),
        ('code-ingest', '0 6 * * 0', true, 'runner', 'enqueue', 'default', 'code_ingest'),
        ('graph-populate', '0 7 * * 0', true, 'runner', 'enqueue', 'default', 'graph_populate'),
        ('knowledge-migration', NULL, true, 'runner', 'enqueue', 'default', 'knowledge_migration'),
        ('templates-data-load', NULL, true, 'runner', 'enqueue', 'default', 'templates_data_load'),
        ('planning-seed', NULL, true, 'runner', 'enqueue', 'default', 'planning_seed'),
        ('rag-setup', NULL, true, 'runner', 'enqueue', 'default', 'rag_setup')$$,
    'the runner-side jobs of DESIGN.md: schedules, startup jobs, queues and workers'
);
SELECT results_eq(
    $$SELECT args FROM autopilot.job_catalog WHERE name IN ('backup-hourly', 'backup-daily') ORDER BY name$$,
    $$VALUES ('{"kind": "daily"}'::jsonb), ('{"kind": "hourly"}'::jsonb)$$,
    'the backup jobs tell the runner which kind of backup to take'
);

-- backup-archival: cron ORs day-of-month and day-of-week, so "first Sunday" is
-- days 1-7 plus a weekday filter, never '0 5 1-7 * 0'
SELECT results_eq(
    $$SELECT schedule, only_on_dow FROM autopilot.job_catalog WHERE name = 'backup-archival'$$,
    $$VALUES ('0 5 1-7 * *'::text, 0::smallint)$$,
    'backup-archival: 05:00 on days 1-7, Sunday only (first Sunday of the month)'
);
SELECT is_empty(
    $$SELECT name FROM autopilot.job_catalog
      WHERE split_part(schedule, ' ', 3) <> '*' AND split_part(schedule, ' ', 5) <> '*'$$,
    'no schedule restricts both day-of-month and day-of-week (cron would OR them)'
);
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.job_catalog
        WHERE only_on_dow IS NOT NULL
    ),
    1,
    'only backup-archival has a weekday filter'
);

SELECT is_empty(
    $$SELECT name FROM autopilot.job_catalog WHERE schedule IS NOT NULL AND NOT autopilot.is_valid_cron(schedule)$$,
    'every schedule is a valid cron expression'
);
SELECT is_empty(
    $$SELECT name FROM autopilot.job_catalog WHERE octet_length('autopilot:' || name) > 63$$,
    'every pg_cron job name fits in 63 bytes (pg_cron truncates longer ones)'
);

-- the vacuum-analyze statement lists exactly the tables of schema autopilot
SELECT matches(
    (
        SELECT target FROM autopilot.job_catalog
        WHERE name = 'vacuum-analyze'
    ),
    '^VACUUM \(ANALYZE\) autopilot\.[a-z_]+(, autopilot\.[a-z_]+)*$',
    'vacuum-analyze is one top-level VACUUM (ANALYZE) of autopilot tables'
);
SELECT set_eq(
    $$SELECT regexp_split_to_table(
          regexp_replace(target, '^VACUUM \(ANALYZE\) ', ''), ', ')
      FROM autopilot.job_catalog WHERE name = 'vacuum-analyze'$$,
    $$SELECT 'autopilot.' || c.relname FROM pg_class AS c
      WHERE c.relnamespace = 'autopilot'::regnamespace AND c.relkind IN ('r', 'p')$$,
    'vacuum-analyze lists exactly the tables of schema autopilot'
);

-- what each kind needs
SELECT is_empty(
    $$SELECT c.name FROM autopilot.job_catalog AS c
      WHERE c.kind = 'batched'
        AND (to_regprocedure(c.target || '(jsonb, integer)') IS NULL
             OR (SELECT p.prorettype FROM pg_proc AS p
                 WHERE p.oid = to_regprocedure(c.target || '(jsonb, integer)'))
                <> 'autopilot.job_step'::regtype)$$,
    'every batched job''s function exists, takes (cursor jsonb, limit integer) and returns autopilot.job_step'
);
SELECT is_empty(
    $$SELECT c.name FROM autopilot.job_catalog AS c
      WHERE c.kind = 'function' AND to_regprocedure(c.target || '()') IS NOT NULL
        AND (SELECT p.prorettype FROM pg_proc AS p WHERE p.oid = to_regprocedure(c.target || '()'))
            <> 'jsonb'::regtype$$,
    'every function job''s function that exists takes no argument and returns a jsonb summary'
);
-- a catalog job whose function comes in a later version (every shipped job's is installed)
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
VALUES ('tap-future', 'database', 'function', '0 4 * * *', 'autopilot.tap_future_job', 'arrives later');
-- (the jobs that need pg_cron in this database: tests/sql/cron_history_cleanup.sql; the suite
-- also runs on a server without pg_cron, where they cannot run)
SELECT set_eq(
    $$SELECT d.name FROM autopilot.job_definitions AS d
      JOIN autopilot.job_catalog AS c ON c.name = d.name
      WHERE d.unavailable_reason IS NOT NULL AND NOT c.requires_local_pg_cron$$,
    ARRAY['tap-future'],
    'the jobs whose functions come in a later version are the only ones that cannot run'
);
SELECT matches(
    (
        SELECT unavailable_reason FROM autopilot.job_definitions
        WHERE name = 'tap-future'
    ),
    '^autopilot\.tap_future_job\(\) is not part of autopilot ',
    'a job whose function is not installed says its function is not in this version'
);
SELECT is_empty(
    $$SELECT name FROM autopilot.job_catalog
      WHERE starts_with(target, 'autopilot.') AND target !~ '^autopilot\.[a-z_]+$'$$,
    'function targets are schema-qualified plain names'
);
SELECT is_empty(
    $$SELECT name FROM autopilot.job_catalog WHERE side = 'runner' AND target !~ '^[a-z][a-z_]*$'$$,
    'runner targets are worker names'
);

SELECT * FROM finish();
ROLLBACK;
