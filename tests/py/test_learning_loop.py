"""The learning loop end to end, as a deployment runs it: an application's agents, a git repository,
knowledge templates, templates data and a work plan; a real runner process whose startup chain loads
and indexes all of it; registry-sync's analyzer findings folded by pattern-learning into learned
patterns, those into the agents' knowledge, and the plan's tasks given to capable agents. Then a fix
committed to the repository: code-ingest parses that one file, and the rule it fixed gains a success.

Nothing is written by hand between the runner's start and the assertions: jobs are triggered with
`autopilot run JOB` (runner-side ones are enqueued and executed by the runner process)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for

STARTUP_CHAIN = [
    "knowledge-migration",
    "templates-data-load",
    "planning-seed",
    "code-ingest",
    "graph-populate",
    "rag-setup",
]

RUFF_TOML = 'lint.select = ["F401", "F821", "E722"]\n'

SHAPES = """\
import math
import os
import sys


def area(kind, size):
    if kind == "circle":
        return math.pi * size * size
    return size * size


def parse(text):
    try:
        return float(text)
    except:
        return None
"""

REPORT = """\
from shapes import area


def report(kinds):
    return [describe(kind, area(kind, 2)) for kind in kinds]


def describe(kind, value):
    return f"{kind}: {value:.2f} {unit}"
"""

APP_JS = """\
import { format } from "./format.js";

export function total(items) {
  let sum = 0;
  for (const item of items) {
    if (item.count == null) continue;
    sum += item.count * item.price;
  }
  console.log("total", sum);
  return format(sum);
}
"""

FORMAT_JS = """\
export function format(amount) {
  return amount.toFixed(2) + " EUR";
}
"""

TEMPLATES = {
    "python-retry.json": {
        "type": "code_template",
        "name": "python-retry",
        "description": "Retry a failing call with exponential backoff.",
        "language": "python",
        "tags": ["python", "resilience"],
        "content": "for attempt in range(5):\n    try:\n        return call()\n    except OSError:\n"
        "        time.sleep(2 ** attempt)\n",
    },
    "review-prompt.json": {
        "type": "prompt",
        "name": "code-review",
        "description": "Review a change for unused imports and swallowed exceptions.",
        "tags": ["review"],
        "content": "Review this diff. Point out unused imports and bare except clauses.",
    },
    "lint-standard.json": {
        "type": "quality_standard",
        "name": "lint-clean",
        "content": {"ruff": ["F401", "F821", "E722"], "max_complexity": 10},
        "metadata": {"owner": "platform"},
    },
}

TEMPLATES_DATA_YAML = """\
name: web
frameworks:
  - flask
  - express
"""

TEMPLATES_DATA_JSON = {"rules": {"F401": "remove the import", "E722": "catch a named exception"}}

PLAN = """\
items:
  - key: fix-imports
    title: Remove the unused imports
    required_skills: [python]
    priority: 5
    details: {rule: ruff/F401}
  - key: js-logging
    title: Replace console.log with the logger
    required_skills: [javascript]
    priority: 3
  - key: review-fixes
    title: Review the import fixes
    required_skills: [python, review]
    priority: 9
    depends_on: [fix-imports]
  - key: schema-audit
    title: Audit the database schema
    required_skills: [sql]
