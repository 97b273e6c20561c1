-- Runner side: pg_cron only enqueues into autopilot.jobs; the runner executes.
INSERT INTO autopilot.job_catalog (
    name, side, kind, schedule, target, args, queue, run_at_startup, startup_order, description, disabled_reason
)
VALUES
(
    'backup-hourly', 'runner', 'enqueue', '0 * * * *', 'backup', '{"kind": "hourly"}', 'backups', false, NULL,
    'pg_dump of the configured databases.',
    NULL
),
(
    'backup-daily', 'runner', 'enqueue', '0 1 * * *', 'backup', '{"kind": "daily"}', 'backups', false, NULL,
    'pg_dump of the configured databases, longer retention.',
    NULL
),
(
    'template-sync', 'runner', 'enqueue', '0 2 * * *', 'template_sync', '{}', 'default', false, NULL,
    'Sync template changes from git into the database.',
    NULL
),
(
    'cache-cleanup', 'runner', 'enqueue', '0 3 * * *', 'cache_cleanup', '{}', 'default', false, NULL,
    'Clear the runner''s in-process caches.',
    NULL
),
(
    'registry-sync', 'runner', 'enqueue', '0 4 * * *', 'registry_sync', '{}', 'default', false, NULL,
    'Run the analyzers and store snapshots (feeds analysis results).',
    NULL
),
(
    'template-embed', 'runner', 'enqueue', '0 5 * * 0', 'template_embed', '{}', 'default', false, NULL,
    'Regenerate template embeddings.',
    NULL
),
(
    'code-ingest', 'runner', 'enqueue', '0 6 * * 0', 'code_ingest', '{}', 'default', true, 4,
    'Parse the codebase, chunk and embed it.',
    NULL
),
(
    'graph-populate', 'runner', 'enqueue', '0 7 * * 0', 'graph_populate', '{}', 'default', true, 5,
    'Build the dependency graph from the ingested code.',
    NULL
),
(
    'knowledge-migration', 'runner', 'enqueue', NULL, 'knowledge_migration', '{}', 'default', true, 1,
    'Load JSON templates into the database (one-time, idempotent).',
    NULL
),
(
    'templates-data-load', 'runner', 'enqueue', NULL, 'templates_data_load', '{}', 'default', true, 2,
    'Sync templates_data/ into the database (one-time, idempotent).',
    NULL
),
(
    'planning-seed', 'runner', 'enqueue', NULL, 'planning_seed', '{}', 'default', true, 3,
    'Initialise the work plan (one-time, idempotent).',
    NULL
),
(
    'rag-setup', 'runner', 'enqueue', NULL, 'rag_setup', '{}', 'default', true, 6,
    'Full retrieval setup (one-time, idempotent).',
    NULL
);
