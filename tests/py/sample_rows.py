"""Sample rows for every table of schema autopilot, shared by the dump/restore and upgrade tests."""

from __future__ import annotations

import json

import psycopg
from psycopg import sql


def _record_snapshot(commit: str, analyzers: list, files: list, findings: list) -> str:
    """A call of autopilot.record_analysis_snapshot for the codebase of the fixtures."""
    return (
        f"SELECT autopilot.record_analysis_snapshot('app-' || %(tag)s, '{commit}', "
        f"'{json.dumps(analyzers)}', '{json.dumps(files)}', '{json.dumps(findings)}')"
    )


_RUFF = {"analyzer": "ruff", "status": "ok", "version": "ruff 0.6.0", "files": 2, "seconds": 0.2}
_ANALYZERS_OK = [
    _RUFF,
    {"analyzer": "complexity", "status": "ok", "version": "t 10", "files": 2, "seconds": 0.5},
]
_ANALYZERS_TIMED_OUT = [
    _RUFF,
    {"analyzer": "complexity", "status": "timed_out", "version": "t 10", "seconds": 600, "message": "600 s"},
]
_ANALYZERS_NEW = [
    _RUFF,
    {"analyzer": "complexity", "status": "ok", "version": "t 12", "files": 2, "seconds": 1},
]
_FILES = [{"path": "lib/a.py"}, {"path": "lib/b.py"}]
_FILES_MEASURED = [
    {"path": "lib/a.py", "functions": 2, "complexity_total": 14, "complexity_max": 12},
    {"path": "lib/b.py", "functions": 1, "complexity_total": 1, "complexity_max": 1},
]
_FINDINGS_FIRST = [
    {"path": "lib/a.py", "analyzer": "ruff", "rule": "F401", "findings": 2},
    {"path": "lib/a.py", "analyzer": "complexity", "rule": "cyclomatic", "findings": 1},
]
_FINDINGS_FIXED = [{"path": "lib/a.py", "analyzer": "ruff", "rule": "F401", "findings": 1}]