"""

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def git(root: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *arguments], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)
    return git(root, "rev-parse", "HEAD")


def write_inputs(base: Path) -> dict[str, Path]:
    """The repository (one commit), the templates, the templates data and the plan file."""
    repo = base / "shop"
    (repo / "web").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "ruff.toml").write_text(RUFF_TOML)
    (repo / "shapes.py").write_text(SHAPES)
    (repo / "report.py").write_text(REPORT)
    (repo / "web" / "app.js").write_text(APP_JS)
    (repo / "web" / "format.js").write_text(FORMAT_JS)
    commit(repo, "first")

    templates = base / "templates"
    templates.mkdir()
    for name, document in TEMPLATES.items():
        (templates / name).write_text(json.dumps(document, indent=2))
    data = base / "templates_data"
    (data / "stacks").mkdir(parents=True)
    (data / "stacks" / "web.yaml").write_text(TEMPLATES_DATA_YAML)
    (data / "lint.json").write_text(json.dumps(TEMPLATES_DATA_JSON))
    plan = base / "plan.yaml"
    plan.write_text(PLAN)
    return {"repo": repo, "templates": templates, "templates_data": data, "plan": plan}


@pytest.fixture
def loop_db(new_database, tmp_path: Path, autopilot):
    """An installed database configured as a deployment would be, before its runner starts: settings,
    one codebase, and the application's agents with their history (an earlier finished task, and an
    analysis row of the unused-import rule an agent fixed)."""
    paths = write_inputs(tmp_path)
    database = new_database("loop")
    database.install("extension")
    with database.connect() as conn:
        for name, value in (
            ("knowledge.templates_directory", paths["templates"]),
            ("templates_data.directory", paths["templates_data"]),
            ("planning.plan_file", paths["plan"]),
            ("embeddings.model", "hashing"),
        ):
            conn.execute("SELECT autopilot.set_setting(%s, %s)", [name, str(value)])
        # the application's agents: they heartbeat (last_seen_at) and hold history of their own
        conn.execute(
            "INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at) VALUES"
            " ('py-fixer', '{python,review}', 2, now()), ('js-dev', '{javascript}', 1, now())"
        )
        conn.execute(
            "INSERT INTO autopilot.tasks (title, required_skills, status, agent_id, finished_at)"
            " SELECT 'an earlier fix', '{python}', 'succeeded', id, now()"
            " FROM autopilot.agents WHERE name = 'py-fixer'"
        )
        conn.execute(
            "INSERT INTO autopilot.analysis_results"
            " (codebase, analyzer, pattern_type, pattern_key, outcome, agent_id, details)"
            " SELECT 'shop', 'agent', 'analyzer_rule', 'ruff/F401', 'success', id, '{\"path\": \"old.py\"}'"
            " FROM autopilot.agents WHERE name = 'py-fixer'"
        )
    result = autopilot("codebase", "add", "shop", str(paths["repo"]), "--dsn", database.dsn)
    assert result.exit_code == 0, result.output
    database.paths = paths
    return database


def one(conn, query: str, params: list | None = None):
    row = conn.execute(query, params or []).fetchone()
    return row[0] if row else None


def runner_run(conn, job: str, after: int) -> tuple | None:
    """The runner's finished run of ``job`` recorded after ledger id ``after``: (id, status, message,
    started_at, finished_at)."""
    return conn.execute(
        "SELECT id, status, message, started_at, finished_at FROM autopilot.job_runs"
        " WHERE job_name = %s AND trigger = 'runner' AND id > %s AND status <> 'running'"
        " ORDER BY id LIMIT 1",
        [job, after],
    ).fetchone()


def enqueue_and_wait(database, autopilot, job: str, timeout: float = 60) -> tuple:
    """`autopilot run JOB` for a runner-side job (enqueued), then the runner's run of it."""
    with database.connect() as conn:
        before = one(conn, "SELECT coalesce(max(id), 0) FROM autopilot.job_runs")
        result = autopilot("run", job, "--dsn", database.dsn)
        assert result.exit_code == 0, result.output
        run = wait_for(lambda: runner_run(conn, job, before), f"the runner's {job} run", timeout=timeout)
    assert run[1] == "succeeded", f"{job}: {run[1]}: {run[2]}"
    return run


def run_now(database, autopilot, job: str) -> str:
    """`autopilot run JOB` for a database-side job: run now, its summary line."""
    result = autopilot("run", job, "--dsn", database.dsn)
    assert result.exit_code == 0, result.output
    assert f"{job}: succeeded" in result.output, result.output
    return " ".join(result.output.split())


def learned(conn, key: str) -> tuple:
    return conn.execute(
        "SELECT occurrences, successes, failures, confidence FROM autopilot.learned_patterns"
        " WHERE pattern_type = 'analyzer_rule' AND pattern_key = %s",
        [key],
    ).fetchone()


def knowledge_of(conn, agent: str) -> dict:
    return one(
        conn,
        "SELECT k.summary FROM autopilot.agent_knowledge AS k"
        " JOIN autopilot.agents AS a ON a.id = k.agent_id WHERE a.name = %s",
        [agent],
    )


