"""registry-sync on a real server and a real git repository: ruff, the tree-sitter complexity and
pattern-query analyzers, snapshots per commit, the analysis_results rows that pattern-learning folds
(a fix committed is a success for its rule), an analyzer that hangs or crashes cut off and reported
while the others' results land, and the job run by a runner under the README's grants."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import wait_for
from readme_roles import readme_roles

from pg_autopilot import codebases
from pg_autopilot.analysis import analyzers
from pg_autopilot.analysis.analyzers import Analyzer, Invocation, Output
from pg_autopilot.analysis.treesitter import cyclomatic
from pg_autopilot.workers import REGISTRY, JobContext

# the project's own ruff configuration: registry-sync runs ruff as the project's developers do
RUFF_TOML = 'lint.select = ["F401", "E722"]\n'

SHAPES = '''\
import math
import os
import sys


def area(kind, size):
    """Cyclomatic complexity 11: 1 + if, 2 elif, for, if, while, except + 3 boolean operators."""
    if kind == "square" and size > 0:
        return size * size
    elif kind == "circle" or kind == "disc":
        return math.pi * size * size
    elif kind == "triangle":
        return size * size / 2
    for _ in range(3):
        if size < 0 and kind:
            raise ValueError(size)
    while size > 100:
        size -= 1
    try:
        return float(size)
    except:
        return 0.0
'''

UTIL = """\
import json


def dump(value):
    print(value)  # TODO: a logger
    return json.dumps(value)
"""

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(root: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *arguments], check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repo_db(new_database, tmp_path):
    """An installed database with one registered codebase: a git repository of two Python files
    with ruff findings (shapes.py: F401 os and sys, a bare except; util.py: none), one commit."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "ruff.toml").write_text(RUFF_TOML)
    (root / "shapes.py").write_text(SHAPES)
    (root / "util.py").write_text(UTIL)
    (root / "notes.txt").write_text("not code\n")
    database = new_database("reg")
    database.install("extension")
    database.root = root
    database.head = commit(root, "first")
    with database.connect() as conn:
        codebases.add(conn, "shop", str(root), (), ())
    return database


def context(database) -> JobContext:
    return JobContext(
        job_id=0, attempt=1, queue="default", node="test", dsn=database.dsn, deadline=time.monotonic() + 3600
    )


def run_worker(database, **args) -> str:
    """The registry_sync worker as the runner calls it."""
    return REGISTRY["registry_sync"].function(args, context(database))


def rows(database, query: str, params: list | None = None) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(query, params or []).fetchall()


def latest_snapshot(database) -> int:
    return rows(database, "SELECT max(id) FROM autopilot.analysis_snapshots")[0][0]


def test_cyclomatic_counts_each_decision_for_its_innermost_function() -> None:
    # outer [0, 100) holds inner [10, 50); decisions at 5 (outer), 20 and 30 (inner), 60 (outer)
    # and 200 (outside every function)
    assert cyclomatic([(0, 100), (10, 50)], [30, 5, 200, 60, 20]) == [3, 3]
    assert cyclomatic([], [1, 2]) == []
    # siblings: the second starts where the first ended
    assert cyclomatic([(0, 10), (10, 20)], [9, 10, 15]) == [2, 3]


