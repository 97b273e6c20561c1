-- The tables of autopilot: they exist with their primary keys, and their
-- constraints reject the states the jobs rely on never seeing.
BEGIN;
SELECT plan(86);

SELECT tables_are(
    'autopilot',
    ARRAY[
        'settings', 'setting_values', 'job_catalog', 'job_overrides', 'job_runs', 'jobs', 'agents', 'tasks',
        'analysis_results', 'learned_patterns', 'agent_knowledge', 'agent_knowledge_pending', 'learning_watermarks',
        'performance_metrics', 'performance_metrics_pending',
        'knowledge_artifacts', 'code_chunks', 'graph_nodes', 'graph_edges', 'backup_metadata',
        'backup_metadata_archive', 'vector_stats_history', 'index_maintenance', 'job_arming',
        'central_pattern_inbox', 'central_instance_patterns', 'global_patterns', 'codebases', 'code_files',
        'code_symbols', 'task_dependencies', 'analysis_snapshots', 'analysis_snapshot_analyzers',
        'analysis_snapshot_files', 'analysis_snapshot_findings', 'knowledge_artifact_versions', 'template_data',
        'template_sync_state'
    ],
    'schema autopilot has exactly its tables'
);
SELECT views_are(
    'autopilot', ARRAY['job_definitions', 'job_status', 'centralcloud_info', 'health'],
    'schema autopilot has exactly its views'
);
SELECT types_are('autopilot', ARRAY['job_step'], 'schema autopilot has exactly its composite type job_step');