def test_the_learning_loop_runs_by_itself_end_to_end(loop_db, autopilot) -> None:
    repo = loop_db.paths["repo"]
    runner = subprocess.Popen(
        [
            sys.executable, "-m", "pg_autopilot.cli", "runner", "start", "--dsn", loop_db.dsn,
            "--concurrency", "2", "--poll-interval", "0.2", "--log-level", "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        with loop_db.connect() as conn:
            # the startup chain, each link started only after the one before it finished
            chain = wait_for(
                lambda: (runs := [runner_run(conn, job, 0) for job in STARTUP_CHAIN])[-1] and runs,
                "the startup chain",
                timeout=60,
            )
            for job, run in zip(STARTUP_CHAIN, chain, strict=True):
                assert run is not None and run[1] == "succeeded", f"{job}: {run}"
            for job, run, previous in zip(STARTUP_CHAIN[1:], chain[1:], chain[:-1], strict=True):
                assert run[3] >= previous[4], f"{job} started before the link before it finished"
            messages = dict(zip(STARTUP_CHAIN, (run[2] for run in chain), strict=True))
            assert re.search(
                r"^shop: 5 files; 4 parsed; 0 unchanged; .*1 skipped \(1 unknown language\)",
                messages["code-ingest"],
            ), messages["code-ingest"]
            # rag-setup, the last link, finds code and graph done and embeds the knowledge loaded first
            assert messages["rag-setup"].startswith("shop: up to date"), messages["rag-setup"]
            assert "graph: shop: graph up to date" in messages["rag-setup"], messages["rag-setup"]
            assert "3 of 3 artifacts embedded" in messages["rag-setup"], messages["rag-setup"]

            # knowledge-migration, templates-data-load, planning-seed: what the files describe
            assert conn.execute(
                "SELECT artifact_type, name FROM autopilot.knowledge_artifacts ORDER BY 1, 2"
            ).fetchall() == [
                ("code_template", "python-retry"),
                ("prompt", "code-review"),
                ("quality_standard", "lint-clean"),
            ]
            assert conn.execute(
                "SELECT name, content FROM autopilot.template_data WHERE status <> 'removed' ORDER BY name"
            ).fetchall() == [
                ("lint", TEMPLATES_DATA_JSON),
                ("stacks/web", {"name": "web", "frameworks": ["flask", "express"]}),
            ]
            assert conn.execute(
                "SELECT plan_key, status, required_skills FROM autopilot.tasks"
                " WHERE plan_key IS NOT NULL ORDER BY plan_key"
            ).fetchall() == [
                ("fix-imports", "pending", ["python"]),
                ("js-logging", "pending", ["javascript"]),
                ("review-fixes", "pending", ["python", "review"]),
                ("schema-audit", "pending", ["sql"]),
            ]
            # code-ingest, graph-populate, rag-setup: chunks embedded, the graph ranked
            assert (
                one(
                    conn,
                    "SELECT count(DISTINCT file_path) FROM autopilot.code_chunks"
                    " WHERE codebase = 'shop' AND superseded_at IS NULL AND embedding_model IS NOT NULL",
                )
                == 4
            )
            ranked = conn.execute(
                "SELECT node_key FROM autopilot.graph_nodes WHERE codebase = 'shop' AND pagerank IS NOT NULL"
            ).fetchall()
            unranked = (
                "SELECT count(*) FROM autopilot.graph_nodes WHERE codebase = 'shop' AND pagerank IS NULL"
            )
            assert ranked and one(conn, unranked) == 0
            assert one(conn, "SELECT count(*) FROM autopilot.graph_edges") > 0

            # registry-sync, executed by the runner: the first snapshot is every rule's baseline
            enqueue_and_wait(loop_db, autopilot, "registry-sync")
            not_neutral = (
                "SELECT count(*) FROM autopilot.analysis_results"
                " WHERE analyzer <> 'agent' AND outcome <> 'neutral'"
            )
            assert one(conn, not_neutral) == 0
            baseline = dict(
                conn.execute(
                    "SELECT pattern_key, (details ->> 'findings')::int FROM autopilot.analysis_results"
                    " WHERE analyzer <> 'agent'"
                ).fetchall()
            )
            assert {"ruff/F401": 2, "ruff/F821": 1, "ruff/E722": 1, "queries/bare-except": 1}.items() <= (
                baseline.items()
            ), baseline
            assert "queries/console-call" in baseline and "queries/loose-equality" in baseline, baseline

            # the database-side jobs, run now
            run_now(loop_db, autopilot, "pattern-learning")
            # F401: the agent's own success and registry-sync's baseline (an occurrence, no evidence)
            f401 = learned(conn, "ruff/F401")
            assert f401[:3] == (2, 1, 0) and f401[3] > 0, f401
            e722 = learned(conn, "ruff/E722")
            assert e722[:3] == (1, 0, 0) and e722[3] == 0, e722
            assert one(
                conn, "SELECT count(*) FROM autopilot.learned_patterns WHERE pattern_type = 'analyzer_rule'"
            ) == len(baseline)  # fmt: skip

            run_now(loop_db, autopilot, "agent-knowledge-update")
            fixer = knowledge_of(conn, "py-fixer")
            assert fixer["tasks"] == {"succeeded": 1, "failed": 0, "success_rate": 1.0}, fixer
            assert fixer["skills"] == {"python": {"succeeded": 1, "failed": 0, "success_rate": 1.0}}, fixer
            assert fixer["pattern_types"] == ["analyzer_rule"], fixer
            [met] = fixer["patterns_met"]
            assert (met["pattern_key"], met["met"], met["successes"]) == ("ruff/F401", 1, 1), met
            assert met["confidence"] == pytest.approx(f401[3]), met
            assert fixer["top_patterns"]["analyzer_rule"][0]["pattern_key"] == "ruff/F401", fixer
            js = knowledge_of(conn, "js-dev")
            assert js["tasks"]["succeeded"] == 0 and js["patterns_met"] == [], js

            assignment = run_now(loop_db, autopilot, "task-assignment")
            holders = dict(
                conn.execute(
                    "SELECT t.plan_key, a.name FROM autopilot.tasks AS t"
                    " LEFT JOIN autopilot.agents AS a ON a.id = t.agent_id WHERE t.plan_key IS NOT NULL"
                ).fetchall()
            )
            # review-fixes outranks fix-imports and py-fixer has room for both, but it waits for
            # fix-imports to succeed; no agent knows sql
            assert holders == {
                "fix-imports": "py-fixer",
                "js-logging": "js-dev",
                "review-fixes": None,
                "schema-audit": None,
            }, holders
            assert dict(
                conn.execute(
                    "SELECT plan_key, status FROM autopilot.tasks WHERE plan_key IS NOT NULL"
                ).fetchall()
            ) == {
                "fix-imports": "assigned",
                "js-logging": "assigned",
                "review-fixes": "pending",
                "schema-audit": "pending",
            }
            assert "assigned 2 tasks to 2 agents" in assignment, assignment
            assert "2 still pending (1 unassignable, 1 waiting for their dependencies)" in assignment, (
                assignment
            )

            # a fix committed: the unused import of os goes
            (repo / "shapes.py").write_text(SHAPES.replace("import os\n", ""))
            commit(repo, "remove an unused import")
            ingest = enqueue_and_wait(loop_db, autopilot, "code-ingest")
            assert re.search(r"^shop: 5 files; 1 parsed; 3 unchanged; 0 removed; 1 skipped", ingest[2]), (
                ingest[2]
            )
            sync = enqueue_and_wait(loop_db, autopilot, "registry-sync")
            assert "1 fixed, 0 new" in sync[2], sync[2]
            assert conn.execute(
                "SELECT pattern_key, outcome, details ->> 'path' FROM autopilot.analysis_results"
                " WHERE analyzer <> 'agent' AND outcome <> 'neutral'"
            ).fetchall() == [("ruff/F401", "success", "shapes.py")]

            run_now(loop_db, autopilot, "pattern-learning")
            moved = learned(conn, "ruff/F401")
            assert moved[:3] == (3, 2, 0) and moved[3] > f401[3], (f401, moved)
            assert learned(conn, "ruff/E722") == e722  # untouched
            run_now(loop_db, autopilot, "agent-knowledge-update")
            [met] = knowledge_of(conn, "py-fixer")["patterns_met"]
            assert met["confidence"] == pytest.approx(moved[3]), met
    finally:
        runner.terminate()
        _, errors = runner.communicate(timeout=60)
    assert runner.returncode == 0, errors
    logged = [json.loads(line) for line in errors.splitlines() if line.strip()]
    assert not [line for line in logged if line["level"] in ("error", "critical")], errors
