"""Benchmark: knowledge-migration, templates-data-load and template-sync over 10,000 template files.

Goals (from the issue):

* 10,000 template files loaded <= 10 s (knowledge-migration: JSON checked against the template schema,
  into knowledge_artifacts; templates-data-load: half JSON, half YAML, into template_data);
* a re-run with nothing changed <= 2 s, and it writes nothing;
* template-sync of a commit touching 10 files of a 10,000-file repository <= 2 s.

What is measured, and how:

* A throwaway durable cluster (fsync on; or ``--dsn``'s server), ``CREATE EXTENSION autopilot`` in a
  scratch database ``autopilot_bench_templates``; pg_cron is not needed.
* The corpus is generated into a temporary directory: ``--files`` templates (default 10,000) of five
  types, each a description, tags and a content of 0.5-2 KB (a code body or a structured prompt),
  spread over 100 directories; the templates_data corpus is as many documents, every other one YAML.
* Each load is the domain function the worker calls (``migrate``, ``load``, ``sync``) on a connection
  of its own, timed from the call to its return (the transaction committed). Before the first load,
  CHECKPOINT. "Writes nothing": every row's (ctid, xmin) is digested before and after the re-run, and
  must not change.
* template-sync: the corpus committed to a bare repository (through a work clone, as an author would),
  synced once whole (printed, not a goal); then one commit changing 6 templates, adding 2 and deleting 2
  is pushed and synced: that sync is the goal; then a sync with nothing new (printed).
* Correctness: the counts in the database must match what the runs say (artifacts, versions, documents);
  a disagreement exits 1. A missed goal is printed as MISS (exit 0).

Run:  PYTHONPATH=installer .venv/bin/python bench/templates.py [--dsn DSN] [--files 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from rich.console import Console
from rich.table import Table

from pg_autopilot import db
from pg_autopilot.knowledge.migration import migrate
from pg_autopilot.knowledge.sync import sync
from pg_autopilot.knowledge.templates_data import load

SCRATCH_DB = "autopilot_bench_templates"
GOAL_LOAD_S = 10.0
GOAL_RERUN_S = 2.0
GOAL_SYNC_S = 2.0
TYPES = ("code_template", "prompt", "framework", "workflow", "quality_standard")
_WORD_TEXT = """
    retry backoff jitter supervisor genserver handler request response cache invalidate schema migration
    index query plan review naming tests coverage deploy rollback feature flag metrics latency queue
    worker batch stream parse validate render template component router controller service
