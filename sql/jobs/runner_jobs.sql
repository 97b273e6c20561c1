-- Runner side: pg_cron only enqueues into autopilot.jobs; the runner executes.
INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, args, queue, run_at_startup, description)
VALUES
(
    'backup-hourly', 'runner', 'enqueue', '0 * * * *', 'backup', '{"kind": "hourly"}', 'backups', false,
    'pg_dump of the configured databases.'
),
(
    'backup-daily', 'runner', 'enqueue', '0 1 * * *', 'backup', '{"kind": "daily"}', 'backups', false,
    'pg_dump of the configured databases, longer retention.'
),
(
    'template-sync', 'runner', 'enqueue', '0 2 * * *', 'template_sync', '{}', 'default', false,
    'Sync template changes from git into the database.'
),
(
    'cache-cleanup', 'runner', 'enqueue', '0 3 * * *', 'cache_cleanup', '{}', 'default', false,
    'Clear the runner''s in-process caches.'
),
(
    'registry-sync', 'runner', 'enqueue', '0 4 * * *', 'registry_sync', '{}', 'default', false,
    'Run the analyzers and store snapshots (feeds analysis results).'
),
(
    'template-embed', 'runner', 'enqueue', '0 5 * * 0', 'template_embed', '{}', 'default', false,
    'Regenerate template embeddings.'
),
(
    'code-ingest', 'runner', 'enqueue', '0 6 * * 0', 'code_ingest', '{}', 'default', true,
    'Parse the codebase, chunk and embed it.'
),
(
    'graph-populate', 'runner', 'enqueue', '0 7 * * 0', 'graph_populate', '{}', 'default', true,
    'Build the dependency graph from the ingested code.'
),
(
    'knowledge-migration', 'runner', 'enqueue', NULL, 'knowledge_migration', '{}', 'default', true,
    'Load JSON templates into the database (one-time, idempotent).'
),
(
    'templates-data-load', 'runner', 'enqueue', NULL, 'templates_data_load', '{}', 'default', true,
    'Sync templates_data/ into the database (one-time, idempotent).'
),
(
    'planning-seed', 'runner', 'enqueue', NULL, 'planning_seed', '{}', 'default', true,
    'Initialise the work plan (one-time, idempotent).'
),
(
    'rag-setup', 'runner', 'enqueue', NULL, 'rag_setup', '{}', 'default', true,
    'Full retrieval setup (one-time, idempotent).'
);
