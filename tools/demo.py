"""`make demo`: autopilot on a throwaway cluster, with sample data, every database-side job run once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from pg_autopilot.testing import Cluster

ROOT = Path(__file__).resolve().parents[1]
AUTOPILOT = [sys.executable, "-m", "pg_autopilot.cli"]

SAMPLE_DATA = """
INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at)
SELECT 'agent-' || i, (ARRAY['python', 'sql', 'review', 'python'])[1 + i % 3 : 2 + i % 3], 1 + i % 4, now()
FROM generate_series(1, 12) AS i;

INSERT INTO autopilot.tasks (title, required_skills, priority, status, created_at)
SELECT 'task ' || i, ARRAY['python'], i % 5, 'pending', now() - i * interval '1 minute'
FROM generate_series(1, 40) AS i;

INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, score)
SELECT 'platform', 'lint', 'style', 'rule-' || (i % 20),
       (ARRAY['success', 'failure', 'neutral'])[1 + i % 3], random()
FROM generate_series(1, 500) AS i;

-- knowledge that has gone unused for a long time, and knowledge in use
INSERT INTO autopilot.knowledge_artifacts (artifact_type, name, usage_count, last_used_at, created_at,
                                           embedding, embedding_model)
SELECT 'template', 'template-' || i, i % 3,
       CASE WHEN i % 2 = 0 THEN now() - interval '200 days' ELSE now() - interval '1 day' END,
       now() - interval '300 days',
       CASE WHEN i % 5 = 0 THEN NULL ELSE ARRAY[random(), random(), random(), random()]::real[] END,
       'all-MiniLM-L6-v2'
FROM generate_series(1, 60) AS i;

INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, occurrences, successes, confidence,
                                        first_seen_at, last_seen_at)
SELECT 'style', 'old-rule-' || i, 3, 1, 0.2, now() - interval '400 days', now() - interval '365 days'
FROM generate_series(1, 25) AS i;

-- code chunks: a re-ingest superseded the old versions two weeks ago
INSERT INTO autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash,
                                   embedding, embedding_model, superseded_at)
SELECT 'platform', 'lib/module_' || (i % 30) || '.py', i / 30, 'def f(): pass', md5(i::text),
       ARRAY[random(), random(), random()]::real[], 'code-embed-v1',
       CASE WHEN i >= 60 THEN now() - interval '14 days' END
FROM generate_series(0, 119) AS i;

-- a code graph: 200 modules, each importing a few others (module_0 is imported by most)
INSERT INTO autopilot.graph_nodes (codebase, node_key)
SELECT 'platform', 'module_' || i FROM generate_series(0, 199) AS i;
INSERT INTO autopilot.graph_edges (source_id, target_id)
SELECT DISTINCT s.id, t.id
FROM autopilot.graph_nodes AS s, generate_series(1, 4) AS k,
     LATERAL (SELECT id FROM autopilot.graph_nodes
              WHERE node_key = 'module_' || ((s.id * k * 7 + k) % 200) / (1 + k % 3)) AS t
WHERE s.id <> t.id;

-- runner jobs finished long ago, and backups from last year
INSERT INTO autopilot.jobs (worker, queue, state, completed_at, inserted_at, attempt)
SELECT 'backup', 'backups', 'completed', now() - interval '30 days', now() - interval '30 days', 1
FROM generate_series(1, 300);
INSERT INTO autopilot.backup_metadata (kind, database_name, file_path, size_bytes, status,
                                       started_at, finished_at)
SELECT 'hourly', 'autopilot_demo', '/backups/demo-' || i || '.dump', 1024 * i, 'verified',
       now() - interval '120 days' - i * interval '1 hour', now() - interval '120 days'
FROM generate_series(1, 48) AS i;
"""


def autopilot(dsn: str, *args: str) -> int:
    print(f"\n$ autopilot {' '.join(args)}", flush=True)
    return subprocess.run([*AUTOPILOT, *args], env={"AUTOPILOT_DSN": dsn, "PATH": "/usr/bin:/bin"}).returncode


def run_demo(cluster: Cluster) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute("CREATE DATABASE autopilot_demo")
    dsn = cluster.dsn("autopilot_demo")

    if autopilot(dsn, "install") != 0:
        raise SystemExit("install failed")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SAMPLE_DATA)
        print(
            "\nloaded sample data: 12 agents, 40 tasks, 500 analysis results, 60 artifacts, "
            "120 code chunks, a code graph of 200 modules, 300 finished runner jobs, 48 old backup records"
        )
        jobs = conn.execute(
            "SELECT name, unavailable_reason FROM autopilot.job_definitions "
            "WHERE side = 'database' ORDER BY name"
        ).fetchall()

    print("\nRunning every database-side job once:")
    for name, unavailable in jobs:
        if unavailable:
            print(f"\n- {name}: not run ({unavailable})")
            continue
        autopilot(dsn, "run", name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        backups = str(cluster.directory / "backups")
        conn.execute("SELECT autopilot.set_setting('backups.directory', %s)", [backups])
    autopilot(dsn, "run", "backup-hourly")
    run_runner(dsn)
    autopilot(dsn, "status")


def run_runner(dsn: str) -> None:
    """The runner drains the queue (the backup just enqueued), then stops on SIGTERM."""
    print("\n$ autopilot runner start --concurrency 2   # SIGTERM once the queue is drained", flush=True)
    env = {"AUTOPILOT_DSN": dsn, "PATH": "/usr/bin:/bin"}
    command = [*AUTOPILOT, "runner", "start", "--concurrency", "2", "--log-level", "warning"]
    runner = subprocess.Popen(command, env=env)
    started = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() - started < 120:
            pending = conn.execute(
                "SELECT count(*) FROM autopilot.jobs WHERE state IN ('available', 'executing')"
            ).fetchone()[0]
            if not pending:
                break
            time.sleep(0.2)
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=60)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for worker, state, count, error in conn.execute(
            "SELECT worker, state, count(*), max(errors -> -1 ->> 'error') FROM autopilot.jobs"
            " WHERE inserted_at > now() - interval '1 hour' GROUP BY 1, 2 ORDER BY 1, 2"
        ).fetchall():
            print(f"  runner job {worker}: {count} {state}" + (f" ({error})" if error else ""))
        for kind, status, path, size in conn.execute(
            "SELECT kind, status, file_path, size_bytes FROM autopilot.backup_metadata"
            " WHERE started_at > now() - interval '1 hour' ORDER BY id"
        ).fetchall():
            print(f"  backup ({kind}): {status}, {size or 0:,} bytes, {path}")