"""
WORDS = tuple(_WORD_TEXT.split())
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.org",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}

console = Console()


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def template(rng: random.Random, i: int, revision: int = 0) -> dict:
    kind = TYPES[i % len(TYPES)]
    if kind == "prompt":
        content: object = {
            "system": sentence(rng, 40),
            "steps": [sentence(rng, 12) for _ in range(rng.randint(3, 10))],
        }
    else:
        content = "\n".join(f"    {sentence(rng, 8)}" for _ in range(rng.randint(8, 30)))
    return {
        "type": kind,
        "name": f"{kind}-{i:05d}",
        "description": sentence(rng, 14) + (f" (revision {revision})" if revision else ""),
        "tags": sorted(set(rng.sample(WORDS, 3))),
        "content": content,
    }


def template_path(i: int) -> str:
    return f"group-{i % 100:02d}/template-{i:05d}.json"


def write_corpus(root: Path, files: int) -> None:
    rng = random.Random(7)
    for i in range(files):
        path = root / template_path(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(template(rng, i), indent=2))


def write_data_corpus(root: Path, files: int) -> None:
    rng = random.Random(11)
    for i in range(files):
        document = {
            "name": f"item-{i}",
            "tags": rng.sample(WORDS, 4),
            "rules": [sentence(rng, 10) for _ in range(8)],
        }
        directory = root / f"group-{i % 100:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        if i % 2:
            lines = [f"name: item-{i}", "tags:", *(f"  - {t}" for t in document["tags"]), "rules:"]
            lines += [f"  - {r}" for r in document["rules"]]
            (directory / f"item-{i:05d}.yaml").write_text("\n".join(lines) + "\n")
        else:
            (directory / f"item-{i:05d}.json").write_text(json.dumps(document, indent=2))


def digest(dsn: str, table: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            f"SELECT md5(coalesce(string_agg(ctid::text || xmin::text, ',' ORDER BY ctid), '')) FROM {table}"
        ).fetchone()[0]


def count(dsn: str, query: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **GIT_ENV}, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def bench_migration(dsn: str, root: Path, files: int, rows: list) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: migrate(conn, str(root)))
    loaded = count(
        dsn, "SELECT count(*) FROM autopilot.knowledge_artifacts WHERE source = 'knowledge-migration'"
    )
    if result.applied.added != files or loaded != files:
        raise CorrectnessError(
            f"knowledge-migration: the run added {result.applied.added}, the table holds {loaded}"
        )
    rows.append(("knowledge-migration: 10,000 templates loaded", seconds, GOAL_LOAD_S, None))
    before = digest(dsn, "autopilot.knowledge_artifacts")
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: migrate(conn, str(root)))
    untouched = digest(dsn, "autopilot.knowledge_artifacts") == before
    if result.applied.unchanged != files:
        raise CorrectnessError(f"knowledge-migration re-run: {result.applied.counts()}")
    rows.append(("knowledge-migration: re-run, nothing changed", seconds, GOAL_RERUN_S, untouched))


def bench_data(dsn: str, root: Path, files: int, rows: list) -> None:
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: load(conn, str(root)))
    loaded = count(dsn, "SELECT count(*) FROM autopilot.template_data WHERE status = 'loaded'")
    if result.added != files or loaded != files or result.problems:
        raise CorrectnessError(f"templates-data-load: {result.counts()}, the table holds {loaded}")
    rows.append(("templates-data-load: 10,000 files (half YAML)", seconds, GOAL_LOAD_S, None))
    before = digest(dsn, "autopilot.template_data")
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: load(conn, str(root)))
    untouched = digest(dsn, "autopilot.template_data") == before
    if result.unchanged != files:
        raise CorrectnessError(f"templates-data-load re-run: {result.counts()}")
    rows.append(("templates-data-load: re-run, nothing changed", seconds, GOAL_RERUN_S, untouched))


def bench_sync(dsn: str, scratch: Path, files: int, rows: list) -> None:
    bare, work, state = scratch / "remote.git", scratch / "work", scratch / "state"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=scratch)
    git("init", "--quiet", "--initial-branch=main", str(work), cwd=scratch)
    with console.status(f"committing {files:,} templates"):
        write_corpus(work, files)
        git("add", "-A", cwd=work)
        git("commit", "--quiet", "-m", "templates", cwd=work)
        git("remote", "add", "origin", str(bare), cwd=work)
        git("push", "--quiet", "origin", "main", cwd=work)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name, value in (("repository", str(bare)), ("branch", "main"), ("directory", str(state))):
            conn.execute("SELECT autopilot.set_setting(%s, %s)", [f"template_sync.{name}", value])
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: sync(conn))
    if result.applied is None or result.applied.added != files:
        raise CorrectnessError(f"template-sync, first run: {result.line()}")
    rows.append(("template-sync: first sync, whole tree (no goal)", seconds, None, None))

    # one commit touching 10 files: 6 changed, 2 added, 2 deleted
    rng = random.Random(3)
    for i in range(6):
        (work / template_path(i * 997)).write_text(json.dumps(template(rng, i * 997, revision=1), indent=2))
    for i in (files, files + 1):
        (work / template_path(i)).parent.mkdir(parents=True, exist_ok=True)
        (work / template_path(i)).write_text(json.dumps(template(rng, i), indent=2))
    for i in (1, 2):
        (work / template_path(i)).unlink()
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "ten files", cwd=work)
    git("push", "--quiet", "origin", "main", cwd=work)
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: sync(conn))
    counts = result.applied.counts() if result.applied else {}
    if (counts.get("added"), counts.get("changed"), counts.get("deleted")) != (2, 6, 2):
        raise CorrectnessError(f"template-sync of ten files: {result.line()}")
    versions = count(dsn, "SELECT count(*) FROM autopilot.knowledge_artifact_versions")
    if versions < 6:
        raise CorrectnessError(f"template-sync of ten files: {versions} versions kept, 6 expected at least")
    rows.append(("template-sync: a commit of 10 files, 10,000 in the tree", seconds, GOAL_SYNC_S, None))

    before = digest(dsn, "autopilot.knowledge_artifacts")
    with db.connect(dsn) as conn:
        result, seconds = timed(lambda: sync(conn))
    untouched = digest(dsn, "autopilot.knowledge_artifacts") == before
    rows.append(("template-sync: nothing new (no goal)", seconds, None, untouched))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="an existing server (superuser); default: a throwaway durable cluster")
    parser.add_argument("--files", type=int, default=10_000, help="template files per corpus")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows: list[tuple[str, float, float | None, bool | None]] = []
    with tempfile.TemporaryDirectory(prefix="autopilot-bench-templates-") as scratch_dir:
        scratch = Path(scratch_dir)
        with console.status(f"writing {args.files:,} templates and {args.files:,} templates_data files"):
            write_corpus(scratch / "templates", args.files)
            write_data_corpus(scratch / "templates_data", args.files)
        with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
            create_autopilot(dsn, console)
            try:
                with console.status("knowledge-migration"):
                    bench_migration(dsn, scratch / "templates", args.files, rows)
                with console.status("templates-data-load"):
                    bench_data(dsn, scratch / "templates_data", args.files, rows)
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("TRUNCATE autopilot.knowledge_artifacts CASCADE")
                bench_sync(dsn, scratch, args.files, rows)
            except CorrectnessError as exc:
                console.print(f"[bold red]CORRECTNESS FAILURE[/]: {exc}")
                return 1
    table = Table(
        "run", "seconds", "goal", "wrote nothing", "verdict", title=f"{args.files:,} files per corpus"
    )
    for name, seconds, goal, untouched in rows:
        ok = untouched if goal is None else seconds <= goal and untouched is not False
        table.add_row(
            name,
            f"{seconds:.2f}",
            "-" if goal is None else f"<= {goal:g} s",
            {True: "yes", False: "[bold red]NO[/]", None: "-"}[untouched],
            verdict(ok) if goal is not None or untouched is not None else "",
        )
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
