"""Benchmark: our job queue (autopilot.jobs and ``autopilot runner start``) beside its peers.

Goals (from the issue, "Performance"): on 20,000 no-op jobs, batched enqueue >= 50,000 jobs/s and
one-at-a-time enqueue >= 2x the faster peer; drain (concurrency 1 and 10) >= 2x the faster peer and
>= 25% of the batched raw SKIP LOCKED floor; enqueue->start on an idle runner p50 <= 5 ms.

What is measured, and how:

* A throwaway *durable* cluster (fsync on, synchronous_commit on, full_page_writes on) is started
  with ``pg_autopilot.testing.Cluster`` (or ``--dsn`` names an existing server); each system gets a
  scratch database of its own (``_scratch.scratch_database``): ours with ``CREATE EXTENSION
  autopilot``; procrastinate's and pgqueuer's with their own schema installers.
* The peers (bench/requirements-peers.txt) are installed only for the benchmark, into
  ``.venv-bench`` (created here on the first run, or when that file changes; the project's
  ``.venv`` never gets them), and run there by bench/queue_peers.py, one process per peer and
  round, which prints its figures as JSON (its docstring says how each peer is driven).
* Enqueue, ``--jobs`` no-op jobs: batched, ``autopilot.enqueue_many`` in chunks of ``--batch``
  (5,000; one transaction per call; the peers' batch APIs in the same chunks), plus one call of all
  the jobs for reference; one at a time, one ``SELECT autopilot.enqueue('noop')`` per job on one
  autocommit connection (each its own transaction, so one commit -- one WAL flush -- per job: the
  same for the peers' single-job APIs). Beside it, the floor of any such enqueue on this server and
  client: one autocommit ``INSERT`` per job into a table holding only a bigserial primary key, and
  one ``SELECT 1`` per job (the round trip alone); the report prints the goal as microseconds per
  job next to that floor.
* Drain with concurrency 1 and 10, ``--jobs`` jobs waiting (the one-at-a-time ones for
  concurrency 1; batch-enqueued ones for 10), after an ``ANALYZE``:
  - ours: the runner as a real subprocess, ``python -m pg_autopilot.cli runner start --queues
    default --concurrency N --worker-module queue_workers --no-startup-jobs --log-level warning``
    (bench/queue_workers.py registers ``noop``; ``PYTHONPATH`` gets installer/ and bench/). Timed
    from the spawn until every job is ``completed`` (the table polled every 50 ms), so the start of
    the process is included; the figure from the first claim to the last completion (the rows'
    ``attempted_at`` / ``completed_at``) is printed beside it. Then SIGTERM.
  - the raw floor: N threads, each its own connection, a psycopg loop on the same table:
    single, ``UPDATE autopilot.jobs ... WHERE id = (SELECT id ... ORDER BY priority, scheduled_at,
    id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING`` (state executing, attempt + 1) then an
    ``UPDATE`` to completed, both in one transaction; batched, the same with ``LIMIT 100`` (a
    MATERIALIZED CTE, as ``autopilot.claim`` has it) and ``id = ANY(...)``. No job_runs row (the
    runner's ``complete_many`` writes one per job), so this is the floor of the design.
  - procrastinate's worker and pgqueuer's consumer, each on 20,000 jobs of its own, timed in
    their process from the worker's start to its return when the queue is empty.
* Enqueue->start latency on an idle runner: ``--samples`` jobs enqueued one by one (autocommit)
  with random gaps of 10-40 ms; the ``noop`` worker writes its first ``time.time()`` to a file;
  latency = that - the ``time.time()`` just before the enqueue call (the enqueue's commit
  included). The runner runs with its defaults (concurrency 10, poll every 1 s: NOTIFY wakes it).
  procrastinate and pgqueuer the same way in their process (pgqueuer listening on a connection of
  its own, see bench/queue_peers.py). The rows' ``attempted_at - inserted_at`` is printed too.
* Medians of ``--rounds`` (3) rounds, min-max beside them (``--peer-rounds`` sets the peers' apart:
  their drains take a minute; with 3 rounds of everything the run takes ~8 minutes here). The
  latency test runs once per system.
* Correctness after every drain: every job completed exactly once (``attempt = 1``, and for the
  runner one job_runs row per job). A job of ours lost or run twice exits 1; a missed goal is
  printed as MISS and still exits 0. The peers count their own executions; a peer that loses or
  repeats a job, or fails, is reported in red and its figures are left out (not fatal).

Run:  PYTHONPATH=installer .venv/bin/python bench/queue_throughput.py [--dsn DSN] [--jobs 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

from pg_autopilot.testing import Cluster

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEER_VENV = ROOT / ".venv-bench"
PEER_REQUIREMENTS = BENCH / "requirements-peers.txt"
SCRATCH_DB = "autopilot_bench_queue"
PEERS = ("procrastinate", "pgqueuer")
CONCURRENCIES = (1, 10)
RAW_BATCH = 100
FLOOR_INSERT = "floor: 1-row INSERT, pkey only"
FLOOR_ROUND_TRIP = "floor: SELECT 1 round trip"

GOAL_BATCHED_ENQUEUE = 50_000  # jobs/s
GOAL_SINGLE_ENQUEUE_X_PEER = 2.0
GOAL_DRAIN_X_PEER = 2.0
GOAL_DRAIN_OF_RAW = 0.25
GOAL_LATENCY_P50_MS = 5.0

console = Console(highlight=False, width=180)


# -- the peers' virtualenv --------------------------------------------------------------------


def peer_python() -> Path:
    """``.venv-bench``'s interpreter, the venv created (or refreshed) from requirements-peers.txt."""
    python = PEER_VENV / "bin" / "python"
    wanted = hashlib.sha256(PEER_REQUIREMENTS.read_bytes()).hexdigest()
    stamp = PEER_VENV / ".requirements-peers.sha256"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    with console.status(f"installing the peers into {PEER_VENV.name} (first run)"):
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(PEER_REQUIREMENTS)],
            check=True,
        )
    stamp.write_text(wanted + "\n")
    return python


