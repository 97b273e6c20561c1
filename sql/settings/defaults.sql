-- Every setting with its type, default and range. Retention periods define what
-- the cleanups delete; docs/settings are generated from this list (README).
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'cleanup.batch_size', 'integer', '5000', '1', '1000000',
    'Rows a cleanup deletes or moves per batch; a scheduled run commits after each batch.'
),
(
    'jobs.completed_retention', 'interval', '7 days', '0', NULL,
    'old-job-cleanup deletes completed and cancelled runner jobs that finished longer ago than this.'
),
(
    'jobs.discarded_retention', 'interval', '30 days', '0', NULL,
    'old-job-cleanup deletes discarded runner jobs (kept longer, for their errors) older than this.'
),
(
    'job_runs.retention', 'interval', '90 days', '1 day', NULL,
    'old-job-cleanup deletes ledger runs (autopilot.job_runs) that finished longer ago than this.'
),
(
    'artifacts.unused_retention', 'interval', '90 days', '1 day', NULL,
    'old-artifact-cleanup deletes knowledge artifacts not used (or, never used, not created) for this long.'
),
(
    'patterns.unused_retention', 'interval', '180 days', '1 day', NULL,
    'old-artifact-cleanup deletes learned patterns not seen for this long '
    || 'whose confidence is below patterns.keep_confidence.'
),
(
    'patterns.keep_confidence', 'numeric', '0.8', '0', '1',
    'Learned patterns at or above this confidence are never deleted as unused.'
),
(
    'code_chunks.obsolete_retention', 'interval', '7 days', '0', NULL,
    'code-chunk-cleanup deletes code chunks superseded (by a re-ingest, or their file gone) longer ago than this.'
),
(
    'backups.archive_after', 'interval', '90 days', '1 day', NULL,
    'backup-archival moves backup records that started longer ago than this into autopilot.backup_metadata_archive.'
),
(
    'cron_history.retention', 'interval', '7 days', '1 hour', NULL,
    'cron-history-cleanup deletes cron.job_run_details rows that ended longer ago than this '
    || '(pg_cron never prunes them).'
),
(
    'reindex.bloat_threshold', 'numeric', '0.3', '0', '1',
    'index-reindex rebuilds an index when at least this share of its size is bloat (measured or estimated).'
),
(
    'reindex.min_size_bytes', 'integer', '10485760', '0', NULL,
    'index-reindex leaves indexes smaller than this alone (a rebuild gains little there).'
);

-- agent-knowledge-update (a change of either recomputes every agent's summary at the next run)
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'agent_knowledge.top_patterns', 'integer', '10', '1', '1000',
    'agent-knowledge-update lists, for each pattern type an agent works with, this many of the most confident '
    || 'learned patterns.'
),
(
    'agent_knowledge.patterns_met_limit', 'integer', '200', '1', '100000',
    'agent-knowledge-update lists at most this many of the patterns an agent has met (the most confident); '
    || 'patterns_met_total counts them all.'
);

-- task-assignment
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'agents.silence_timeout', 'interval', '10 minutes', '1 minute', NULL,
    'task-assignment takes assigned (not yet running) tasks back from agents not seen (last_seen_at) for '
    || 'longer than this, and gives new tasks only to agents seen within it.'
),
(
    'pagerank.damping', 'numeric', '0.85', '0', '0.99',
    'pagerank: probability of following an edge rather than jumping to a random node of the codebase.'
),
(
    'pagerank.tolerance', 'numeric', '1e-10', '1e-15', '0.1',
    'pagerank stops when one iteration changes the ranks by less than this in total (absolute L1).'
),
(
    'pagerank.max_iterations', 'integer', '1000', '1', '100000',
    'pagerank fails, writing no score, when this many iterations do not reach pagerank.tolerance.'
),
(
    'centralcloud.server', 'text', 'autopilot_central', NULL, NULL,
    'centralcloud-sync pushes through this postgres_fdw foreign server (and the job owner''s user mapping); '
    || 'while it does not exist, the job does nothing.'
),
(
    'centralcloud.instance_id', 'text', '', NULL, NULL,
    'centralcloud-sync tags what it pushes with this name, unique among the instances of one central database; '
    || 'required once the foreign server exists.'
),
(
    'jobs.backoff_base', 'interval', '15 seconds', '0', NULL,
    'A runner job that fails is retried after jobs.backoff_base * 2^(attempt - 1) (at most jobs.backoff_max), '
    || 'times a random factor between 0.8 and 1.0 (jitter: up to 20% sooner, never later).'
),
(
    'jobs.backoff_max', 'interval', '1 hour', '0', NULL,
    'The longest wait before a failed runner job is retried.'
),
(
    'jobs.rescue_after', 'interval', '2 minutes', '10 seconds', NULL,
    'rescue-orphaned-jobs takes back an executing runner job whose runner has not heartbeaten for this long '
    || '(runners heartbeat every few seconds).'
),
(
    'backups.directory', 'path', '/var/backups/autopilot', NULL, NULL,
    'Where the runner writes pg_dump backups (a directory of the runner''s host, created 0700).'
),
(
    'backups.databases', 'text', '', NULL, NULL,
    'Comma-separated databases the backup jobs dump; empty: the database autopilot is installed in.'
),
(
    'backups.format', 'text', 'custom', NULL, NULL,
    'pg_dump format: custom (one file) or directory (with backups.parallel_jobs).'
),
(
    'backups.parallel_jobs', 'integer', '1', '1', '64',
    'pg_dump --jobs for the directory format.'
),
(
    'backups.lock_wait_timeout', 'interval', '5 minutes', '1 second', NULL,
    'pg_dump --lock-wait-timeout: a backup waiting longer than this for a table lock fails (and is retried).'
),
(
    'backups.hourly_keep', 'integer', '24', '1', '10000',
    'Verified hourly backups kept; older ones are deleted only after a new one is verified.'
),
(
    'backups.daily_keep', 'integer', '30', '1', '10000',
    'Verified daily backups kept; older ones are deleted only after a new one is verified.'
),
(
    'backups.manual_keep', 'integer', '10', '1', '10000',
    'Verified manual backups (autopilot runner backup) kept.'
),
(
    'backups.overdue_after', 'interval', '2 hours', '1 minute', NULL,
    'autopilot status flags the backups as overdue when the last verified one is older than this.'
),
(
    'code_ingest.max_file_bytes', 'integer', '1048576', '1024', '1073741824',
    'code-ingest skips (and counts) files larger than this many bytes.'
),
(
    'embeddings.model', 'text', 'auto', NULL, NULL,
    'The embedder of code-ingest and search: minilm (all-MiniLM-L6-v2, semantic; needs the embeddings extra), '
    || 'hashing (lexical, no dependencies) or auto (minilm where installed, else hashing).'
);