SELECT col_is_pk('autopilot', 'settings', ARRAY['name'], 'settings: primary key name');
SELECT col_is_pk('autopilot', 'setting_values', ARRAY['name'], 'setting_values: primary key name');
SELECT col_is_pk('autopilot', 'job_catalog', ARRAY['name'], 'job_catalog: primary key name');
SELECT col_is_pk('autopilot', 'job_overrides', ARRAY['job_name'], 'job_overrides: primary key job_name');
SELECT col_is_pk('autopilot', 'job_runs', ARRAY['id'], 'job_runs: primary key id');
SELECT col_is_pk('autopilot', 'jobs', ARRAY['id'], 'jobs: primary key id');
SELECT col_is_pk('autopilot', 'agents', ARRAY['id'], 'agents: primary key id');
SELECT col_is_pk('autopilot', 'tasks', ARRAY['id'], 'tasks: primary key id');
SELECT col_is_pk('autopilot', 'analysis_results', ARRAY['id'], 'analysis_results: primary key id');
SELECT col_is_pk('autopilot', 'learned_patterns', ARRAY['id'], 'learned_patterns: primary key id');
SELECT col_is_pk('autopilot', 'agent_knowledge', ARRAY['agent_id'], 'agent_knowledge: primary key agent_id');
SELECT col_is_pk('autopilot', 'central_pattern_inbox', ARRAY['id'], 'central_pattern_inbox: primary key id');
SELECT col_is_pk(
    'autopilot', 'central_instance_patterns', ARRAY['instance_id', 'pattern_type', 'pattern_key'],
    'central_instance_patterns: primary key (instance_id, pattern_type, pattern_key)'
);
SELECT col_is_pk(
    'autopilot', 'global_patterns', ARRAY['pattern_type', 'pattern_key'],
    'global_patterns: primary key (pattern_type, pattern_key)'
);
SELECT col_is_pk(
    'autopilot', 'performance_metrics', ARRAY['subject_kind', 'subject', 'hour'],
    'performance_metrics: primary key (subject_kind, subject, hour)'
);
SELECT col_is_pk('autopilot', 'knowledge_artifacts', ARRAY['id'], 'knowledge_artifacts: primary key id');
SELECT col_is_pk('autopilot', 'code_chunks', ARRAY['id'], 'code_chunks: primary key id');
SELECT col_is_pk('autopilot', 'graph_nodes', ARRAY['id'], 'graph_nodes: primary key id');
SELECT col_not_null(
    'autopilot', 'code_symbols', 'occurrences', 'code_symbols.occurrences: a reference row counts its uses'
);
SELECT col_default_is(
    'autopilot', 'code_symbols', 'occurrences', '1', 'code_symbols.occurrences: 1 unless counted'
);
SELECT col_is_pk(
    'autopilot', 'graph_edges', ARRAY['source_id', 'target_id'], 'graph_edges: primary key (source_id, target_id)'
);
SELECT col_is_pk('autopilot', 'backup_metadata', ARRAY['id'], 'backup_metadata: primary key id');
SELECT col_is_pk('autopilot', 'backup_metadata_archive', ARRAY['id'], 'backup_metadata_archive: primary key id');
SELECT col_is_pk('autopilot', 'vector_stats_history', ARRAY['id'], 'vector_stats_history: primary key id');
SELECT col_is_pk('autopilot', 'index_maintenance', ARRAY['id'], 'index_maintenance: primary key id');
SELECT col_is_pk('autopilot', 'job_arming', ARRAY['job_name'], 'job_arming: primary key job_name');
SELECT col_is_pk(
    'autopilot', 'knowledge_artifact_versions', ARRAY['artifact_id', 'version'],
    'knowledge_artifact_versions: primary key (artifact_id, version)'
);
SELECT col_is_pk('autopilot', 'template_data', ARRAY['name'], 'template_data: primary key name');
SELECT col_is_pk('autopilot', 'template_sync_state', ARRAY['singleton'], 'template_sync_state: primary key singleton');
SELECT throws_ok(
    $$INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, version) VALUES ('t', 'n', 0)$$,
    '23514', NULL, 'knowledge_artifacts: versions start at 1'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.template_data (name, file_path, format, content, content_hash, status)
      VALUES ('a', 'a.json', 'json', '{}', 'h', 'removed')$$,
    '23514', NULL, 'template_data: a removed row says since when'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.template_data (name, file_path, format, content, content_hash)
      VALUES ('a', 'a.json', 'json', '[1]', 'h')$$,
    '23514', NULL, 'template_data: a document is an object'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.template_sync_state (singleton, repository, branch, commit_sha)
      VALUES (false, '/r', 'main', repeat('a', 40))$$,
    '23514', NULL, 'template_sync_state: one row at most'
);
SELECT col_is_pk(
    'autopilot', 'task_dependencies', ARRAY['task_id', 'depends_on_task_id'],
    'task_dependencies: primary key (task_id, depends_on_task_id)'
);
SELECT col_is_pk('autopilot', 'analysis_snapshots', ARRAY['id'], 'analysis_snapshots: primary key id');
SELECT col_is_pk(
    'autopilot', 'analysis_snapshot_analyzers', ARRAY['snapshot_id', 'analyzer'],
    'analysis_snapshot_analyzers: primary key (snapshot_id, analyzer)'
);
SELECT col_is_pk(
    'autopilot', 'analysis_snapshot_files', ARRAY['snapshot_id', 'path'],
    'analysis_snapshot_files: primary key (snapshot_id, path)'
);
SELECT col_is_pk(
    'autopilot', 'analysis_snapshot_findings', ARRAY['snapshot_id', 'path', 'analyzer', 'rule'],
    'analysis_snapshot_findings: primary key (snapshot_id, path, analyzer, rule)'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.index_maintenance (index_name, action, statement, reason, state)
      VALUES ('autopilot.a', 'reindex', 'REINDEX INDEX CONCURRENTLY autopilot.a', 't', 'armed'),
             ('autopilot.b', 'reindex', 'REINDEX INDEX CONCURRENTLY autopilot.b', 't', 'armed')$$,
    '23505', NULL, 'index_maintenance: only one statement is armed at a time'
);

-- fixtures for the foreign keys
INSERT INTO autopilot.agents (name, skills, capacity) VALUES ('tap-agent', '{elixir}', 2);
INSERT INTO autopilot.graph_nodes (codebase, node_key) VALUES ('app', 'A'), ('app', 'B');

