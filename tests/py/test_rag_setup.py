"""rag-setup, the last link of the runner's startup chain: retrieval brought to ready (codebases ingested
and embedded, the graph populated and ranked, knowledge embedded, the search index), and a second run
that finds everything done writes nothing. Run by a real runner process, as in production."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for
from sample_rows import table_digest

from pg_autopilot import codebases

RETRIEVAL_TABLES = (
    "code_files",
    "code_chunks",
    "code_symbols",
    "graph_nodes",
    "graph_edges",
    "knowledge_artifacts",
)


@pytest.fixture
def rag_db(installed_db, tmp_path: Path):
    root = tmp_path / "tree"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "units.py").write_text("def to_metres(feet):\n    return feet * 0.3048\n")
    (root / "pkg" / "area.py").write_text(
        "from pkg.units import to_metres\n\n\ndef square(side_feet):\n    return to_metres(side_feet) ** 2\n"
    )
    (root / "app.js").write_text("export function greet(name) {\n  return `hello ${name}`;\n}\n")
    with installed_db.connect(autocommit=False) as conn:
        codebases.add(conn, "demo", str(root), (), ())
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")
        conn.commit()
    installed_db.root = root
    return installed_db


def run_rag_setup(database) -> tuple[str, str]:
    """`autopilot run rag-setup` (enqueued), drained by a runner process; the run's status and message."""
    with database.connect() as conn:
        before = conn.execute("SELECT coalesce(max(id), 0) FROM autopilot.job_runs").fetchone()[0]
    enqueued = subprocess.run(
        [sys.executable, "-m", "pg_autopilot.cli", "run", "rag-setup", "--dsn", database.dsn],
        capture_output=True,
        text=True,
    )
    assert enqueued.returncode == 0, enqueued.stderr
    process = subprocess.Popen(
        [
            sys.executable, "-m", "pg_autopilot.cli", "runner", "start", "--dsn", database.dsn,
            "--no-startup-jobs", "--poll-interval", "0.2", "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    query = (
        "SELECT status, message FROM autopilot.job_runs"
        " WHERE id > %s AND job_name = 'rag-setup' AND trigger = 'runner' ORDER BY id DESC LIMIT 1"
    )
    try:
        with database.connect() as conn:
            return wait_for(lambda: conn.execute(query, [before]).fetchone(), "rag-setup's run", timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=60)


def digests(database) -> dict[str, tuple[int, str]]:
    with database.connect() as conn:
        return {table: table_digest(conn, table) for table in RETRIEVAL_TABLES}


def test_rag_setup_brings_retrieval_to_ready_and_a_second_run_writes_nothing(rag_db) -> None:
    status, message = run_rag_setup(rag_db)
    assert status == "succeeded", message
    assert re.search(r"demo: 4 files\W+4 parsed", message), message
    assert "graph: demo: 4 files changed" in message and "pagerank: succeeded" in message
    assert "knowledge: template-embed" in message
    assert "search: exact (the server has no pgvector" in message
    with rag_db.connect() as conn:
        assert conn.execute(
            "SELECT count(*) FROM autopilot.code_chunks WHERE superseded_at IS NULL AND embedding IS NULL"
        ).fetchone()[0] == 0  # fmt: skip
        assert conn.execute(
            "SELECT count(*) FROM autopilot.graph_nodes WHERE codebase = 'demo' AND pagerank IS NULL"
        ).fetchone()[0] == 0  # fmt: skip
        assert conn.execute("SELECT count(*) FROM autopilot.graph_edges").fetchone()[0] > 0

    before = digests(rag_db)
    status, message = run_rag_setup(rag_db)
    assert status == "succeeded", message
    assert "demo: up to date" in message and "graph: demo: graph up to date" in message
    assert digests(rag_db) == before, "a second rag-setup changed retrieval data"


def test_rag_setup_with_a_vanished_root_fails_naming_it_after_the_other_steps(rag_db) -> None:
    rag_db.root.rename(rag_db.root.with_name("moved"))
    status, message = run_rag_setup(rag_db)
    assert status == "failed"
    assert "demo:" in message and "graph:" in message and "search:" in message