# -- our queue --------------------------------------------------------------------------------


def reset(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE autopilot.jobs, autopilot.job_runs RESTART IDENTITY")


def enqueue_batched(conn: psycopg.Connection, jobs: int, batch: int) -> float:
    """``enqueue_many`` in chunks of ``batch`` (autocommit: a transaction per call); seconds."""
    t0 = time.perf_counter()
    for start in range(0, jobs, batch):
        size = min(batch, jobs - start)
        conn.execute("SELECT count(*) FROM autopilot.enqueue_many(%s)", (Jsonb([{"worker": "noop"}] * size),))
    return time.perf_counter() - t0


def enqueue_single(conn: psycopg.Connection, jobs: int) -> float:
    """One ``SELECT autopilot.enqueue('noop')`` per job, autocommit; seconds."""
    t0 = time.perf_counter()
    for _ in range(jobs):
        conn.execute("SELECT autopilot.enqueue(%s)", ("noop",))
    return time.perf_counter() - t0


def enqueue_floor(conn: psycopg.Connection, jobs: int) -> tuple[float, float]:
    """The floor under any one-at-a-time enqueue on this server and client: ``jobs`` autocommit
    ``INSERT INTO bench_floor DEFAULT VALUES`` (a bigserial primary key, nothing else; one commit --
    one WAL flush -- each), and ``jobs`` ``SELECT 1`` (the round trip alone); seconds of each."""
    conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY)")
    try:
        t0 = time.perf_counter()
        for _ in range(jobs):
            conn.execute("INSERT INTO bench_floor DEFAULT VALUES")
        insert = time.perf_counter() - t0
    finally:
        conn.execute("DROP TABLE bench_floor")
    t0 = time.perf_counter()
    for _ in range(jobs):
        conn.execute("SELECT 1")
    return insert, time.perf_counter() - t0


