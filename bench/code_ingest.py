"""Benchmark: code-ingest end to end on PostgreSQL, re-ingest, graph-populate, and a JavaScript tree.

Goals (from the issue):

* Ingest without embeddings (walk, hash, parse, chunk, tags, write to PostgreSQL) of the standard
  library at least at the rate (files/s) of a bare single-process tree-sitter parse + tags query loop
  over the same files, measured in the same run, using both cores.
* Re-ingest of the unchanged tree: 0 files parsed, 0 chunks embedded, <= 5 s.
* graph-populate of the standard library (the worker: populate_code_graph, then PageRank) <= 30 s.
* A JavaScript tree, npm's own sources (``npm pack npm``), parsed with few syntax errors (files with
  any: <= 1%); its rate is printed beside its own floor.

What is measured, and how:

* The corpus: the ``.py`` files of the running interpreter's standard library (``--root``), without
  ``site-packages`` / ``dist-packages`` (about 1,800 files), as bench/ingest_parse.py reads it; the
  floor is that script's loop (a new parser parses each file, one ``QueryCursor.captures`` of the
  language's tags query), run ``--rounds`` times, the best round kept.
* The ingest: a throwaway durable cluster (fsync on) or ``--dsn``'s server; ``CREATE EXTENSION
  autopilot``; the codebase registered as ``autopilot codebase add`` does, then the pipeline
  (``ingest.pipeline.Ingest``, a parse pool of one process per core) without an embedder, timed
  from the call to its return (every row committed). ``--rounds`` rounds, each on empty code tables
  after a CHECKPOINT; the best is kept. During each, the CPU time of this process (walk, read,
  hash, the writes' client side), of its child processes (the parse pool) and of the server's
  processes is sampled from /proc: where the time goes, and the ceiling it sets (the best round's
  CPU over the cores is the least wall time any overlap could reach: its rate at most the floor's
  seconds x cores / that CPU). ``--profile`` adds one round under cProfile (this process only) and
  prints its top functions.
* Re-ingest: the tree is embedded once with the hashing embedder (printed, not a goal), then ingested
  again with it, unchanged: files parsed, chunks embedded and seconds.
* graph-populate: the worker ``graph_populate`` called with a job context, as the runner calls it,
  timed; then the graph's nodes and edges and the ten files (modules) of highest PageRank.
* JavaScript: ``npm pack npm`` into a temporary directory (the npm registry; npm and node must be
  installed), unpacked; its ``.js`` / ``.mjs`` / ``.cjs`` files ingested like the standard library,
  with their own floor, beside the standard library's rows (``--rounds`` times, its own rows deleted
  before each).

A correctness failure (a count in the database that disagrees with the run's summary) exits 1; a
missed goal is printed as MISS (exit 0).

Run:  PYTHONPATH=installer .venv/bin/python bench/code_ingest.py [--dsn DSN] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from ingest_parse import STDLIB_EXCLUDE, best_of, floor_loop, load_corpus  # bench/ingest_parse.py
from rich.console import Console
from rich.table import Table

from pg_autopilot import codebases, db
from pg_autopilot.embeddings import HashingEmbedder
from pg_autopilot.ingest.languages import JAVASCRIPT, PYTHON
from pg_autopilot.ingest.pipeline import Ingest, IngestSummary
from pg_autopilot.workers.graph_populate import graph_populate
from pg_autopilot.workers.registry import JobContext

SCRATCH_DB = "autopilot_bench_code_ingest"
GOAL_RATE_RATIO = 1.0  # ingest files/s over the floor's
GOAL_REINGEST_S = 5.0
GOAL_GRAPH_S = 30.0
GOAL_JS_ERROR_SHARE = 0.01  # files with syntax errors
JS_INCLUDE = ("*.js", "*.mjs", "*.cjs")
CODE_TABLES = (
    "autopilot.graph_edges, autopilot.graph_nodes, autopilot.code_symbols, autopilot.code_chunks,"
    " autopilot.code_files"
)
CPU_SAMPLE_S = 0.2
TICKS = os.sysconf("SC_CLK_TCK")

console = Console(highlight=False, width=150)


# ---- CPU accounting from /proc ----


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds user + system) of every process we can read."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(b")") + 2 :].split()  # the name, in parentheses, may hold blanks
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS)
    return table


def _descends(pid: int, ancestor: int, table: dict[int, tuple[int, float]]) -> bool:
    while pid in table and pid > 1:
        pid = table[pid][0]
        if pid == ancestor:
            return True
    return False


class CpuMeter:
    """CPU seconds spent while it is entered by this process, by its descendants (the parse pool) and
    by the server's processes (children of the postmaster, when the server runs on this machine),
    sampled every CPU_SAMPLE_S: a process that exits between two samples loses at most that much."""

    def __init__(self, postmaster: int | None):
        self._postmaster = postmaster
        self._first: dict[int, float] = {}  # at the start (or 0 for a process started since)
        self._last: dict[int, tuple[str, float]] = {}  # group, CPU seconds at the latest sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.wall = 0.0
        self.seconds: dict[str, float] = {}

    def _sample(self, initial: bool = False) -> None:
        table = _proc_table()
        me = os.getpid()
        for pid, (_, cpu) in table.items():
            if pid == me:
                continue
            if _descends(pid, me, table):
                group = "pool"
            elif self._postmaster is not None and (
                pid == self._postmaster or _descends(pid, self._postmaster, table)
            ):
                group = "server"
            else:
                continue
            if initial:
                self._first[pid] = cpu
            self._first.setdefault(pid, 0.0)
            self._last[pid] = (group, cpu)

    def _loop(self) -> None:
        while not self._stop.wait(CPU_SAMPLE_S):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample(initial=True)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._self_start = usage.ru_utime + usage.ru_stime
        self._wall_start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall_start
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = {
            "main": usage.ru_utime + usage.ru_stime - self._self_start,
            "pool": 0.0,
            "server": 0.0,
        }
        for pid, (group, cpu) in self._last.items():
            self.seconds[group] += cpu - self._first[pid]


def postmaster_pid(conn: psycopg.Connection) -> int | None:
    """The postmaster of the connection's backend when the server runs on this machine, else None."""
    pid = conn.info.backend_pid
    try:
        with open(f"/proc/{pid}/comm") as f:
            if f.read().strip() != "postgres":
                return None
        return _proc_table()[pid][0]
    except (OSError, KeyError):
        return None