def test_snapshots_results_and_pattern_learning_follow_the_commits(repo_db) -> None:
    root = repo_db.root
    line = run_worker(repo_db)
    snapshot = latest_snapshot(repo_db)
    assert line.startswith(f"shop@{repo_db.head[:12]}: 2 files; ruff 3 findings (")
    assert "complexity 1 finding (" in line and "queries 3 findings (" in line
    assert line.endswith(f"snapshot {snapshot}: 0 fixed, 0 new; baseline of complexity, queries, ruff")

    assert rows(repo_db, "SELECT commit_sha, files, findings FROM autopilot.analysis_snapshots") == [
        (repo_db.head, 2, 7)
    ]
    assert rows(
        repo_db,
        "SELECT analyzer, status, files, findings, version LIKE %s FROM autopilot.analysis_snapshot_analyzers"
        " ORDER BY analyzer",
        ["%"],
    ) == [("complexity", "ok", 2, 1, True), ("queries", "ok", 2, 3, True), ("ruff", "ok", 2, 3, True)]
    # counts per file and rule: shapes.py has F401 (os, sys) and E722; util.py print and a TODO
    assert rows(
        repo_db,
        "SELECT path, analyzer, rule, findings FROM autopilot.analysis_snapshot_findings ORDER BY 1, 2, 3",
    ) == [
        ("shapes.py", "complexity", "cyclomatic", 1),
        ("shapes.py", "queries", "bare-except", 1),
        ("shapes.py", "ruff", "E722", 1),
        ("shapes.py", "ruff", "F401", 2),
        ("util.py", "queries", "print-call", 1),
        ("util.py", "queries", "todo-comment", 1),
    ]
    assert rows(
        repo_db,
        "SELECT path, functions, complexity_total, complexity_max FROM autopilot.analysis_snapshot_files"
        " ORDER BY path",
    ) == [("shapes.py", 1, 11, 11), ("util.py", 1, 1, 1)]
    # the baseline: neutral rows, one per rule
    assert rows(
        repo_db,
        "SELECT pattern_type, pattern_key, outcome, (details ->> 'findings')::int"
        " FROM autopilot.analysis_results ORDER BY pattern_key",
    ) == [
        ("analyzer_rule", "complexity/cyclomatic", "neutral", 1),
        ("analyzer_rule", "queries/bare-except", "neutral", 1),
        ("analyzer_rule", "queries/print-call", "neutral", 1),
        ("analyzer_rule", "queries/todo-comment", "neutral", 1),
        ("analyzer_rule", "ruff/E722", "neutral", 1),
        ("analyzer_rule", "ruff/F401", "neutral", 2),
    ]

    # nothing changed: nothing recorded
    assert run_worker(repo_db).endswith(f"unchanged since snapshot {snapshot}")
    assert rows(repo_db, "SELECT count(*) FROM autopilot.analysis_snapshots") == [(1,)]

    # a fix committed (the unused os import goes), and a new bare except in util.py
    (root / "shapes.py").write_text(SHAPES.replace("import os\n", ""))
    (root / "util.py").write_text(UTIL + "\n\ndef load(text):\n    try:\n        return json.loads(text)\n"
                                  "    except:\n        return None\n")  # fmt: skip
    fixed = commit(root, "fix")
    line = run_worker(repo_db)
    second = latest_snapshot(repo_db)
    assert line.startswith(f"shop@{fixed[:12]}: 2 files;")
    assert line.endswith(f"snapshot {second}: 1 fixed, 2 new")
    assert rows(
        repo_db,
        "SELECT pattern_key, outcome, details ->> 'path', details ->> 'commit',"
        " (details ->> 'since_snapshot_id')::int"
        " FROM autopilot.analysis_results WHERE (details ->> 'snapshot_id')::int = %s ORDER BY 1, 2",
        [second],
    ) == [
        ("queries/bare-except", "failure", "util.py", fixed, snapshot),
        ("ruff/E722", "failure", "util.py", fixed, snapshot),
        ("ruff/F401", "success", "shapes.py", fixed, snapshot),
    ]

    # pattern-learning folds them
    with repo_db.connect() as conn:
        conn.execute("SELECT autopilot.learn_patterns_from_analysis()")
        learned = conn.execute(
            "SELECT pattern_key, occurrences, successes, failures, success_rate, confidence > 0, codebases"
            " FROM autopilot.learned_patterns WHERE pattern_type = 'analyzer_rule' ORDER BY pattern_key"
        ).fetchall()
    assert ("ruff/F401", 2, 1, 0, 1.0, True, ["shop"]) in learned
    assert ("ruff/E722", 2, 0, 1, 0.0, False, ["shop"]) in learned
    assert ("queries/todo-comment", 1, 0, 0, None, False, ["shop"]) in learned


@pytest.fixture
def extra_analyzers(tmp_path):
    """Analyzers a worker module could register: one that hangs (writing its pid first), one that
    crashes, one whose output is not what it should be. Unregistered afterwards."""
    pid_file = tmp_path / "hang.pid"

    def command(code: str):
        def invocations(paths, options):
            return [Invocation([sys.executable, "-c", code], cwd=options.root)]

        return invocations

    def never(outputs, paths, options) -> Output:
        return Output(files=len(paths))

    added = [
        Analyzer(
            "hang",
            frozenset({".py"}),
            lambda options: "1",
            command(
                f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
            ),
            never,
        ),
        Analyzer(
            "crash", frozenset({".py"}), lambda options: "1", command("import sys; sys.exit('boom')"), never
        ),
        Analyzer(
            "garbled",
            frozenset({".py"}),
            lambda options: "1",
            command("print('not json')"),
            lambda outputs, paths, options: json.loads(outputs[0]),
        ),
    ]
    for analyzer in added:
        analyzers.register(analyzer)
    yield pid_file
    for analyzer in added:
        analyzers.ANALYZERS.pop(analyzer.name, None)