def runner_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """PYTHONPATH: installer/ and bench/ (for queue_workers.py; no module of bench/ shadows the
    standard library's or a dependency's)."""
    env = dict(os.environ)
    paths = [str(ROOT / "installer"), str(BENCH)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


@contextlib.contextmanager
def runner(dsn: str, concurrency: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """``autopilot runner start`` as a subprocess; SIGTERM on exit."""
    argv = [
        sys.executable,
        "-m",
        "pg_autopilot.cli",
        "runner",
        "start",
        "--dsn",
        dsn,
        "--queues",
        "default",
        "--concurrency",
        str(concurrency),
        "--worker-module",
        "queue_workers",
        "--no-startup-jobs",
        "--log-level",
        "warning",
    ]
    with tempfile.TemporaryFile("w+") as stderr:  # a pipe nobody reads could fill up
        proc = subprocess.Popen(argv, env=runner_env(env), stderr=stderr, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stderr.seek(0)
            err = stderr.read().strip()
            if err:
                console.print(f"[dim]runner stderr: {err[-2000:]}[/]")


@dataclass
class Drain:
    seconds: float  # the figure: spawn (or start) to the last job done
    steady_seconds: float | None = None  # first claim to last completion (ours: from the rows)

    def rate(self, jobs: int) -> float:
        return jobs / self.seconds


LEFT = "SELECT count(*) FROM autopilot.jobs WHERE state <> 'completed'"


def drain_runner(dsn: str, conn: psycopg.Connection, jobs: int, concurrency: int) -> Drain:
    conn.execute("ANALYZE autopilot.jobs")
    deadline = time.monotonic() + 600
    t0 = time.perf_counter()
    with runner(dsn, concurrency) as proc:
        while True:
            (left,) = conn.execute(LEFT).fetchone()
            if left == 0:
                seconds = time.perf_counter() - t0
                break
            if proc.poll() is not None:
                raise CorrectnessError(f"the runner exited ({proc.returncode}) with {left} jobs left")
            if time.monotonic() > deadline:
                raise CorrectnessError(f"the runner left {left} jobs after 600 s")
            time.sleep(0.05)
    (steady,) = conn.execute(
        "SELECT extract(epoch FROM max(completed_at) - min(attempted_at)) FROM autopilot.jobs"
    ).fetchone()
    verify_ours(conn, jobs, ledger=True)
    return Drain(seconds, float(steady))


CLAIM_ONE = """
UPDATE autopilot.jobs AS j
SET state = 'executing', attempt = j.attempt + 1, attempted_at = now(), attempted_by = %(node)s,
    heartbeat_at = now()
WHERE j.id = (
    SELECT c.id FROM autopilot.jobs AS c
    WHERE c.queue = 'default' AND c.state IN ('available', 'scheduled', 'retryable')
      AND c.scheduled_at <= now()
    ORDER BY c.priority, c.scheduled_at, c.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING j.id, j.args
"""

CLAIM_MANY = """
WITH picked AS MATERIALIZED (
    SELECT c.id FROM autopilot.jobs AS c
    WHERE c.queue = 'default' AND c.state IN ('available', 'scheduled', 'retryable')
      AND c.scheduled_at <= now()
    ORDER BY c.priority, c.scheduled_at, c.id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE autopilot.jobs AS j
SET state = 'executing', attempt = j.attempt + 1, attempted_at = now(), attempted_by = %(node)s,
    heartbeat_at = now()
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.args
"""

COMPLETE = (
    "UPDATE autopilot.jobs SET state = 'completed', completed_at = now()"
    " WHERE id = ANY(%s) AND state = 'executing'"
)


def drain_raw(dsn: str, conn: psycopg.Connection, jobs: int, concurrency: int, batch: int) -> Drain:
    """N threads, each claiming ``batch`` jobs and completing them in the same transaction."""
    conn.execute("ANALYZE autopilot.jobs")
    errors: list[BaseException] = []
    connections = [psycopg.connect(dsn) for _ in range(concurrency)]
    start = threading.Barrier(concurrency + 1)

    def loop(c: psycopg.Connection, node: str) -> None:
        try:
            start.wait()
            query = CLAIM_ONE if batch == 1 else CLAIM_MANY
            params = {"node": node, "limit": batch}
            while True:
                rows = c.execute(query, params, prepare=True).fetchall()
                if rows:
                    c.execute(COMPLETE, ([r[0] for r in rows],), prepare=True)
                c.commit()
                if not rows:
                    return
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=loop, args=(c, f"raw-{i}"), daemon=True) for i, c in enumerate(connections)
    ]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    for c in connections:
        c.close()
    if errors:
        raise CorrectnessError(f"the raw loop failed: {errors[0]!r}")
    verify_ours(conn, jobs, ledger=False)
    return Drain(seconds)


def verify_ours(conn: psycopg.Connection, jobs: int, ledger: bool) -> None:
    """Every job completed, each exactly once (attempt 1; with ``ledger``, one job_runs row each)."""
    total, completed, retried = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE attempt <> 1)"
        " FROM autopilot.jobs"
    ).fetchone()
    problems = []
    if total != jobs or completed != jobs:
        problems.append(f"{completed} of {jobs} jobs completed ({total} rows)")
    if retried:
        problems.append(f"{retried} jobs were attempted more than once")
    if ledger:
        runs, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT details ->> 'job_id') FROM autopilot.job_runs"
            " WHERE side = 'runner'"
        ).fetchone()
        if runs != jobs or distinct != jobs:
            problems.append(f"job_runs: {runs} runs of {distinct} jobs, expected {jobs} of {jobs}")
    if problems:
        raise CorrectnessError("; ".join(problems))