# ---- runs ----


@dataclass
class Run:
    summary: IngestSummary
    wall: float
    cpu: dict[str, float] = field(default_factory=dict)


def connector(dsn: str):
    return lambda: db.connect(dsn, autocommit=False)


def ingest(dsn: str, name: str, embedder, postmaster: int | None) -> Run:
    with db.connect(dsn) as conn:
        codebase = codebases.load(conn, name)
        size_cap = int(
            conn.execute("SELECT autopilot.get_setting('code_ingest.max_file_bytes')").fetchone()[0]
        )
    with CpuMeter(postmaster) as meter:
        summary = Ingest(connector(dsn), codebase, embedder, size_cap=size_cap).run()
    return Run(summary, meter.wall, meter.seconds)


def empty_code_tables(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {CODE_TABLES}")
        conn.execute("CHECKPOINT")


def check_counts(dsn: str, name: str, summary: IngestSummary) -> None:
    with psycopg.connect(dsn) as conn:
        files, chunks = conn.execute(
            "SELECT (SELECT count(*) FROM autopilot.code_files AS f WHERE f.codebase = %(n)s"
            "   AND f.status = 'ingested'),"
            " (SELECT count(*) FROM autopilot.code_chunks AS c WHERE c.codebase = %(n)s"
            "   AND c.superseded_at IS NULL)",
            {"n": name},
        ).fetchone()
    if files != summary.parsed or chunks != summary.chunks:
        raise CorrectnessError(
            f"{name}: the run says {summary.parsed} files parsed, {summary.chunks} chunks; the database "
            f"holds {files} ingested files, {chunks} current chunks"
        )


def forget_codebase(dsn: str, name: str) -> None:
    """The codebase's files, symbols and chunks deleted (the others' kept), then a CHECKPOINT."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM autopilot.code_files AS f WHERE f.codebase = %s", [name])
        conn.execute("DELETE FROM autopilot.code_chunks AS c WHERE c.codebase = %s", [name])
        conn.execute("CHECKPOINT")


def ingest_rounds(dsn: str, name: str, rounds: int, postmaster: int | None, only: bool = True) -> Run:
    """``rounds`` ingests of ``name`` from nothing: empty code tables (``only``) or without its own rows,
    the other codebases' kept; the fastest."""
    best = None
    for round_ in range(rounds):
        if only:
            empty_code_tables(dsn)
        else:
            forget_codebase(dsn, name)
        with console.status(f"ingesting {name}, round {round_ + 1} of {rounds}"):
            run = ingest(dsn, name, None, postmaster)
        check_counts(dsn, name, run.summary)
        console.print(
            f"  round {round_ + 1}: {run.wall:.1f} s; CPU: this process {run.cpu['main']:.1f} s, parse pool "
            f"{run.cpu['pool']:.1f} s, server {run.cpu['server']:.1f} s"
        )
        best = run if best is None or run.wall < best.wall else best
    return best


def profile_round(dsn: str, name: str) -> None:
    """One more ingest from empty tables under cProfile (this process: walk, read, hash, submit, write)."""
    empty_code_tables(dsn)
    profiler = cProfile.Profile()
    with console.status(f"ingesting {name} under cProfile"):
        profiler.enable()
        ingest(dsn, name, None, None)
        profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    console.print("[bold]this process during an ingest, by own time (cProfile)[/]")
    console.print(out.getvalue().split("\n\n", 1)[-1].rstrip(), markup=False)


def floor(root: str, include, exclude, language, rounds: int) -> tuple[int, float, float]:
    """Files, MB and the best seconds of the bare parse + tags query loop over them."""
    contents, _, _ = load_corpus(root, include, exclude)
    with console.status(f"floor: parse + tags query over {len(contents):,} {language.name} files"):
        seconds, _ = best_of(rounds, lambda: floor_loop(contents, language.query, language))
    return len(contents), sum(len(c.data) for c in contents) / 1e6, seconds


def graph(dsn: str, name: str) -> tuple[float, str, dict]:
    """graph-populate's worker run as the runner runs it; seconds, its message, the graph's figures."""
    context = JobContext(
        job_id=0, attempt=1, queue="bench", node="bench", dsn=dsn, deadline=time.monotonic() + 3600
    )
    with console.status("graph-populate"):
        started = time.perf_counter()
        message = graph_populate({"codebase": name}, context)
        seconds = time.perf_counter() - started
    with psycopg.connect(dsn) as conn:
        nodes, files, edges = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE n.kind = 'file'),"
            " (SELECT count(*) FROM autopilot.graph_edges AS e JOIN autopilot.graph_nodes AS s"
            "   ON e.source_id = s.id WHERE s.codebase = %(n)s)"
            " FROM autopilot.graph_nodes AS n WHERE n.codebase = %(n)s",
            {"n": name},
        ).fetchone()
        edge_kinds = conn.execute(
            "SELECT e.kind, count(*) FROM autopilot.graph_edges AS e JOIN autopilot.graph_nodes AS s"
            " ON e.source_id = s.id WHERE s.codebase = %s GROUP BY 1 ORDER BY 2 DESC",
            [name],
        ).fetchall()
        top = conn.execute(
            "SELECT coalesce(f.module_name, n.node_key), n.node_key, n.pagerank"
            " FROM autopilot.graph_nodes AS n JOIN autopilot.code_files AS f"
            " ON f.codebase = n.codebase AND f.file_path = n.node_key"
            " WHERE n.codebase = %s AND n.kind = 'file' AND n.pagerank IS NOT NULL"
            " ORDER BY n.pagerank DESC, n.id LIMIT 10",
            [name],
        ).fetchall()
    figures = {"nodes": nodes, "file_nodes": files, "edges": edges, "edge_kinds": edge_kinds, "top": top}
    return seconds, message, figures


