"""`make demo`: autopilot's learning loop on a throwaway cluster, the way a deployment runs it.

A small git repository, knowledge templates, templates data and a work plan are written next to the
demo cluster; the application registers its agents; `autopilot codebase add` and `autopilot runner
start`, whose startup chain loads and indexes all of it; then registry-sync (run by the runner),
pattern-learning, agent-knowledge-update and task-assignment. A fix is committed and the loop runs
again, so the rule it fixed gains confidence. Finally a backup, `autopilot status` and a summary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from pg_autopilot.testing import Cluster

AUTOPILOT = [sys.executable, "-m", "pg_autopilot.cli"]
STARTUP_CHAIN = (
    "knowledge-migration",
    "templates-data-load",
    "planning-seed",
    "code-ingest",
    "graph-populate",
    "rag-setup",
)

# -- the inputs: what a team would have on the runner's host ----------------------------------------

REPOSITORY = {
    "ruff.toml": 'lint.select = ["E", "F"]\n',
    "shop/__init__.py": '"""A small shop: carts, prices and payments."""\n',
    "shop/pricing.py": """\
import os
import sys

VAT = 0.2


def net_price(unit_price, quantity):
    return unit_price * quantity


def gross_price(unit_price, quantity):
    return round(net_price(unit_price, quantity) * (1 + VAT), 2)
""",
    "shop/cart.py": """\
from shop.pricing import gross_price


class Cart:
    def __init__(self):
        self.lines = []

    def add(self, sku, unit_price, quantity=1):
        self.lines.append((sku, unit_price, quantity))

    def total(self):
        return sum(gross_price(price, quantity) for _, price, quantity in self.lines)
""",
    "shop/payments.py": '''\
import time

from shop.cart import Cart


class PaymentDeclined(Exception):
    pass


def charge(gateway, cart: Cart, attempts=3):
    """Charge the cart's total, retrying a failed payment with exponential backoff."""
    for attempt in range(attempts):
        try:
            return gateway.charge(cart.total())
        except:
            time.sleep(2**attempt)
    raise PaymentDeclined(cart)


def refund(gateway, payment_id):
    # TODO: partial refunds
    return gateway.refund(payment_id, reason)