-- check constraints on states
SELECT throws_ok(
    $$INSERT INTO autopilot.jobs (worker, state) VALUES ('w', 'exploded')$$,
    '23514', NULL, 'jobs.state rejects an unknown state'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.jobs (worker, priority) VALUES ('w', 10)$$,
    '23514', NULL, 'jobs.priority is 0-9'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.jobs (worker, errors) VALUES ('w', '{}')$$,
    '23514', NULL, 'jobs.errors is an array'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.jobs (worker) VALUES ('')$$, '23514', NULL, 'jobs.worker is not empty'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.tasks (title, status) VALUES ('t', 'lost')$$,
    '23514', NULL, 'tasks.status rejects an unknown status'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.tasks (title, status) VALUES ('t', 'assigned')$$,
    '23514', NULL, 'an assigned task has an agent'
);
SELECT lives_ok(
    $$INSERT INTO autopilot.tasks (title, status, agent_id)
      SELECT 't', 'assigned', id FROM autopilot.agents WHERE name = 'tap-agent'$$,
    'an assigned task with an agent is accepted'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.tasks (title, agent_id) VALUES ('t', -1)$$,
    '23503', NULL, 'tasks.agent_id references an agent'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.task_dependencies (task_id, depends_on_task_id)
      SELECT id, id FROM autopilot.tasks LIMIT 1$$,
    '23514', NULL, 'task_dependencies: a task cannot depend on itself'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.tasks (title, plan_key) VALUES ('one', 'k'), ('two', 'k')$$,
    '23505', NULL, 'tasks.plan_key: one task per plan item'
);
SELECT throws_ok(
    $$WITH c AS (
          INSERT INTO autopilot.codebases (name, root_path) VALUES ('tap-snapshot', '/src') RETURNING name
      ),
      s AS (
          INSERT INTO autopilot.analysis_snapshots (codebase, digest, files, findings)
          SELECT c.name, 'd', 0, 0 FROM c RETURNING id
      )
      INSERT INTO autopilot.analysis_snapshot_analyzers (snapshot_id, analyzer, status, version, seconds)
      SELECT s.id, 'ruff', 'crashed', 'v', 1 FROM s$$,
    '23514', NULL, 'analysis_snapshot_analyzers.status is ok, failed or timed_out'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome)
      VALUES ('app', 'credo', 'naming', 'k', 'maybe')$$,
    '23514', NULL, 'analysis_results.outcome is success, failure or neutral'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.agents (name, capacity) VALUES ('negative', -1)$$,
    '23514', NULL, 'agents.capacity may not be negative'
);
SELECT lives_ok(
    $$INSERT INTO autopilot.agents (name, capacity) VALUES ('idle', 0)$$,
    'agents.capacity may be 0'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.agents (name) VALUES ('tap-agent')$$,
    '23505', NULL, 'agent names are unique'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_runs (job_name, side, trigger, status, finished_at)
      VALUES ('x', 'database', 'manual', 'running', now())$$,
    '23514', NULL, 'a running ledger run has no finish time'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_runs (job_name, side, trigger, status)
      VALUES ('x', 'database', 'manual', 'succeeded')$$,
    '23514', NULL, 'a finished ledger run has a finish time'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_runs (job_name, side, trigger) VALUES ('x', 'database', 'cron')$$,
    '23514', NULL, 'job_runs.trigger is pg_cron, manual or runner'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, confidence) VALUES ('t', 'k', 1.5)$$,
    '23514', NULL, 'learned_patterns.confidence is between 0 and 1'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, occurrences, successes)
      VALUES ('t', 'k', 1, 2)$$,
    '23514', NULL, 'learned_patterns: no more successes than occurrences'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.central_pattern_inbox (instance_id, pattern_type, pattern_key, occurrences, successes,
      failures, score_count, first_seen_at, last_seen_at, codebases) VALUES ('', 't', 'k', 1, 1, 0, 0, now(), now(), '{}')$$,
    '23514', NULL, 'central_pattern_inbox: a pushed row names its instance'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.central_pattern_inbox (instance_id, pattern_type, pattern_key, occurrences, successes,
      failures, score_count, first_seen_at, last_seen_at, codebases) VALUES ('i', 't', 'k', 1, 1, 1, 0, now(), now(), '{}')$$,
    '23514', NULL, 'central_pattern_inbox: no more successes and failures than occurrences'
);
SELECT has_trigger(
    'autopilot', 'learned_patterns', 'learned_patterns_stamp_change_trg',
    'learned_patterns: any UPDATE marks the row changed for centralcloud-sync'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.graph_edges (source_id, target_id, weight)
      SELECT a.id, b.id, 0 FROM autopilot.graph_nodes AS a, autopilot.graph_nodes AS b
      WHERE a.node_key = 'A' AND b.node_key = 'B'$$,
    '23514', NULL, 'graph_edges.weight is positive'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.graph_edges (source_id, target_id)
      SELECT a.id, b.id FROM autopilot.graph_nodes AS a, autopilot.graph_nodes AS b, generate_series(1, 2)
      WHERE a.node_key = 'A' AND b.node_key = 'B'$$,
    '23505', NULL, 'one edge per pair of nodes'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.backup_metadata (kind, database_name, sha256) VALUES ('hourly', 'app', 'abc')$$,
    '23514', NULL, 'backup_metadata.sha256 is 64 hex digits'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.backup_metadata (kind, database_name) VALUES ('weekly', 'app')$$,
    '23514', NULL, 'backup_metadata.kind is hourly, daily or manual'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.performance_metrics (subject_kind, subject, hour)
      VALUES ('agent', 'a', '2024-01-01 10:30+00')$$,
    '23514', NULL, 'performance_metrics.hour is truncated to the hour'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.vector_stats_history (table_name, column_name, row_count, missing_count)
      VALUES ('t', 'c', 1, 2)$$,
    '23514', NULL, 'vector_stats_history: no more missing embeddings than rows'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, queue, description)
      VALUES ('tap-job', 'runner', 'function', '0 0 * * *', 'w', 'default', 'd')$$,
    '23514', NULL, 'job_catalog: a runner job only enqueues'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_catalog (name, side, kind, target, description)
      VALUES ('tap-job', 'database', 'function', 'autopilot.version', 'd')$$,
    '23514', NULL, 'job_catalog: a job without a schedule must run at startup'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description)
      VALUES (repeat('x', 60), 'database', 'function', '0 0 * * *', 'autopilot.version', 'd')$$,
    '23514', NULL, 'job_catalog: autopilot:<name> fits in pg_cron''s 63 bytes'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_overrides (job_name) VALUES ('backup-hourly')$$,
    '23514', NULL, 'job_overrides: an override changes something'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_overrides (job_name, enabled) VALUES ('no-such-job', false)$$,
    '23503', NULL, 'job_overrides: only for catalog jobs'
);
SELECT throws_ok(
    $$UPDATE autopilot.job_catalog SET timeout = interval '0' WHERE name = 'pagerank'$$,
    '23514', NULL, 'job_catalog: a timeout is positive'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_overrides (job_name, timeout) VALUES ('pagerank', interval '-1 minute')$$,
    '23514', NULL, 'job_overrides: a timeout is positive'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_overrides (job_name, max_attempts) VALUES ('pagerank', 0)$$,
    '23514', NULL, 'job_overrides: at least one attempt'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.job_runs (job_name, side, trigger, attempt) VALUES ('pagerank', 'database', 'manual', 0)$$,
    '23514', NULL, 'job_runs: attempts count from 1'
);
SELECT lives_ok(
    $$INSERT INTO autopilot.job_overrides (job_name, timeout) VALUES ('pagerank', interval '5 minutes')$$,
    'job_overrides: a timeout alone is an override'
);
SELECT throws_ok(
    $$INSERT INTO autopilot.setting_values (name, value) VALUES ('no.such_setting', '1')$$,
    '23503', NULL, 'setting_values: only for defined settings'
);

-- one unfinished job per unique key
SELECT ok(
    (
        SELECT i.indisunique AND i.indpred IS NOT NULL FROM pg_index AS i
        WHERE i.indexrelid = 'autopilot.jobs_unique_key_idx'::regclass
    ),
    'jobs_unique_key_idx is a partial unique index'
);
INSERT INTO autopilot.jobs (worker, unique_key) VALUES ('backup', 'tap:key');
SELECT throws_ok(
    $$INSERT INTO autopilot.jobs (worker, unique_key, state) VALUES ('backup', 'tap:key', 'scheduled')$$,
    '23505', NULL, 'a second unfinished job with the same unique key is rejected'
);
UPDATE autopilot.jobs SET state = 'completed', completed_at = now()
WHERE unique_key = 'tap:key';
SELECT lives_ok(
    $$INSERT INTO autopilot.jobs (worker, unique_key) VALUES ('backup', 'tap:key')$$,
    'once the first is completed, a new job with the same key is accepted'
);
SELECT is(
    (
        SELECT count(*)::integer FROM autopilot.jobs
        WHERE unique_key = 'tap:key'
    ),
    2,
    'both jobs are there: one completed, one available'
);

SELECT * FROM finish();
ROLLBACK;