# table -> statements that add rows to it (run in this order). %(tag)s makes each round's values
# unique, so the same statements run again after the restore insert new rows beside the old ones.
# The definition tables (job catalog, settings) are filled by the install script itself.
FIXTURES: dict[str, list[str]] = {
    "job_catalog": [],
    "settings": [],
    "setting_values": [
        "SELECT autopilot.set_setting('jobs.completed_retention', '3 days')",
        "SELECT autopilot.set_setting('patterns.keep_confidence', '0.9')",
    ],
    "job_overrides": [
        "SELECT autopilot.set_job_schedule('table-statistics', '*/7 * * * *')",
        "SELECT autopilot.set_job_enabled('vector-stats', false)",
    ],
    "agents": [
        "INSERT INTO autopilot.agents (name, skills, capacity, status, last_seen_at) VALUES "
        "('coder-' || %(tag)s, '{elixir,sql}', 3, 'active', now()), "
        "('reviewer-' || %(tag)s, '{review}', 1, 'paused', NULL)",
    ],
    "tasks": [
        "INSERT INTO autopilot.tasks (title, required_skills, priority, status, agent_id, details, "
        "assigned_at) "
        "SELECT 'task ' || %(tag)s, '{sql}', 5, 'assigned', a.id, '{\"ticket\": 42}', now() "
        "FROM autopilot.agents AS a WHERE a.name = 'coder-' || %(tag)s",
        "INSERT INTO autopilot.tasks (title) VALUES ('pending ' || %(tag)s)",
    ],
    # planning-seed: two tasks of a plan (tasks.plan_key), the second waiting for the first
    "task_dependencies": [
        "SELECT autopilot.seed_plan(jsonb_build_array("
        "jsonb_build_object('key', 'audit-' || %(tag)s, 'title', 'Audit', 'required_skills', ARRAY['sql']), "
        "jsonb_build_object('key', 'review-' || %(tag)s, 'title', 'Review', 'priority', 3, "
        "'depends_on', jsonb_build_array('audit-' || %(tag)s))))",
    ],
    "analysis_results": [
        "INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, "
        "score, agent_id, task_id, details) "
        "SELECT 'app', 'credo', 'naming', 'snake_case-' || %(tag)s, 'success', 0.75, a.id, t.id, "
        "'{\"line\": 7}' "
        "FROM autopilot.agents AS a, autopilot.tasks AS t "
        "WHERE a.name = 'coder-' || %(tag)s AND t.title = 'task ' || %(tag)s",
    ],
    "learned_patterns": [
        "INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, occurrences, successes, "
        "failures, success_rate, confidence, mean_score, codebases) "
        "VALUES ('naming', 'snake_case-' || %(tag)s, 10, 8, 2, 0.8, 0.66, 0.7, '{app}')",
    ],
    "agent_knowledge": [
        "INSERT INTO autopilot.agent_knowledge (agent_id, summary) "
        "SELECT a.id, jsonb_build_object('tasks', 3, 'tag', %(tag)s::text) "
        "FROM autopilot.agents AS a WHERE a.name = 'coder-' || %(tag)s",
    ],
    # a task finished by an agent: the tasks trigger queues the agent for agent-knowledge-update
    "agent_knowledge_pending": [
        "INSERT INTO autopilot.tasks (title, required_skills, status, agent_id, finished_at) "
        "SELECT 'done ' || %(tag)s, '{sql}', 'succeeded', a.id, now() "
        "FROM autopilot.agents AS a WHERE a.name = 'coder-' || %(tag)s",
    ],
    # the central database's side of centralcloud-sync (any database may be one)
    "central_pattern_inbox": [
        "INSERT INTO autopilot.central_pattern_inbox (instance_id, pattern_type, pattern_key, occurrences, "
        "successes, failures, mean_score, score_count, first_seen_at, last_seen_at, codebases) "
        "VALUES ('instance-' || %(tag)s, 'naming', 'camelCase', 4, 3, 1, 0.5, 2, now(), now(), '{web}')",
    ],
    "central_instance_patterns": [
        "INSERT INTO autopilot.central_instance_patterns (instance_id, pattern_type, pattern_key, "
        "occurrences, successes, failures, mean_score, score_count, first_seen_at, last_seen_at, codebases, "
        "inbox_id, received_at) VALUES ('instance-' || %(tag)s, 'naming', 'kebab-case', 2, 1, 0, NULL, 0, "
        "now(), now(), '{cli}', 7, now())",
    ],
    "global_patterns": [
        "INSERT INTO autopilot.global_patterns (pattern_type, pattern_key, instances, occurrences, "
        "successes, failures, success_rate, confidence, mean_score, score_count, first_seen_at, "
        "last_seen_at, codebases) VALUES ('naming', 'global-' || %(tag)s, 2, 6, 4, 1, 0.8, 0.37, NULL, 0, "
        "now(), now(), '{cli,web}')",
    ],
    # the two learning jobs create and advance their watermarks
    "learning_watermarks": [
        "SELECT autopilot.learn_patterns_from_analysis()",
        "SELECT autopilot.update_agent_knowledge()",
    ],
    "performance_metrics": [
        "INSERT INTO autopilot.performance_metrics (subject_kind, subject, hour, succeeded, failed, "
        "success_rate, mean_duration, p50_duration, p95_duration) "
        "VALUES ('worker', 'backup-' || %(tag)s, date_trunc('hour', now(), 'UTC'), 9, 1, 0.9, "
        "'2 seconds', '1.5 seconds', '4 seconds')",
    ],
    # a failed run of the runner: its trigger queues the hour for metrics-refresh (finished tasks and
    # completed jobs queue theirs too)
    "performance_metrics_pending": [
        "INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, message) "
        "VALUES ('backup-hourly', 'runner', 'runner', 'failed', now() - interval '3 seconds', now(), "
        "'pg_dump failed ' || %(tag)s)",
    ],
    "knowledge_artifacts": [
        "INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, content, source, usage_count, "
        "last_used_at, embedding, embedding_model) "
        "VALUES ('template', 'genserver-' || %(tag)s, '{\"body\": \"defmodule\"}', 'git', 4, now(), "
        "'{0.1,0.2,0.3}', 'all-MiniLM-L6-v2')",
    ],
    # the content a loader replaced (knowledge-migration, template-sync), kept for the artifact above
    "knowledge_artifact_versions": [
        "INSERT INTO autopilot.knowledge_artifact_versions (artifact_id, version, content, content_hash, "
        "source, source_path, valid_from, valid_until) "
        "SELECT a.id, 1, '{\"body\": \"defmodule v1\"}', repeat('c', 64), 'template-sync', "
        "'genserver.json', now() - interval '1 day', now() "
        "FROM autopilot.knowledge_artifacts AS a WHERE a.name = 'genserver-' || %(tag)s",
    ],
    # templates-data-load: a loaded document and one whose file was removed
    "template_data": [
        "INSERT INTO autopilot.template_data (name, file_path, format, content, content_hash) "
        "VALUES ('frameworks/phoenix-' || %(tag)s, 'frameworks/phoenix-' || %(tag)s || '.yaml', 'yaml', "
        "'{\"language\": \"elixir\"}', repeat('d', 64))",
        "INSERT INTO autopilot.template_data (name, file_path, format, content, content_hash, status, "
        "removed_at) VALUES ('old-' || %(tag)s, 'old-' || %(tag)s || '.json', 'json', '{}', repeat('e', 64), "
        "'removed', now())",
    ],
    # template-sync's one row: the commit last synced
    "template_sync_state": [
        "INSERT INTO autopilot.template_sync_state (repository, branch, commit_sha, summary) "
        "VALUES ('https://git.example.org/templates.git', 'main', repeat('f', 40), '{\"added\": 3}') "
        "ON CONFLICT (singleton) DO NOTHING",
    ],
    "code_chunks": [
        "INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, "
        "embedding, embedding_model, superseded_at) "
        "VALUES ('app', 'lib/' || %(tag)s || '.ex', 0, 'defmodule A do end', 'abc', '{1,2,3,4}', 'm1', "
        "NULL), "
        "('app', 'lib/' || %(tag)s || '.ex', 0, 'defmodule A0 do end', 'abd', NULL, NULL, now())",
    ],
    "codebases": [
        "INSERT INTO autopilot.codebases (name, root_path, include_globs, exclude_globs, last_summary) "
        "VALUES ('app-' || %(tag)s, '/src/app', '{lib/**}', '{**/test/**}', '{\"files\": 2}')",
    ],
    "code_files": [
        "INSERT INTO autopilot.code_files (codebase, file_path, language, module_name, content_hash, "
        "size_bytes, chunker_version) "
        "VALUES ('app-' || %(tag)s, 'lib/a.py', 'python', 'lib.a', 'h1', 120, 'c1')",
        "INSERT INTO autopilot.code_files (codebase, file_path, content_hash, size_bytes, status, "
        "skip_reason) "
        "VALUES ('app-' || %(tag)s, 'logo.png', 'h2', 9, 'skipped', 'binary')",
    ],
    "code_symbols": [
        "INSERT INTO autopilot.code_symbols (codebase, file_path, role, name, kind, line) "
        "VALUES ('app-' || %(tag)s, 'lib/a.py', 'definition', 'A.run', 'method', 3), "
        "('app-' || %(tag)s, 'lib/a.py', 'import', 'os', NULL, 1)",
    ],
    # registry-sync: a baseline snapshot; one where a finding is gone and the complexity analyzer timed
    # out (a success row); one with a new complexity version (its baseline again); the same once more
    # (unchanged: nothing recorded)
    "analysis_snapshots": [_record_snapshot("c0ffee", _ANALYZERS_OK, _FILES_MEASURED, _FINDINGS_FIRST)],
    "analysis_snapshot_files": [_record_snapshot("decade", _ANALYZERS_TIMED_OUT, _FILES, _FINDINGS_FIXED)],
    "analysis_snapshot_analyzers": [
        _record_snapshot("facade", _ANALYZERS_NEW, _FILES_MEASURED, _FINDINGS_FIRST)
    ],
    "analysis_snapshot_findings": [
        _record_snapshot("facade", _ANALYZERS_NEW, _FILES_MEASURED, _FINDINGS_FIRST)
    ],
    "graph_nodes": [
        "INSERT INTO autopilot.graph_nodes (codebase, node_key, kind, pagerank, attributes) "
        "VALUES ('app', 'A-' || %(tag)s, 'module', 0.4, '{}'), "
        "('app', 'B-' || %(tag)s, 'module', NULL, '{\"x\": 1}')",
    ],
    "graph_edges": [
        "INSERT INTO autopilot.graph_edges (source_id, target_id, weight, kind) "
        "SELECT s.id, t.id, 2.5, 'calls' FROM autopilot.graph_nodes AS s, autopilot.graph_nodes AS t "
        "WHERE s.node_key = 'A-' || %(tag)s AND t.node_key = 'B-' || %(tag)s",
    ],
    "backup_metadata": [
        "INSERT INTO autopilot.backup_metadata (kind, database_name, file_path, size_bytes, sha256, status, "
        "started_at, finished_at) "
        "VALUES ('hourly', 'app', '/backups/' || %(tag)s || '-new.dump', 1024, repeat('a', 64), 'succeeded', "
        "now(), now()), "
        "('daily', 'app', '/backups/' || %(tag)s || '-old.dump', 2048, repeat('b', 64), 'verified', "
        "now() - interval '200 days', now() - interval '200 days')",
    ],
    # backup-archival moves the 200-day-old record (keeping its id) into the archive
    "backup_metadata_archive": ["SELECT autopilot.run_job('backup-archival')"],
    # a ledger run of a real job, and a failed one
    "job_runs": [
        "SELECT autopilot.run_job('table-statistics')",
        "INSERT INTO autopilot.job_runs (job_name, side, trigger, status, finished_at, message, "
        "error_sqlstate, details) "
        "VALUES ('old-job-cleanup', 'database', 'pg_cron', 'failed', clock_timestamp(), 'boom ' || %(tag)s, "
        "'XX000', '{\"detail\": \"x\"}')",
    ],
    "jobs": [
        "SELECT autopilot.run_job('backup-hourly')",
        "INSERT INTO autopilot.jobs (queue, worker, args, state, attempt, errors, meta, completed_at) "
        "VALUES ('default', 'code_ingest', jsonb_build_object('tag', %(tag)s::text), 'completed', 1, "
        '\'[{"attempt": 1, "error": "timeout"}]\', \'{"m": true}\', now())',
    ],
    "index_maintenance": [
        "INSERT INTO autopilot.index_maintenance (index_name, action, statement, reason, size_bytes, "
        "bloat_ratio, state, armed_at, finished_at, message) "
        "VALUES ('autopilot.jobs_pkey', 'reindex', 'REINDEX INDEX CONCURRENTLY autopilot.jobs_pkey', "
        "'bloat ' || %(tag)s, 81920, 0.45, 'done', now(), now(), 'pg_cron: REINDEX')",
    ],
    # a job arming itself (index-reindex does so while a cycle lasts)
    "job_arming": [
        "INSERT INTO autopilot.job_arming (job_name, schedule, command) "
        "VALUES ('index-reindex', '* * * * *', NULL) ON CONFLICT (job_name) DO NOTHING",
    ],
    # vector-stats measures the embedding columns filled above
    "vector_stats_history": ["SELECT autopilot.run_job('vector-stats')"],
}