def latency_runner(dsn: str, conn: psycopg.Connection, samples: int) -> tuple[list[float], list[float]]:
    """ms from just before each enqueue to the worker's start, and the rows' attempted_at - inserted_at."""
    reset(conn)
    rng = random.Random(4)
    with tempfile.TemporaryDirectory() as tmp:
        starts_file = Path(tmp) / "starts"
        starts_file.touch()

        def starts() -> dict[int, float]:
            lines = starts_file.read_text().split("\n")
            return {int(p): float(t) for p, t in (ln.split() for ln in lines if ln.strip())}

        with runner(dsn, 10, {"AUTOPILOT_BENCH_STARTS": str(starts_file)}) as proc:
            conn.execute("SELECT autopilot.enqueue('noop', %s)", (Jsonb({"probe": -1}),))
            deadline = time.monotonic() + 30
            while -1 not in starts():  # the runner is up and has run a job
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise CorrectnessError("the runner did not start the warm-up job")
                time.sleep(0.05)
            time.sleep(1.0)  # idle again
            sent: dict[int, float] = {}
            for probe in range(samples):
                time.sleep(rng.uniform(0.010, 0.040))
                sent[probe] = time.time()
                conn.execute("SELECT autopilot.enqueue('noop', %s)", (Jsonb({"probe": probe}),))
            deadline = time.monotonic() + 30
            while len(starts()) < samples + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen = starts()
            time.sleep(0.5)  # completed
        db = [
            float(ms)
            for (ms,) in conn.execute(
                "SELECT extract(epoch FROM attempted_at - inserted_at) * 1000 FROM autopilot.jobs"
                " WHERE (args ->> 'probe')::int >= 0"
            ).fetchall()
        ]
    if len([p for p in seen if p >= 0]) != samples:
        raise CorrectnessError(f"{samples - len(seen) + 1} latency probes never started")
    return [(seen[p] - sent[p]) * 1000 for p in sorted(sent)], db


# -- the peers --------------------------------------------------------------------------------