''',
    "web/app.js": """\
import { formatAmount } from "./format.js";

export function showTotal(cart) {
  const total = cart.lines.reduce((sum, line) => sum + line.price * line.quantity, 0);
  if (total == 0) console.log("empty cart");
  return formatAmount(total);
}
""",
    "web/format.js": """\
export function formatAmount(amount) {
  return amount.toFixed(2) + " EUR";
}
""",
}

TEMPLATES = {
    "python-retry.json": {
        "type": "code_template",
        "name": "python-retry",
        "description": "Retry a failing call with exponential backoff, catching only transient errors.",
        "language": "python",
        "tags": ["python", "resilience"],
        "content": "for attempt in range(5):\n    try:\n        return call()\n    except OSError:\n"
        "        time.sleep(2 ** attempt)\n",
    },
    "code-review.json": {
        "type": "prompt",
        "name": "code-review",
        "description": "Review a change for unused imports, undefined names and swallowed exceptions.",
        "tags": ["review"],
        "content": "Review this diff. Point out unused imports, undefined names and bare except clauses.",
    },
    "lint-clean.json": {
        "type": "quality_standard",
        "name": "lint-clean",
        "description": "What a change must pass before review.",
        "content": {"ruff": ["F401", "F821", "E722"], "max_complexity": 10},
    },
}

TEMPLATES_DATA = {
    "stacks/web.yaml": "name: web\nframeworks:\n  - flask\n  - express\n",
    "lint.json": json.dumps({"F401": "remove the import", "E722": "catch a named exception"}, indent=2),
}

PLAN = """\
items:
  - key: fix-imports
    title: Remove the unused imports
    required_skills: [python]
    priority: 5
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

# the application's side: its agents, and what one of them did before autopilot was installed
AGENTS = """
INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at) VALUES
    ('py-fixer', '{python,review}', 2, now()),
    ('js-dev', '{javascript}', 1, now());
INSERT INTO autopilot.tasks (title, required_skills, status, agent_id, finished_at)
SELECT 'an earlier import fix', '{python}', 'succeeded', id, now()
FROM autopilot.agents WHERE name = 'py-fixer';
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, agent_id)
SELECT 'shop', 'agent', 'analyzer_rule', 'ruff/F401', 'success', id
FROM autopilot.agents WHERE name = 'py-fixer';
"""

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "demo",
    "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "demo",
    "GIT_COMMITTER_EMAIL": "demo@example.com",
}


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def environment(dsn: str) -> dict[str, str]:
    """The caller's environment without its libpq and autopilot variables, pointed at the demo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "AUTOPILOT_"))}
    return {**env, **GIT_IDENTITY, "AUTOPILOT_DSN": dsn}


def autopilot(dsn: str, *args: str, check: bool = True) -> int:
    print(f"\n$ autopilot {' '.join(args)}", flush=True)
    code = subprocess.run([*AUTOPILOT, *args], env=environment(dsn)).returncode
    if check and code != 0:
        raise SystemExit(f"autopilot {' '.join(args)} failed (exit {code})")
    return code


def git(root: Path, *args: str) -> None:
    print(f"$ git {' '.join(args)}", flush=True)
    subprocess.run(["git", "-C", str(root), *args], check=True, env={**os.environ, **GIT_IDENTITY})


def write_inputs(base: Path) -> dict[str, Path]:
    paths = {name: base / name for name in ("shop", "templates", "templates_data")}
    for relative, text in REPOSITORY.items():
        (paths["shop"] / relative).parent.mkdir(parents=True, exist_ok=True)
        (paths["shop"] / relative).write_text(text)
    git(paths["shop"], "init", "-q")
    git(paths["shop"], "add", "-A")
    git(paths["shop"], "commit", "-qm", "a small shop")
    paths["templates"].mkdir()
    for name, document in TEMPLATES.items():
        (paths["templates"] / name).write_text(json.dumps(document, indent=2) + "\n")
    for relative, text in TEMPLATES_DATA.items():
        (paths["templates_data"] / relative).parent.mkdir(parents=True, exist_ok=True)
        (paths["templates_data"] / relative).write_text(text)
    paths["plan"] = base / "plan.yaml"
    paths["plan"].write_text(PLAN)
    return paths


# -- the runner and the ledger ----------------------------------------------------------------------


def last_run(conn: psycopg.Connection, job: str, after: int = 0):
    """The runner's finished run of ``job`` after ledger id ``after``: (status, message)."""
    return conn.execute(
        "SELECT status, message FROM autopilot.job_runs WHERE job_name = %s AND trigger = 'runner'"
        " AND id > %s AND status <> 'running' ORDER BY id LIMIT 1",
        [job, after],
    ).fetchone()


def wait_for_run(conn: psycopg.Connection, job: str, after: int = 0, timeout: float = 300) -> tuple:
    deadline = time.monotonic() + timeout
    while (run := last_run(conn, job, after)) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"the runner did not finish {job} within {timeout:.0f} s")
        time.sleep(0.2)
    print(f"  {job}: {run[0]} — {run[1]}", flush=True)
    if run[0] != "succeeded":
        raise SystemExit(f"{job} {run[0]}: {run[1]}")
    return run


def run_on_runner(conn: psycopg.Connection, dsn: str, job: str) -> None:
    """`autopilot run JOB` enqueues a runner-side job; the running runner executes it."""
    before = conn.execute("SELECT coalesce(max(id), 0) FROM autopilot.job_runs").fetchone()[0]
    autopilot(dsn, "run", job)
    wait_for_run(conn, job, before)


def start_runner(dsn: str, log: Path) -> subprocess.Popen:
    print(f"\n$ autopilot runner start --concurrency 2 2>{log}   # JSON log lines", flush=True)
    command = [*AUTOPILOT, "runner", "start", "--concurrency", "2", "--poll-interval", "0.5"]
    with log.open("w") as stderr:
        return subprocess.Popen(command, env=environment(dsn), stdout=subprocess.DEVNULL, stderr=stderr)


def stop_runner(runner: subprocess.Popen) -> None:
    print("\n$ kill -TERM <runner>   # it finishes what it runs and exits", flush=True)
    runner.send_signal(signal.SIGTERM)
    runner.wait(timeout=60)


# -- the demo ---------------------------------------------------------------------------------------


def run_demo(cluster: Cluster) -> None:
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute("CREATE DATABASE autopilot_demo")
    dsn = cluster.dsn("autopilot_demo")
    base = cluster.directory / "inputs"  # removed with the demo cluster
    base.mkdir()

    say(f"the inputs, in {base}: a git repository, templates, templates data and a plan")
    paths = write_inputs(base)

    say("install autopilot, registering its schedules with pg_cron")
    autopilot(dsn, "install")
    for name, value in (
        ("knowledge.templates_directory", paths["templates"]),
        ("templates_data.directory", paths["templates_data"]),
        ("planning.plan_file", paths["plan"]),
        ("embeddings.model", "hashing"),  # lexical and dependency-free: quick for a demo
    ):
        autopilot(dsn, "settings", name, str(value))
    autopilot(dsn, "codebase", "add", "shop", str(paths["shop"]))

    say("the application registers its agents (and the history one of them brings along)")
    print(AGENTS.strip())
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(AGENTS)

    say("the runner starts; its startup chain loads the files and indexes the codebase")
    runner = start_runner(dsn, base / "runner.log")
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for job in STARTUP_CHAIN:
                wait_for_run(conn, job)

            say("the loop: analyzers, learning, agent knowledge, assignment")
            run_on_runner(conn, dsn, "registry-sync")
            for job in ("pattern-learning", "agent-knowledge-update", "task-assignment"):
                autopilot(dsn, "run", job)

            say("py-fixer removes the unused imports: a commit, and the loop again")
            pricing = paths["shop"] / "shop" / "pricing.py"
            pricing.write_text(pricing.read_text().replace("import os\nimport sys\n\n", ""))
            git(paths["shop"], "commit", "-qam", "remove unused imports")
            run_on_runner(conn, dsn, "code-ingest")
            run_on_runner(conn, dsn, "registry-sync")
            for job in ("pattern-learning", "agent-knowledge-update"):
                autopilot(dsn, "run", job)

            say("a backup, run by the runner")
            autopilot(dsn, "settings", "backups.directory", str(cluster.directory / "backups"))
            run_on_runner(conn, dsn, "backup-hourly")

            autopilot(dsn, "status")
    finally:
        stop_runner(runner)

    say("what happened")
    summary(dsn)
    autopilot(dsn, "code", "top", "--codebase", "shop", "-k", "5")
    autopilot(dsn, "search", "retry a failed payment with backoff", "--codebase", "shop", "-k", "3")
    autopilot(dsn, "search", "--knowledge", "retry with backoff", "-k", "2")


def summary(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        print("\nThe plan's tasks:")
        for key, status, agent, skills in conn.execute(
            "SELECT t.plan_key, t.status, a.name, t.required_skills FROM autopilot.tasks AS t"
            " LEFT JOIN autopilot.agents AS a ON a.id = t.agent_id WHERE t.plan_key IS NOT NULL"
            " ORDER BY t.priority DESC, t.id"
        ).fetchall():
            why = ""
            if agent is None:
                blocked = conn.execute(
                    "SELECT string_agg(d.plan_key, ', ') FROM autopilot.task_dependencies AS td"
                    " JOIN autopilot.tasks AS d ON d.id = td.depends_on_task_id"
                    " JOIN autopilot.tasks AS t ON t.id = td.task_id"
                    " WHERE t.plan_key = %s AND d.status <> 'succeeded'",
                    [key],
                ).fetchone()[0]
                why = f" (waits for {blocked})" if blocked else f" (no agent has {', '.join(skills)})"
            print(f"  {key:<14} {status:<9} {agent or '-'}{why}")

        print("\nLearned patterns (registry-sync's rules; a fix is a success, a new finding a failure):")
        for key, occurrences, successes, failures, confidence in conn.execute(
            "SELECT pattern_key, occurrences, successes, failures, confidence FROM autopilot.learned_patterns"
            " ORDER BY confidence DESC, occurrences DESC, pattern_key"
        ).fetchall():
            print(
                f"  {key:<24} seen {occurrences}, {successes} fixed, {failures} new,"
                f" confidence {confidence:.3f}"
            )

        print("\nWhat the agents know (autopilot.agent_knowledge.summary):")
        for name, knowledge in conn.execute(
            "SELECT a.name, k.summary FROM autopilot.agent_knowledge AS k"
            " JOIN autopilot.agents AS a ON a.id = k.agent_id ORDER BY a.id"
        ).fetchall():
            tasks = knowledge["tasks"]
            met = ", ".join(
                f"{p['pattern_key']} (confidence {p['confidence'] or 0:.3f})"
                for p in knowledge["patterns_met"]
            )
            print(
                f"  {name}: tasks {tasks['succeeded']} succeeded, {tasks['failed']} failed; met: {met or '-'}"
            )
