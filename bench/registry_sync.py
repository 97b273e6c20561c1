"""Benchmark: registry-sync over the interpreter's standard library against its analyzers run bare.

Goal (from the issue): registry-sync of the standard library, registered as a codebase, takes at most
1.5x the analyzers' own run time on the same files, measured in the same run.

What is measured, and how:

* The corpus: the ``.py`` files of the running interpreter's standard library (``--root``), without
  ``site-packages`` / ``dist-packages`` (about 1,800 files), registered as ``autopilot codebase add``
  does. The analyzers: those of the setting registry_sync.analyzers (ruff, complexity, queries),
  with the default options (complexity threshold 10).
* Bare: the very commands registry-sync runs for each analyzer (``ruff check --output-format json
  --exit-zero --no-cache --force-exclude -- <files>`` in the root; ``python -P -m
  pg_autopilot.analysis.treesitter complexity|queries`` with the paths on stdin), on the same files,
  started with ``subprocess.run`` and timed from start to exit; once one after the other (each
  one's time, and their sum) and once all at once, as registry-sync runs them (the wall time until
  the last exits). The goal compares with the latter: the same parallelism.
* registry-sync: the worker ``registry_sync`` called with a job context, as the runner calls it,
  timed from the call to its return: listing (git, as code-ingest lists), the analyzers, the
  snapshot and the analysis_results rows written and committed by
  ``autopilot.record_analysis_snapshot``. Before each round the snapshots and analysis rows are
  deleted, so every round records the whole snapshot (a baseline); one more run on the unchanged
  tree records nothing and is printed.
* ``--rounds`` rounds, the bare runs and the worker alternating; the best of each is compared (the
  machine is shared: the best is the least disturbed). Each round is printed.
* Correctness (a failure exits 1; a missed goal is printed as MISS, exit 0): every analyzer ran ok,
  and the counts per file and rule in ``analysis_snapshot_findings`` are exactly those the bare
  outputs give; one neutral analysis row per (analyzer, rule).
* The server: a throwaway durable cluster (fsync on), or ``--dsn``'s.

Run:  PYTHONPATH=installer .venv/bin/python bench/registry_sync.py [--dsn DSN] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sysconfig
import threading
import time
from collections import Counter

from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from rich.console import Console
from rich.table import Table

from pg_autopilot import codebases, db
from pg_autopilot.analysis import analyzers as registry
from pg_autopilot.analysis.analyzers import Invocation, Options
from pg_autopilot.analysis.sync import Settings, select_files
from pg_autopilot.workers.registry import JobContext
from pg_autopilot.workers.registry_sync import registry_sync

SCRATCH_DB = "autopilot_bench_registry_sync"
GOAL_RATIO = 1.5
STDLIB_EXCLUDE = ("site-packages", "dist-packages")

console = Console(highlight=False, width=140)


def run_bare(invocations: list[Invocation]) -> tuple[float, list[bytes]]:
    """Runs an analyzer's commands one after the other; seconds and their outputs."""
    started = time.perf_counter()
    outputs = []
    for invocation in invocations:
        done = subprocess.run(
            invocation.argv,
            cwd=invocation.cwd,
            env=invocation.env,
            input=invocation.stdin,
            capture_output=True,
            check=True,
        )
        outputs.append(done.stdout)
    return time.perf_counter() - started, outputs


def run_bare_together(plans: dict[str, list[Invocation]]) -> tuple[float, dict[str, float]]:
    """Every analyzer's commands at once (a thread each, as registry-sync runs them): the wall time
    until the last one exits, and each one's own."""
    seconds: dict[str, float] = {}
    errors: list[BaseException] = []

    def one(name: str) -> None:
        try:
            seconds[name], _ = run_bare(plans[name])
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(name,)) for name in plans]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started, seconds


def run_worker(dsn: str) -> tuple[float, str]:
    context = JobContext(
        job_id=0, attempt=1, queue="default", node="bench", dsn=dsn, deadline=time.monotonic() + 6 * 3600
    )
    started = time.perf_counter()
    line = registry_sync({}, context)
    return time.perf_counter() - started, line