def test_an_analyzer_that_hangs_or_crashes_is_cut_off_and_the_others_land(repo_db, extra_analyzers) -> None:
    with repo_db.connect() as conn:
        conn.execute(
            "SELECT autopilot.set_setting('registry_sync.analyzers', 'ruff,hang,crash,garbled,nosuch')"
        )
        conn.execute("SELECT autopilot.set_setting('registry_sync.analyzer_timeout', '2 seconds')")
    started = time.monotonic()
    with pytest.raises(RuntimeError) as raised:
        run_worker(repo_db)
    elapsed = time.monotonic() - started
    message = str(raised.value)
    assert elapsed < 30, f"the hanging analyzer was not cut off ({elapsed:.1f} s)"
    assert "ruff 3 findings (" in message
    assert "hang TIMED OUT: timed out after 2 s (registry_sync.analyzer_timeout)" in message
    assert "crash FAILED: exited with status 1: boom" in message
    assert "garbled FAILED: its output could not be read: Expecting value" in message
    assert "nosuch FAILED: no such analyzer (registry_sync.analyzers; known: " in message
    # the hanging process is gone, not left behind
    pid = int(extra_analyzers.read_text())
    wait_for(
        lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), "the hanging analyzer to be killed", 10
    )

    # ruff's results landed; the others are recorded as what they are, without counts
    assert rows(
        repo_db,
        "SELECT analyzer, status, findings, message IS NOT NULL FROM autopilot.analysis_snapshot_analyzers"
        " ORDER BY analyzer",
    ) == [
        ("crash", "failed", 0, True),
        ("garbled", "failed", 0, True),
        ("hang", "timed_out", 0, True),
        ("nosuch", "failed", 0, True),
        ("ruff", "ok", 3, False),
    ]
    assert rows(repo_db, "SELECT DISTINCT analyzer FROM autopilot.analysis_results") == [("ruff",)]


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def test_a_vanished_codebase_fails_the_job_after_the_others_are_recorded(repo_db, tmp_path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "main.py").write_text("import os\n")
    with repo_db.connect() as conn:
        codebases.add(conn, "gone", str(other), (), ())
    other.joinpath("main.py").unlink()
    other.rmdir()
    with pytest.raises(RuntimeError) as raised:
        run_worker(repo_db)
    assert "gone: codebase root" in str(raised.value) and "is not a directory" in str(raised.value)
    assert rows(repo_db, "SELECT codebase FROM autopilot.analysis_snapshots") == [("shop",)]


def test_the_runner_runs_registry_sync_as_a_runner_role(repo_db, admin_dsn, autopilot) -> None:
    """The catalog ships registry-sync enabled; `autopilot run` enqueues it and a runner with the
    README's grants records the snapshot; the summary is the run's message."""
    with repo_db.connect() as conn:
        enabled = conn.execute(
            "SELECT enabled, disabled_reason FROM autopilot.job_definitions WHERE name = 'registry-sync'"
        ).fetchone()
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")  # code-ingest starts too
    assert enabled == (True, None)
    assert autopilot("run", "registry-sync", "--dsn", repo_db.dsn).exit_code == 0
    with readme_roles(admin_dsn, repo_db) as roles:
        process = subprocess.Popen(
            [sys.executable, "-m", "pg_autopilot.cli", "runner", "start", "--dsn", roles["runner"],
             "--poll-interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            with repo_db.connect() as conn:
                run = wait_for(
                    lambda: conn.execute(
                        "SELECT status, message FROM autopilot.job_runs"
                        " WHERE job_name = 'registry-sync' AND trigger = 'runner'"
                    ).fetchone(),
                    "registry-sync's run by the runner",
                    timeout=120,
                )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    status, message = run
    assert status == "succeeded", message
    assert message.startswith(f"shop@{repo_db.head[:12]}: 2 files; ruff 3 findings")
    assert rows(repo_db, "SELECT count(*) FROM autopilot.analysis_snapshots") == [(1,)]