def npm_tree(directory: Path) -> Path:
    """npm's own package from the npm registry, unpacked under ``directory``; its root."""
    with console.status("npm pack npm"):
        done = subprocess.run(
            ["npm", "pack", "npm", "--silent", "--pack-destination", str(directory)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if done.returncode != 0:
        raise SystemExit(f"npm pack npm failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    tarball = directory / done.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        archive.extractall(directory / "npm", filter="data")
    console.print(f"JavaScript tree: {tarball.name} from the npm registry")
    return directory / "npm" / "package"


def syntax_error_regions(dsn: str, name: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT coalesce(sum(f.syntax_errors), 0) FROM autopilot.code_files AS f WHERE f.codebase = %s",
            [name],
        ).fetchone()[0]


# ---- report ----


def cpu_table(runs: dict[str, Run]) -> Table:
    table = Table(title="where the time goes (CPU seconds, sampled from /proc; 2 cores give 2 s per second)")
    for column in ("run", "wall s", "this process", "parse pool", "PostgreSQL", "CPU / wall"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, run in runs.items():
        total = sum(run.cpu.values())
        table.add_row(
            name,
            f"{run.wall:.2f}",
            f"{run.cpu['main']:.1f}",
            f"{run.cpu['pool']:.1f}",
            f"{run.cpu['server']:.1f}",
            f"{total / run.wall:.2f}",
        )
    return table


def cpu_ceiling(run: Run, floor_s: float) -> str:
    """The best rate the CPU an ingest spent allows on this machine's cores, against the floor's:
    its wall time cannot be under (this process + parse pool + server CPU) / cores, whatever the
    overlap. The goal (>= the floor's rate) needs that CPU under cores x the floor's seconds."""
    cores = os.cpu_count() or 1
    spent = sum(run.cpu.values())
    return (
        f"CPU this ingest spent: {spent:.1f} s ({run.cpu['main']:.1f} this process, {run.cpu['pool']:.1f} "
        f"parse pool, {run.cpu['server']:.1f} server); on {cores} cores its rate can be at most "
        f"{floor_s * cores / spent:.2f}x the floor's; the goal needs it under {cores} x {floor_s:.2f} s "
        f"= {cores * floor_s:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="an existing server (superuser) instead of a throwaway cluster")
    parser.add_argument(
        "--root", default=sysconfig.get_paths()["stdlib"], help="the corpus (default: stdlib)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of the floor and the ingest; the best counts"
    )
    parser.add_argument("--quick", action="store_true", help="one round of each, no JavaScript tree")
    parser.add_argument("--no-js", action="store_true", help="leave the JavaScript tree (npm) out")
    parser.add_argument("--profile", action="store_true", help="one more ingest under cProfile")
    args = parser.parse_args()
    rounds = 1 if args.quick else args.rounds
    console.print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    files, megabytes, floor_s = floor(args.root, ("*.py",), STDLIB_EXCLUDE, PYTHON, rounds)
    console.print(
        f"corpus {args.root}: {files:,} files, {megabytes:.1f} MB; floor {floor_s:.2f} s (best of {rounds})"
    )
    runs: dict[str, Run] = {}
    goals: list[tuple[str, str, str, bool | None]] = []  # figure, value, goal, met
    with (
        tempfile.TemporaryDirectory(prefix="autopilot-bench-code-") as tmp,
        scratch_database(args.dsn, SCRATCH_DB, console) as dsn,
    ):
        create_autopilot(dsn, console)
        with db.connect(dsn, autocommit=True) as conn:
            postmaster = postmaster_pid(conn)
            codebases.add(conn, "stdlib", args.root, ["*.py"], list(STDLIB_EXCLUDE))
        if postmaster is None:
            console.print("[yellow]the server is not on this machine: its CPU time is not measured[/]")

        first = runs["ingest stdlib (no embeddings)"] = ingest_rounds(dsn, "stdlib", rounds, postmaster)
        ingest_rate, floor_rate = first.summary.parsed / first.wall, files / floor_s
        console.print(first.summary.line())
        goals.append((
            "stdlib ingest, no embeddings (files/s)",
            f"{ingest_rate:,.0f} = {ingest_rate / floor_rate:.2f}x floor ({floor_rate:,.0f})",
            f">= {GOAL_RATE_RATIO:.2f}x floor",
            ingest_rate >= GOAL_RATE_RATIO * floor_rate and first.summary.parsed == files,
        ))  # fmt: skip
        if postmaster is not None:  # the server's CPU is part of the sum
            console.print(cpu_ceiling(first, floor_s))
        if args.profile:
            profile_round(dsn, "stdlib")  # leaves the tables as a timed round does

        with console.status("embedding every chunk with the hashing embedder"):
            embedding = runs["embed all (hashing), parse nothing"] = ingest(
                dsn, "stdlib", HashingEmbedder(), postmaster
            )
        console.print(embedding.summary.line())
        with console.status("re-ingest of the unchanged tree"):
            again = runs["re-ingest unchanged (hashing)"] = ingest(
                dsn, "stdlib", HashingEmbedder(), postmaster
            )
        console.print(again.summary.line())
        goals.append((
            "re-ingest unchanged: parsed, embedded, seconds",
            f"{again.summary.parsed}, {again.summary.embedded}, {again.wall:.2f} s",
            f"0, 0, <= {GOAL_REINGEST_S:.0f} s",
            again.summary.parsed == 0 and again.summary.embedded == 0 and again.wall <= GOAL_REINGEST_S,
        ))  # fmt: skip

        graph_s, message, g = graph(dsn, "stdlib")
        console.print(f"graph-populate: {message}")
        goals.append((
            "graph-populate stdlib (populate + PageRank)",
            f"{graph_s:.1f} s: {g['nodes']:,} nodes, {g['edges']:,} edges",
            f"<= {GOAL_GRAPH_S:.0f} s",
            graph_s <= GOAL_GRAPH_S,
        ))  # fmt: skip

        if not (args.quick or args.no_js):
            root = npm_tree(Path(tmp))
            js_files, js_mb, js_floor_s = floor(str(root), JS_INCLUDE, (), JAVASCRIPT, rounds)
            with db.connect(dsn, autocommit=True) as conn:
                codebases.add(conn, "npm", str(root), list(JS_INCLUDE), [])
            # beside the standard library: the first ingest of a codebase the statistics do not know yet
            js = runs["ingest npm (no embeddings)"] = ingest_rounds(
                dsn, "npm", rounds, postmaster, only=False
            )
            console.print(js.summary.line())
            js_rate, js_floor_rate = js.summary.parsed / js.wall, js_files / js_floor_s
            share = js.summary.syntax_errors / max(js.summary.parsed, 1)
            goals.append((
                f"npm ({js_files:,} files, {js_mb:.1f} MB) ingest (files/s; chunks)",
                f"{js_rate:,.0f} = {js_rate / js_floor_rate:.2f}x its floor ({js_floor_rate:,.0f}); "
                f"{js.summary.chunks:,} chunks",
                "(printed)",
                None,
            ))  # fmt: skip
            goals.append((
                "npm: files with syntax errors (ERROR/MISSING regions)",
                f"{js.summary.syntax_errors} of {js.summary.parsed} = {share:.1%} "
                f"({syntax_error_regions(dsn, 'npm')} regions)",
                f"<= {GOAL_JS_ERROR_SHARE:.0%}",
                share <= GOAL_JS_ERROR_SHARE,
            ))  # fmt: skip

    console.print(cpu_table(runs))
    kinds = ", ".join(f"{kind} {count:,}" for kind, count in g["edge_kinds"])
    top = Table(
        title=f"stdlib graph: {g['nodes']:,} nodes ({g['file_nodes']:,} files), {g['edges']:,} edges "
        f"({kinds})"
    )
    for column in ("#", "module (top 10 files by PageRank)", "file", "PageRank"):
        top.add_column(column, justify="right" if column in ("#", "PageRank") else "left")
    for rank, (module, path, score) in enumerate(g["top"], 1):
        top.add_row(str(rank), module, path, f"{score:.5f}")
    console.print(top)
    table = Table(title="code-ingest goals")
    for column in ("figure", "value", "goal", "verdict"):
        table.add_column(column)
    for figure, value, goal, met in goals:
        table.add_row(figure, value, goal, verdict(met) if met is not None else "")
    console.print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CorrectnessError as exc:
        console.print(f"[bold red]wrong result:[/] {exc}")
        sys.exit(1)