def check(dsn: str, expected: dict[str, Counter[tuple[str, str]]]) -> None:
    """The snapshot holds exactly the bare runs' counts; every analyzer ok; one neutral row per rule."""
    with db.connect(dsn) as conn:
        statuses = dict(
            conn.execute("SELECT analyzer, status FROM autopilot.analysis_snapshot_analyzers").fetchall()
        )
        stored: dict[str, Counter[tuple[str, str]]] = {name: Counter() for name in expected}
        for path, analyzer, rule, findings in conn.execute(
            "SELECT path, analyzer, rule, findings FROM autopilot.analysis_snapshot_findings"
        ):
            stored.setdefault(analyzer, Counter())[path, rule] = findings
        neutral = conn.execute(
            "SELECT count(*) FROM autopilot.analysis_results WHERE outcome = 'neutral'"
        ).fetchone()[0]
    if any(status != "ok" for status in statuses.values()) or set(statuses) != set(expected):
        raise CorrectnessError(f"analyzers did not all succeed: {statuses}")
    for name, counts in expected.items():
        if stored[name] != counts:
            missing = counts - stored[name]
            extra = stored[name] - counts
            raise CorrectnessError(
                f"{name}: counts differ from the bare run (missing {missing}, extra {extra})"
            )
    rules = sum(len({rule for _, rule in counts}) for counts in expected.values())
    if neutral != rules:
        raise CorrectnessError(f"{neutral} neutral analysis rows for {rules} rules")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="an existing server (superuser) instead of a throwaway cluster")
    parser.add_argument(
        "--root", default=sysconfig.get_paths()["stdlib"], help="the corpus (default: stdlib)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="bare runs and worker runs; the best counts")
    args = parser.parse_args()
    console.print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
        create_autopilot(dsn, console)
        with db.connect(dsn, autocommit=True) as conn:
            root = codebases.add(conn, "stdlib", args.root, ["*.py"], list(STDLIB_EXCLUDE))
            settings = Settings.read(conn)
        chosen = [registry.ANALYZERS[name] for name in settings.analyzers]
        paths, left_out = select_files(root, ["*.py"], list(STDLIB_EXCLUDE), chosen, settings.max_file_bytes)
        megabytes = sum(os.path.getsize(os.path.join(root, path)) for path in paths) / 1e6
        console.print(
            f"corpus {root}: {len(paths):,} files, {megabytes:.1f} MB"
            + (f" ({dict(left_out)} left out)" if left_out else "")
            + f"; analyzers {', '.join(settings.analyzers)}"
        )
        options = Options(root, settings.max_file_bytes, settings.complexity_threshold)
        plans = {
            analyzer.name: analyzer.invocations([p for p in paths if analyzer.selects(p)], options)
            for analyzer in chosen
        }

        # the bare outputs, read as registry-sync reads them: what the snapshot must hold
        expected: dict[str, Counter[tuple[str, str]]] = {}
        alone: dict[str, list[float]] = {name: [] for name in plans}
        together: list[float] = []
        worker: list[float] = []
        line = ""
        for round_number in range(1, args.rounds + 1):
            for analyzer in chosen:
                seconds, outputs = run_bare(plans[analyzer.name])
                alone[analyzer.name].append(seconds)
                selected = [p for p in paths if analyzer.selects(p)]
                expected[analyzer.name] = analyzer.parse(outputs, selected, options).findings
            wall, _ = run_bare_together(plans)
            together.append(wall)
            with db.connect(dsn, autocommit=True) as conn:
                conn.execute("DELETE FROM autopilot.analysis_snapshots")
                conn.execute("DELETE FROM autopilot.analysis_results")
                conn.execute("CHECKPOINT")
            seconds, line = run_worker(dsn)
            worker.append(seconds)
            check(dsn, expected)
            console.print(
                f"round {round_number}: bare "
                + ", ".join(f"{name} {times[-1]:.2f} s" for name, times in alone.items())
                + f" (sum {sum(times[-1] for times in alone.values()):.2f} s), all at once {wall:.2f} s;"
                f" registry-sync {seconds:.2f} s"
            )
        console.print(f"registry-sync's summary: {line}")
        unchanged_s, unchanged_line = run_worker(dsn)
        with db.connect(dsn) as conn:
            rows = conn.execute(
                "SELECT (SELECT count(*) FROM autopilot.analysis_snapshot_findings),"
                " (SELECT count(*) FROM autopilot.analysis_snapshot_files),"
                " (SELECT count(*) FROM autopilot.analysis_results)"
            ).fetchone()
        console.print(
            f"snapshot: {rows[0]:,} (file, rule) counts, {rows[1]:,} files, {rows[2]:,} analysis rows;"
            f" unchanged re-run {unchanged_s:.2f} s ({unchanged_line.rsplit('; ', 1)[-1]})"
        )

    best_alone = {name: min(times) for name, times in alone.items()}
    best_together, best_worker = min(together), min(worker)
    ratio = best_worker / best_together
    table = Table(title=f"registry-sync of the standard library (best of {args.rounds})")
    table.add_column("run")
    table.add_column("seconds", justify="right")
    for name, seconds in best_alone.items():
        table.add_row(f"bare {name}", f"{seconds:.2f}")
    table.add_row("bare analyzers one after the other (sum)", f"{sum(best_alone.values()):.2f}")
    table.add_row("bare analyzers all at once (wall)", f"{best_together:.2f}")
    table.add_row("registry-sync (worker: list, analyze, record, commit)", f"{best_worker:.2f}")
    console.print(table)
    console.print(
        f"goal: registry-sync <= {GOAL_RATIO}x the bare analyzers (all at once): "
        f"{ratio:.2f}x {verdict(ratio <= GOAL_RATIO)}"
        f"  (vs one after the other: {best_worker / sum(best_alone.values()):.2f}x)"
    )
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except CorrectnessError as exc:
        console.print(f"[bold red]correctness check failed:[/] {exc}")
        raise SystemExit(1) from None