-- knowledge-migration, templates-data-load, template-sync
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'knowledge.templates_directory', 'path', '/var/lib/autopilot/templates', NULL, NULL,
    'knowledge-migration loads the JSON templates (*.json, at any depth) of this directory of the runner''s host '
    || 'into autopilot.knowledge_artifacts. The default, absent, loads nothing; a directory you set that does not '
    || 'exist fails the job.'
),
(
    'templates_data.directory', 'path', '/var/lib/autopilot/templates_data', NULL, NULL,
    'templates-data-load keeps autopilot.template_data in step with the JSON and YAML files (*.json, *.yaml, '
    || '*.yml, at any depth) of this directory of the runner''s host. The default, absent, loads nothing; a '
    || 'directory you set that does not exist fails the job (and marks nothing removed).'
),
(
    'template_sync.repository', 'text', '', NULL, NULL,
    'template-sync applies the JSON templates of this git repository (a URL, or the absolute path of a repository '
    || 'on the runner''s host) to autopilot.knowledge_artifacts; empty: the job does nothing. Credentials belong in '
    || 'the runner''s environment (AUTOPILOT_TEMPLATE_SYNC_USERNAME, AUTOPILOT_TEMPLATE_SYNC_PASSWORD or '
    || '_PASSWORD_FILE), not in the URL: a password in it is readable by whoever reads this setting.'
),
(
    'template_sync.branch', 'text', 'main', NULL, NULL,
    'The branch of template_sync.repository that template-sync follows.'
),
(
    'template_sync.directory', 'path', '/var/lib/autopilot/template-sync', NULL, NULL,
    'Where template-sync keeps its clone of the repository: a directory of the runner''s host that it creates '
    || '(0700) and owns.'
);

-- settings that accept only some values of their type (set_setting names them in its hint)
UPDATE autopilot.settings SET allowed_values = ARRAY['custom', 'directory']
WHERE name = 'backups.format';
UPDATE autopilot.settings SET allowed_values = ARRAY['auto', 'minilm', 'hashing']
WHERE name = 'embeddings.model';

-- planning-seed and registry-sync
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'planning.plan_file', 'path', '/etc/autopilot/plan.yaml', NULL, NULL,
    'planning-seed adds the items of this YAML file (on the runner''s host) as tasks, each once. No file at the '
    || 'default path: nothing to seed; no file at a path set here: the job fails.'
),
(
    'registry_sync.analyzers', 'text', 'ruff,complexity,queries', NULL, NULL,
    'Comma-separated analyzers registry-sync runs over every enabled codebase: ruff, complexity, queries, or one '
    || 'a worker module registers.'
),
(
    'registry_sync.analyzer_timeout', 'interval', '10 minutes', '1 second', '1 day',
    'registry-sync stops an analyzer that runs longer than this on one codebase: it is reported as timed out '
    || '(the job fails) and the other analyzers'' results are recorded.'
),
(
    'registry_sync.complexity_threshold', 'integer', '10', '1', '1000',
    'The complexity analyzer reports each function whose cyclomatic complexity is above this (rule cyclomatic).'
),
(
    'registry_sync.keep_snapshots', 'integer', '30', '2', '100000',
    'registry-sync keeps this many analysis snapshots per codebase (and each analyzer''s last successful one).'
);

-- autopilot.health (autopilot check, autopilot status)
INSERT INTO autopilot.settings (name, value_type, default_value, min_value, max_value, description)
VALUES
(
    'health.overdue_factor', 'numeric', '2', '1', '100',
    'autopilot.health calls a job overdue when its last success is older than this many times its '
    || 'schedule''s interval (the longest gap between its coming runs).'
),
(
    'health.queue_stalled_after', 'interval', '15 minutes', '1 minute', NULL,
    'autopilot.health warns (queue_stalled) when the oldest available runner job of a queue has waited this long.'
),
(
    'health.runner_absent_after', 'interval', '5 minutes', '10 seconds', NULL,
    'autopilot.health reports runner_absent when runner jobs have waited this long and no runner is connected '
    || 'or has heartbeaten for this long.'
);
