-- Database side: pg_cron runs the SQL. Schedules are the seed's, in UTC.
INSERT INTO autopilot.job_catalog (
    name, side, kind, schedule, only_on_dow, target, description, cron_elsewhere_worker
)
VALUES
(
    'pattern-learning', 'database', 'function', '*/5 * * * *', NULL,
    'autopilot.learn_patterns_from_analysis', 'Fold new analysis results into learned patterns.',
    NULL
),
(
    'centralcloud-sync', 'database', 'function', '*/10 * * * *', NULL,
    'autopilot.sync_learning_to_centralcloud', 'Push changed learned patterns to the central database.',
    NULL
),
(
    'centralcloud-merge', 'database', 'function', '5-59/10 * * * *', NULL,
    'autopilot.merge_central_patterns',
    'Central database: merge the patterns instances pushed into global patterns (between their pushes).',
    NULL
),
(
    'agent-knowledge-update', 'database', 'function', '0 * * * *', NULL,
    'autopilot.update_agent_knowledge', 'Recompute the per-agent knowledge summary.',
    NULL
),
(
    'task-assignment', 'database', 'function', '*/2 * * * *', NULL,
    'autopilot.assign_pending_tasks', 'Assign pending tasks to capable agents with free capacity.',
    NULL
),
(
    'metrics-refresh', 'database', 'function', '*/30 * * * *', NULL,
    'autopilot.refresh_performance_metrics', 'Refresh hourly performance aggregates.',
    NULL
),
(
    'vacuum-analyze', 'database', 'statement', '0 23 * * *', NULL,
    'VACUUM (ANALYZE) autopilot.agents, autopilot.agent_knowledge, autopilot.agent_knowledge_pending, '
    || 'autopilot.analysis_results, autopilot.analysis_snapshot_analyzers, autopilot.analysis_snapshot_files, '
    || 'autopilot.analysis_snapshot_findings, autopilot.analysis_snapshots, '
    || 'autopilot.backup_metadata, autopilot.backup_metadata_archive, autopilot.central_instance_patterns, '
    || 'autopilot.central_pattern_inbox, autopilot.code_chunks, autopilot.code_files, autopilot.code_symbols, '
    || 'autopilot.codebases, autopilot.global_patterns, '
    || 'autopilot.graph_edges, autopilot.graph_nodes, autopilot.index_maintenance, autopilot.job_arming, '
    || 'autopilot.job_catalog, autopilot.job_overrides, autopilot.job_runs, autopilot.jobs, '
    || 'autopilot.knowledge_artifact_versions, autopilot.knowledge_artifacts, autopilot.learned_patterns, '
    || 'autopilot.learning_watermarks, '
    || 'autopilot.performance_metrics, autopilot.performance_metrics_pending, '
    || 'autopilot.setting_values, autopilot.settings, autopilot.task_dependencies, autopilot.tasks, '
    || 'autopilot.template_data, autopilot.template_sync_state, autopilot.vector_stats_history',
    'VACUUM ANALYZE of the autopilot tables (one top-level statement: VACUUM cannot run in a function).',
    NULL
),
(
    'table-statistics', 'database', 'function', '0 */6 * * *', NULL,
    'autopilot.analyze_database', 'ANALYZE the database, keeping planner statistics current.',
    NULL
),
(
    'old-job-cleanup', 'database', 'batched', '0 0 * * 0', NULL,
    'autopilot._cleanup_old_jobs_batch', 'Delete finished runner jobs and ledger runs past their retention.',
    NULL
),
(
    'old-artifact-cleanup', 'database', 'batched', '0 1 * * 0', NULL,
    'autopilot._cleanup_old_artifacts_batch',
    'Delete unused knowledge artifacts and unused, unconfident learned patterns.',
    NULL
),
(
    'code-chunk-cleanup', 'database', 'batched', '0 2 * * 0', NULL,
    'autopilot._cleanup_code_chunks_batch', 'Delete obsolete (superseded) code chunks.',
    NULL
),
(
    'index-reindex', 'database', 'function', '0 3 * * 0', NULL,
    'autopilot.reindex_bloated_indexes',
    'Rebuild bloated autopilot indexes concurrently (where pg_cron lives in another database, on the runner).',
    'index_reindex'
),
(
    'vector-stats', 'database', 'function', '0 4 * * 0', NULL,
    'autopilot.collect_vector_stats', 'Record embedding statistics and ANALYZE the embedding tables.',
    NULL
),
-- first Sunday of the month: cron ORs day-of-month and day-of-week, so the
-- schedule fires on days 1-7 and only_on_dow keeps the Sunday among them
(
    'backup-archival', 'database', 'batched', '0 5 1-7 * *', 0,
    'autopilot._archive_old_backups_batch', 'Move old backup records into the archive (first Sunday of the month).',
    NULL
),
(
    'pagerank', 'database', 'function', '0 3 * * *', NULL,
    'autopilot.recalculate_all_pagerank', 'Recompute PageRank over the code graph.',
    NULL
);

INSERT INTO autopilot.job_catalog (
    name, side, kind, schedule, target, requires_local_pg_cron, only_when_armed, description,
    cron_elsewhere_worker
)
VALUES
(
    'rescue-orphaned-jobs', 'database', 'function', '* * * * *', 'autopilot.rescue_orphaned_jobs',
    false, false,
    'Take back runner jobs whose runner stopped heartbeating (retry them, or discard past max attempts).',
    NULL
),
-- where pg_cron lives in another database, the runner prunes its history (worker cron_history_cleanup)
(
    'cron-history-cleanup', 'database', 'batched', '30 0 * * *', 'autopilot._cleanup_cron_history_batch',
    false, false,
    'Delete cron.job_run_details rows past cron_history.retention (pg_cron never prunes them); '
    || 'where pg_cron lives in another database, the runner does it there.',
    'cron_history_cleanup'
),
-- REINDEX CONCURRENTLY cannot run in a function: index-reindex arms this job with
-- one top-level statement at a time (see autopilot.reindex_bloated_indexes)
(
    'index-reindex-step', 'database', 'statement', '* * * * *',
    'SELECT ''index-reindex-step runs only what index-reindex arms''',
    true, true,
    'Runs, at top level, the one REINDEX / DROP INDEX CONCURRENTLY statement index-reindex has armed.',
    NULL
);