def run_peer(python: Path, peer: str, dsn: str, args: argparse.Namespace, phases: str) -> dict:
    argv = [
        str(python),
        str(BENCH / "queue_peers.py"),
        peer,
        "--dsn",
        dsn,
        "--jobs",
        str(args.jobs),
        "--batch",
        str(args.batch),
        "--samples",
        str(args.samples),
        "--phases",
        phases,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"{peer} failed ({out.returncode}): {out.stderr.strip()[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for concurrency, drain in result.get("drain", {}).items():
        if drain["lost"] or drain["twice"] or drain["left"]:  # the peer's, not ours: reported, not fatal
            console.print(f"[bold red]{peer} at concurrency {concurrency} lost or repeated jobs[/]: {drain}")
    return result


# -- the figures ------------------------------------------------------------------------------


@dataclass
class Figures:
    """Seconds per round of every measured thing, keyed by (system, what)."""

    jobs: int
    seconds: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def add(self, system: str, what: str, seconds: float) -> None:
        self.seconds.setdefault((system, what), []).append(seconds)

    def rate(self, system: str, what: str) -> float | None:
        values = self.seconds.get((system, what))
        return self.jobs / statistics.median(values) if values else None

    def spread(self, system: str, what: str) -> str:
        values = self.seconds.get((system, what), [])
        if len(values) < 2:
            return ""
        rates = sorted(self.jobs / s for s in values)
        return f" [dim]({rates[0]:,.0f}-{rates[-1]:,.0f})[/]"


def fmt_rate(f: Figures, system: str, what: str) -> str:
    rate = f.rate(system, what)
    return "-" if rate is None else f"{rate:,.0f}{f.spread(system, what)}"


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def fmt_ratio(r: float | None, percent: bool = False) -> str:
    if r is None:
        return "-"
    return f"{r:.0%}" if percent else f"{r:.2f}x"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def faster_peer(f: Figures, what: str) -> tuple[str | None, float | None]:
    rates = [(p, f.rate(p, what)) for p in PEERS if f.rate(p, what) is not None]
    return max(rates, key=lambda x: x[1]) if rates else (None, None)


def print_report(f: Figures, args: argparse.Namespace) -> list[tuple[str, bool | None]]:
    goals: list[tuple[str, bool | None]] = []

    t = Table(title=f"Enqueue {f.jobs:,} no-op jobs (jobs/s; medians, min-max in brackets)")
    for h in ("", "ours", "procrastinate", "pgqueuer", "ours / faster peer", "goal", ""):
        t.add_column(h, justify="right")
    ours_b = f.rate("ours", "enqueue_batched")
    peer, peer_b = faster_peer(f, "enqueue_batched")
    ok = ours_b >= GOAL_BATCHED_ENQUEUE
    t.add_row(
        f"batched ({args.batch:,} a call)",
        fmt_rate(f, "ours", "enqueue_batched"),
        fmt_rate(f, "procrastinate", "enqueue_batched"),
        fmt_rate(f, "pgqueuer", "enqueue_batched"),
        f"{fmt_ratio(ratio(ours_b, peer_b))} ({peer})" if peer else "-",
        f">= {GOAL_BATCHED_ENQUEUE:,}/s",
        verdict(ok),
    )
    goals.append(("batched enqueue", ok))
    t.add_row(
        f"batched (one call of {f.jobs:,})",
        fmt_rate(f, "ours", "enqueue_one_call"),
        "",
        "",
        "",
        "",
        "",
    )
    ours_s = f.rate("ours", "enqueue_single")
    peer, peer_s = faster_peer(f, "enqueue_single")
    r = ratio(ours_s, peer_s)
    ok = None if r is None else r >= GOAL_SINGLE_ENQUEUE_X_PEER
    t.add_row(
        "one at a time",
        fmt_rate(f, "ours", "enqueue_single"),
        fmt_rate(f, "procrastinate", "enqueue_single"),
        fmt_rate(f, "pgqueuer", "enqueue_single"),
        f"{fmt_ratio(r)} ({peer})" if peer else "-",
        f">= {GOAL_SINGLE_ENQUEUE_X_PEER:g}x faster peer",
        verdict(ok),
    )
    goals.append(("single enqueue", ok))
    for name in (FLOOR_INSERT, FLOOR_ROUND_TRIP):
        t.add_row(f"[dim]{name}[/]", fmt_rate(f, name, "enqueue_single"), "", "", "", "", "")
    console.print(t)
    floor = f.rate(FLOOR_INSERT, "enqueue_single")
    if peer_s and floor and ours_s:
        # The goal as a time per job, beside the cheapest durable one-row insert: no enqueue that
        # commits each job can be faster than that floor.
        console.print(
            f"  one at a time, per job: ours {1e6 / ours_s:,.0f} us, {peer} {1e6 / peer_s:,.0f} us; "
            f"the goal needs <= {1e6 / (GOAL_SINGLE_ENQUEUE_X_PEER * peer_s):,.0f} us; "
            f"the floor ({FLOOR_INSERT}) is {1e6 / floor:,.0f} us"
        )

    t = Table(title=f"Drain {f.jobs:,} no-op jobs (jobs/s; medians, min-max in brackets)")
    for h in (
        "concurrency",
        "ours spawn→done",
        "ours claim→done",
        "raw single",
        f"raw {RAW_BATCH}",
        "procrastinate",
        "pgqueuer",
        "ours ÷ peer",
        f"ours ÷ raw {RAW_BATCH}",
        "≥ 2x peer",
        "≥ 25% raw",
    ):
        t.add_column(h, justify="right")
    for c in CONCURRENCIES:
        what = f"drain_{c}"
        ours = f.rate("ours", what)
        steady = f.rate("ours", f"drain_{c}_steady")
        peer, peer_rate = faster_peer(f, what)
        raw = f.rate("raw batched", what)
        r_peer, r_raw = ratio(ours, peer_rate), ratio(ours, raw)
        ok_peer = None if r_peer is None else r_peer >= GOAL_DRAIN_X_PEER
        ok_raw = None if r_raw is None else r_raw >= GOAL_DRAIN_OF_RAW
        t.add_row(
            str(c),
            fmt_rate(f, "ours", what),
            "-" if steady is None else f"{steady:,.0f}",
            fmt_rate(f, "raw single", what),
            fmt_rate(f, "raw batched", what),
            fmt_rate(f, "procrastinate", what),
            fmt_rate(f, "pgqueuer", what),
            f"{fmt_ratio(r_peer)} ({peer})" if peer else "-",
            fmt_ratio(r_raw, percent=True),
            verdict(ok_peer),
            verdict(ok_raw),
        )
        goals.append((f"drain c={c} vs peer", ok_peer))
        goals.append((f"drain c={c} vs raw batched", ok_raw))
    console.print(t)

    t = Table(title="Enqueue→start on an idle worker (ms)")
    for h in ("", "samples", "p50", "p95", "max", "goal", ""):
        t.add_column(h, justify="right")
    for system, values in f.latency_ms.items():
        if not values:
            continue
        is_ours = system == "ours"
        ok = pct(values, 0.5) <= GOAL_LATENCY_P50_MS if is_ours else None
        t.add_row(
            system,
            str(len(values)),
            f"{pct(values, 0.5):.2f}",
            f"{pct(values, 0.95):.2f}",
            f"{max(values):.2f}",
            f"p50 <= {GOAL_LATENCY_P50_MS:g}" if is_ours else "",
            verdict(ok) if is_ours else "",
        )
        if is_ours:
            goals.append(("latency p50", ok))
    console.print(t)
    return goals


# -- main -------------------------------------------------------------------------------------


def bench_ours(dsn: str, f: Figures, args: argparse.Namespace) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for rnd in range(1, args.rounds + 1):
            with console.status(f"ours, round {rnd}: enqueue"):
                reset(conn)
                f.add("ours", "enqueue_one_call", enqueue_batched(conn, args.jobs, args.jobs))
                reset(conn)
                f.add("ours", "enqueue_batched", enqueue_batched(conn, args.jobs, args.batch))
                reset(conn)
                f.add("ours", "enqueue_single", enqueue_single(conn, args.jobs))
                insert, round_trip = enqueue_floor(conn, args.jobs)
                f.add(FLOOR_INSERT, "enqueue_single", insert)
                f.add(FLOOR_ROUND_TRIP, "enqueue_single", round_trip)
            line = [
                f"batched {fmt_rate(f, 'ours', 'enqueue_batched')}",
                f"single {args.jobs / f.seconds[('ours', 'enqueue_single')][-1]:,.0f}",
            ]
            for c in CONCURRENCIES:
                with console.status(f"ours, round {rnd}: runner drain, concurrency {c}"):
                    if c != CONCURRENCIES[0]:  # the first drains the one-at-a-time jobs
                        reset(conn)
                        enqueue_batched(conn, args.jobs, args.batch)
                    d = drain_runner(dsn, conn, args.jobs, c)
                f.add("ours", f"drain_{c}", d.seconds)
                f.add("ours", f"drain_{c}_steady", d.steady_seconds)
                line.append(f"runner c={c} {d.rate(args.jobs):,.0f}")
                for name, batch in (("raw single", 1), ("raw batched", RAW_BATCH)):
                    with console.status(f"ours, round {rnd}: {name} drain, concurrency {c}"):
                        reset(conn)
                        enqueue_batched(conn, args.jobs, args.batch)
                        d = drain_raw(dsn, conn, args.jobs, c, batch)
                    f.add(name, f"drain_{c}", d.seconds)
                    line.append(f"{name} c={c} {d.rate(args.jobs):,.0f}")
            console.print(f"  ours round {rnd} (jobs/s): " + ", ".join(line))
        with console.status(f"ours: latency, {args.samples} jobs"):
            f.latency_ms["ours"], db = latency_runner(dsn, conn, args.samples)
        f.latency_ms["ours (rows: attempted_at - inserted_at)"] = db
        reset(conn)


def bench_peer(python: Path, peer: str, dsn: str, f: Figures, args: argparse.Namespace) -> None:
    for rnd in range(1, args.peer_rounds + 1):
        phases = "enqueue,drain" + (",latency" if rnd == 1 else "")
        with console.status(f"{peer}, round {rnd}: {phases}"):
            result = run_peer(python, peer, dsn, args, phases)
        f.versions[peer] = result["version"]
        f.add(peer, "enqueue_batched", result["enqueue_batched_s"])
        f.add(peer, "enqueue_single", result["enqueue_single_s"])
        for c, drain in result["drain"].items():
            f.add(peer, f"drain_{c}", drain["seconds"])
        if "latency_ms" in result:
            f.latency_ms[peer] = result["latency_ms"]
        console.print(
            f"  {peer} {result['version']} round {rnd} (jobs/s): "
            f"batched {args.jobs / result['enqueue_batched_s']:,.0f}, "
            f"single {args.jobs / result['enqueue_single_s']:,.0f}, "
            + ", ".join(f"drain c={c} {args.jobs / d['seconds']:,.0f}" for c, d in result["drain"].items())
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="use this server (scratch databases are created and dropped)")
    p.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per enqueue and drain")
    p.add_argument("--batch", type=int, default=5_000, help="jobs per batched enqueue call (default 5000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds of ours and the raw floor (median)")
    p.add_argument("--peer-rounds", type=int, help="rounds of each peer (median; default: --rounds)")
    p.add_argument("--samples", type=int, default=200, help="latency probes")
    p.add_argument("--no-peers", action="store_true", help="ours and the raw floor only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.peer_rounds is None:
        args.peer_rounds = args.rounds
    f = Figures(args.jobs)
    python = None if args.no_peers else peer_python()
    cluster = None
    started = time.perf_counter()
    try:
        if args.dsn is None:
            with console.status("starting a throwaway durable cluster"):
                cluster = Cluster.create(durable=True, pg_cron=False)
        base = args.dsn or cluster.dsn()
        with scratch_database(base, SCRATCH_DB, console) as dsn:
            create_autopilot(dsn, console)
            runner_py = ROOT / "installer" / "pg_autopilot" / "runner.py"
            console.print(
                f"runner: {runner_py.relative_to(ROOT)} sha256 "
                f"{hashlib.sha256(runner_py.read_bytes()).hexdigest()[:12]}, "
                f"modified {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(runner_py.stat().st_mtime))} UTC; "
                f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)"
            )
            console.print(
                f"{args.jobs:,} no-op jobs; batched enqueue in calls of {args.batch:,}; "
                f"{args.rounds} rounds of ours and the raw floor, {args.peer_rounds} of each peer"
            )
            bench_ours(dsn, f, args)
        if python is not None:
            for peer in PEERS:
                with scratch_database(base, f"{SCRATCH_DB}_{peer}", console) as dsn:
                    try:
                        bench_peer(python, peer, dsn, f, args)
                    except (RuntimeError, subprocess.TimeoutExpired) as exc:  # its figures are left out
                        console.print(f"[bold red]{peer} failed[/]: {exc}")
    except CorrectnessError as exc:
        console.print(f"[bold red]CORRECTNESS FAILURE[/]: {exc}")
        return 1
    finally:
        if cluster is not None:
            cluster.destroy()
    goals = print_report(f, args)
    console.print(
        "Goals: "
        + "; ".join(f"{name} {verdict(ok)}" for name, ok in goals)
        + f"  ({time.perf_counter() - started:.0f} s in all; load average now {os.getloadavg()[0]:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