def user_tables(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'autopilot'::regnamespace "
            "AND relkind IN ('r', 'p') ORDER BY relname"
        )
    ]


def fill(conn: psycopg.Connection, tag: str) -> None:
    with conn.transaction():
        for statements in FIXTURES.values():
            for statement in statements:
                conn.execute(statement, {"tag": tag})


def table_digest(conn: psycopg.Connection, table: str, columns: list[str] | None = None) -> tuple[int, str]:
    """Row count and a digest of every row; of the given columns only, when columns are named."""
    row = (
        sql.SQL("t")
        if columns is None
        else sql.SQL("ROW({})").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    )
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) "
        "FROM (SELECT {} AS r FROM {} AS t) AS x"
    ).format(row, sql.Identifier("autopilot", table))
    return conn.execute(query).fetchone()


def table_columns(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The columns of every autopilot table, in order."""
    columns: dict[str, list[str]] = {}
    for table, column in conn.execute(
        "SELECT c.relname, a.attname FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid "
        "WHERE c.relnamespace = 'autopilot'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY c.relname, a.attnum"
    ).fetchall():
        columns.setdefault(table, []).append(column)
    return columns


def identity_columns(conn: psycopg.Connection) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT c.relname, a.attname FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid "
        "WHERE c.relnamespace = 'autopilot'::regnamespace AND a.attidentity <> '' ORDER BY 1"
    ).fetchall()


def identities_behind(conn: psycopg.Connection) -> list[str]:
    """Identity columns whose sequence would hand out a value the table already holds."""
    behind = []
    for table, column in identity_columns(conn):
        sequence = conn.execute(
            "SELECT pg_get_serial_sequence(%s, %s)", [f"autopilot.{table}", column]
        ).fetchone()[0]
        query = sql.SQL(
            "SELECT (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {seq}) "
            "> coalesce((SELECT max({col}) FROM {tbl}), 0)"
        ).format(
            seq=sql.Identifier(*sequence.split(".")),
            col=sql.Identifier(column),
            tbl=sql.Identifier("autopilot", table),
        )
        if not conn.execute(query).fetchone()[0]:
            behind.append(f"{table}.{column}")
    return behind
