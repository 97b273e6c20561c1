"""Benchmark: our job queue (autopilot.jobs and ``autopilot runner start``) beside its peers.

Goals, at each backlog of ``--jobs`` (20,000 and 100,000) no-op jobs:

* drain: ours >= 1.5x the best-configured peer (our faster of concurrency 1 and 10, one runner,
  against the fastest configuration of either peer; the report names both), and, at concurrency 1
  and at 10, >= 40% of the batched raw SKIP LOCKED floor at the same concurrency;
* while draining, a runner process never holds more than ``concurrency + max_prefetch`` jobs in
  ``executing`` (``RunnerConfig``'s ``max_prefetch``, 200), and the server logs no deadlock;
* one-at-a-time enqueue costs <= 1.25x the durable one-row-insert floor measured beside it;
* kept from before: batched enqueue >= 50,000 jobs/s, and enqueue->start on an idle runner p50 <= 5 ms.

What is measured, and how:

* A throwaway *durable* cluster (fsync on, synchronous_commit on, full_page_writes on) is started
  with ``pg_autopilot.testing.Cluster`` (or ``--dsn`` names an existing server); each system gets a
  scratch database of its own (``_scratch.scratch_database``): ours with ``CREATE EXTENSION
  autopilot``; procrastinate's and pgqueuer's with their own schema installers.
* The peers (bench/requirements-peers.txt) are installed only for the benchmark, into
  ``.venv-bench`` (created here on the first run, or when that file changes; the project's
  ``.venv`` never gets them), and run there by bench/queue_peers.py, one process per peer, phase,
  configuration and round, which prints its figures as JSON (its docstring says how each peer is
  driven).
* Enqueue, batched: every backlog below is enqueued with ``autopilot.enqueue_many`` in chunks of
  ``--batch`` (5,000; one transaction per call) and timed, except the first of each size, enqueued
  in one call of all its jobs (printed for reference); the peers' batch APIs in the same chunks.
  One at a time: ``--single-chunks`` (10) alternations of ``--single-chunk-size`` (500) calls of
  each of: ``SELECT autopilot.enqueue('noop')``; the floor under any such enqueue on this server
  and client, ``INSERT`` into a table holding only a bigserial primary key; ``SELECT 1`` (the
  round trip alone); and, for reference, ``INSERT INTO autopilot.jobs (worker) VALUES ('noop')``
  (the queue table's own cost: its row, CHECK constraints and index entries, without any function).
  Each call is its own autocommit transaction (one commit, one WAL flush, per job); which of the
  four goes first turns with each alternation, so that the machine's noise hits all alike. The
  report gives the median of the chunks' microseconds per job. The peers' single-job APIs are timed
  on as many jobs, for reference.
* Drain, after an ``ANALYZE``, of a backlog of each ``--jobs`` size:
  - ours: the runner as a real subprocess, ``python -m pg_autopilot.cli runner start --queues
    default --concurrency N --worker-module queue_workers --no-startup-jobs --log-level warning``
    (bench/queue_workers.py registers ``noop``; ``PYTHONPATH`` is installer/, or ``--runner-path``,
    and bench/), at concurrency 1 and 10, and at the largest size also 2 and 4 such processes at
    concurrency 10 each. Timed from the spawn until every job is ``completed``, so the start of the
    processes is included; the figure from the first claim to the last completion (the rows'
    ``attempted_at`` / ``completed_at``) is printed beside it. Then SIGTERM. Every 50 ms while
    draining, ``SELECT attempted_by, count(*) ... WHERE state = 'executing' GROUP BY 1`` (one
    statement with whether a job still waits, which ends the drain; both read partial indexes, so
    the watcher takes next to nothing from the drain): the most jobs each runner process ever held
    at once. The lines of the server log written during the drain (the cluster's
    logfile; not read with ``--dsn``) are searched for ``deadlock detected`` and counted; other
    ``ERROR`` lines are counted too.
  - the raw floor: N threads (1, 10), each its own connection, a psycopg loop on the same table:
    batched, ``SELECT id ... ORDER BY priority, scheduled_at, id LIMIT 100 FOR UPDATE SKIP LOCKED``
    in a MATERIALIZED CTE (as ``autopilot.claim`` has it) and an ``UPDATE`` of those rows to
    executing (attempt + 1), then ``UPDATE ... WHERE id = ANY(...)`` to completed, both in one
    transaction; single, the same with ``LIMIT 1`` (at the smallest size only, for reference). No
    job_runs row (the runner's ``complete_many`` writes one per job), so this is the floor of the
    design.
  - the peers, at each size, in every configuration of ``PEER_CONFIGS`` (procrastinate's worker
    concurrency 1, 10, 20, 50; pgqueuer's batch size 1, 10, 100 with its entrypoint's
    ``concurrency_limit`` 1, 10 and none), each timed in its process from the worker's start to its
    return when the queue is empty. Each peer's best configuration at a size is the one compared.
    A configuration still draining after 5x the time its peer's best so far took (at most
    ``--peer-timeout``) is stopped, printed as an upper bound, and not run again: it cannot be the
    best (pgqueuer with ``concurrency_limit`` 1 and a batch size over 1 ran ~10 jobs/s here).
* Enqueue->start latency on an idle runner: ``--samples`` jobs enqueued one by one (autocommit)
  with random gaps of 10-40 ms; the ``noop`` worker writes its first ``time.time()`` to a file;
  latency = that - the ``time.time()`` just before the enqueue call (the enqueue's commit
  included). The runner runs with its defaults (concurrency 10, poll every 1 s: NOTIFY wakes it).
  procrastinate and pgqueuer the same way in their process (pgqueuer listening on a connection of
  its own, see bench/queue_peers.py). The rows' ``attempted_at - inserted_at`` is printed too.
* Medians of ``--rounds`` (3) rounds of ours and the raw floor, min-max beside them; the peers'
  sweep runs ``--peer-rounds`` (1) times. The latency test runs once per system. The full run
  takes about 30 minutes on 2 busy cores, most of it the peers' slower configurations.
  ``--quick``: 2,000 jobs, 1 round, one configuration of each peer, 4 x 250 single enqueues, 50
  latency probes: a smoke run of every path in under a minute.
* ``--runner-path DIR``: the runner subprocesses import ``pg_autopilot`` from DIR (another
  checkout's installer/) instead of this one's, against the same server and SQL, for a before/after
  comparison; the report's first lines name the runner's code that ran (a hash of its files, and
  the checkout's commit).
* Correctness after every drain: every job completed exactly once (``attempt = 1``, and for the
  runner one job_runs row per job). A job of ours lost or run twice exits 1; a missed goal is
  printed as MISS and still exits 0. The peers count their own executions; a peer that loses or
  repeats a job, or fails, is reported in red and its figures are left out (not fatal).

Run:  PYTHONPATH=installer .venv/bin/python bench/queue_throughput.py [--quick] [--dsn DSN]
      [--jobs 20000,100000] [--rounds 3] [--no-peers] [--runner-path ../other/installer]
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
from typing import Any

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

from pg_autopilot.runner import RunnerConfig
from pg_autopilot.testing import Cluster

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEER_VENV = ROOT / ".venv-bench"
PEER_REQUIREMENTS = BENCH / "requirements-peers.txt"
SCRATCH_DB = "autopilot_bench_queue"
PEERS = ("procrastinate", "pgqueuer")
CONCURRENCIES = (1, 10)
PROCESSES = (1, 2, 4)  # runner processes at the largest backlog, each at PROCESS_CONCURRENCY
PROCESS_CONCURRENCY = 10
RAW_BATCH = 100
SAMPLE_EVERY = 0.05  # seconds between two looks at the jobs while draining
FLOOR_INSERT = "floor: 1-row INSERT, pkey only"
FLOOR_ROUND_TRIP = "floor: SELECT 1 round trip"
QUEUE_INSERT = "bare INSERT into autopilot.jobs"

# Each peer's drain configurations, likeliest fastest first (the first one bounds the others' time).
PEER_CONFIGS: dict[str, list[dict[str, int]]] = {
    "procrastinate": [{"concurrency": c} for c in (10, 20, 50, 1)],
    "pgqueuer": [
        {"batch_size": b, "concurrency": c} for c in (0, 10, 1) for b in (100, 10, 1)
    ],  # concurrency 0: no concurrency_limit (pgqueuer's default)
}
QUICK_PEER_CONFIGS: dict[str, list[dict[str, int]]] = {
    "procrastinate": [{"concurrency": 10}],
    "pgqueuer": [{"batch_size": 100, "concurrency": 0}],
}
PEER_CUTOFF = 5.0  # a peer configuration is stopped after this many times its best's drain time
PEER_MIN_TIMEOUT = 60.0  # ... but never before this many seconds

GOAL_DRAIN_X_PEER = 1.5
GOAL_DRAIN_OF_RAW = 0.40
GOAL_SINGLE_X_FLOOR = 1.25  # cost per job, ours / the one-row-insert floor
GOAL_BATCHED_ENQUEUE = 50_000  # jobs/s
GOAL_LATENCY_P50_MS = 5.0
MAX_PREFETCH = RunnerConfig().max_prefetch  # the promise: concurrency + this, per runner process

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


# -- the runner under test --------------------------------------------------------------------


def runner_env(runner_path: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """PYTHONPATH: ``runner_path`` (installer/, or another checkout's) and bench/ (for
    queue_workers.py; no module of bench/ shadows the standard library's or a dependency's), and
    nothing inherited, so that the runner imports pg_autopilot from ``runner_path`` only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(runner_path), str(BENCH)])
    env.update(extra or {})
    return env


def describe_runner(runner_path: Path) -> str:
    """Which runner code runs: where the subprocess imports pg_autopilot from, a hash of the
    runner's and the queue client's files, and the checkout's commit (git, read only)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import pg_autopilot.runner, pg_autopilot.cli; print(pg_autopilot.__file__)"],
        env=runner_env(runner_path),
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        raise SystemExit(f"the runner in {runner_path} cannot be imported:\n{probe.stderr.strip()[-2000:]}")
    package = Path(probe.stdout.strip()).parent
    files = sorted(
        p
        for p in [package / "runner.py", package / "queue.py", *(package / "runner").glob("*.py")]
        if p.is_file()
    )
    digest = hashlib.sha256()
    for p in files:
        digest.update(p.relative_to(package).as_posix().encode() + b"\0" + p.read_bytes())
    newest = max(p.stat().st_mtime for p in files)
    line = (
        f"runner: pg_autopilot from {package}, runner+queue sha256 {digest.hexdigest()[:12]}, "
        f"newest file {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(newest))} UTC"
    )
    git = ["git", "-C", str(package)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
        ).stdout.strip()
        line += f", commit {head.stdout.strip()}" + (" with local changes" if dirty else "")
    return line


@contextlib.contextmanager
def runner(
    dsn: str, concurrency: int, runner_path: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
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
        proc = subprocess.Popen(argv, env=runner_env(runner_path, env), stderr=stderr, text=True)
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
                console.print(f"[dim]runner {proc.pid} stderr: {err[-2000:]}[/]")


# -- our queue: enqueue -----------------------------------------------------------------------


def reset(conn: psycopg.Connection) -> None:
    conn.execute("TRUNCATE autopilot.jobs, autopilot.job_runs RESTART IDENTITY")


def enqueue_batched(conn: psycopg.Connection, jobs: int, batch: int) -> float:
    """``enqueue_many`` in chunks of ``batch`` (autocommit: a transaction per call); seconds."""
    t0 = time.perf_counter()
    for start in range(0, jobs, batch):
        size = min(batch, jobs - start)
        conn.execute("SELECT count(*) FROM autopilot.enqueue_many(%s)", (Jsonb([{"worker": "noop"}] * size),))
    return time.perf_counter() - t0


def enqueue_single_interleaved(conn: psycopg.Connection, chunks: int, size: int) -> dict[str, list[float]]:
    """``chunks`` alternations of ``size`` one-at-a-time calls (autocommit, a commit each) of our
    enqueue, of the floor's ``INSERT INTO bench_floor DEFAULT VALUES`` (a bigserial primary key,
    nothing else), of ``SELECT 1``, and of a bare INSERT of a job (no function); the first turns with
    each alternation. Returns each one's microseconds per job, a figure per chunk."""
    calls = {
        "ours": ("SELECT autopilot.enqueue(%s)", ("noop",)),
        FLOOR_INSERT: ("INSERT INTO bench_floor DEFAULT VALUES", None),
        FLOOR_ROUND_TRIP: ("SELECT 1", None),
        QUEUE_INSERT: ("INSERT INTO autopilot.jobs (worker) VALUES ('noop')", None),
    }
    names = list(calls)
    per_job: dict[str, list[float]] = {name: [] for name in names}
    reset(conn)
    conn.execute("CREATE TABLE bench_floor (id bigserial PRIMARY KEY)")
    try:
        for i in range(chunks):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                query, params = calls[name]
                t0 = time.perf_counter()
                for _ in range(size):
                    conn.execute(query, params)
                per_job[name].append((time.perf_counter() - t0) * 1e6 / size)
        (floor_rows,) = conn.execute("SELECT count(*) FROM bench_floor").fetchone()
    finally:
        conn.execute("DROP TABLE bench_floor")
    (ours_rows,) = conn.execute("SELECT count(*) FROM autopilot.jobs").fetchone()
    if ours_rows != 2 * chunks * size or floor_rows != chunks * size:  # enqueue's and the bare INSERTs
        raise CorrectnessError(
            f"one-at-a-time enqueue: {ours_rows} jobs and {floor_rows} floor rows, expected "
            f"{2 * chunks * size} and {chunks * size}"
        )
    reset(conn)
    return per_job


# -- our queue: drain -------------------------------------------------------------------------


@dataclass
class Drain:
    seconds: float  # the figure: spawn (or start) to the last job done
    steady_seconds: float | None = None  # first claim to last completion (ours: from the rows)
    peak_executing: dict[str, int] = field(default_factory=dict)  # most jobs each node held at once
    deadlocks: int | None = None  # "deadlock detected" in the server log during the drain
    errors: int | None = None  # other ERROR lines in it

    def rate(self, jobs: int) -> float:
        return jobs / self.seconds


# What the drain's watcher reads every SAMPLE_EVERY, in one statement (one snapshot): the jobs
# executing on each node (jobs_executing_idx: at most the runners' limits), and whether any job still
# waits (node NULL, executing false; one entry of jobs_claim_idx). Cheap on purpose: counting every
# unfinished job here was planned as a seq scan over 100,000 rows and their dead versions (~20 ms on
# three parallel processes) every 50 ms, a share of the two cores taken from the drain it watched.
LOOK = """
SELECT attempted_by, true, count(*)
FROM autopilot.jobs
WHERE state = 'executing'
GROUP BY 1
UNION ALL
SELECT NULL, false, count(*)
FROM (SELECT FROM autopilot.jobs WHERE state IN ('available', 'scheduled', 'retryable') LIMIT 1) AS w
"""


def unfinished(conn: psycopg.Connection) -> int:
    """The jobs not completed yet (for an error message: LOOK only says whether one waits)."""
    (count,) = conn.execute("SELECT count(*) FROM autopilot.jobs WHERE state <> 'completed'").fetchone()
    return count


class ServerLog:
    """The lines the server writes to its logfile from now on (``None``: not read, as with --dsn)."""

    def __init__(self, path: Path | None):
        self.path = path
        self.offset = path.stat().st_size if path is not None else 0

    def new_lines(self) -> list[str] | None:
        if self.path is None:
            return None
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace").splitlines()


def drain_runner(
    dsn: str,
    conn: psycopg.Connection,
    jobs: int,
    concurrency: int,
    processes: int,
    runner_path: Path,
    logfile: Path | None,
) -> Drain:
    conn.execute("ANALYZE autopilot.jobs")
    log = ServerLog(logfile)
    peak: dict[str, int] = {}
    allowed = max(600.0, jobs / 100)
    deadline = time.monotonic() + allowed
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(runner(dsn, concurrency, runner_path)) for _ in range(processes)]
        while True:
            looked = time.perf_counter()
            waiting = executing = 0
            for node, is_executing, count in conn.execute(LOOK, prepare=True).fetchall():
                if is_executing:
                    executing += count
                    peak[node] = max(peak.get(node, 0), count)
                else:
                    waiting += count
            if waiting == 0 and executing == 0:
                seconds = time.perf_counter() - t0
                break
            for proc in procs:
                if proc.poll() is not None:
                    raise CorrectnessError(
                        f"a runner exited ({proc.returncode}) with {unfinished(conn)} jobs left"
                    )
            if time.monotonic() > deadline:
                raise CorrectnessError(f"the runners left {unfinished(conn)} jobs after {allowed:.0f} s")
            time.sleep(max(0.0, SAMPLE_EVERY - (time.perf_counter() - looked)))
    lines = log.new_lines()
    (steady,) = conn.execute(
        "SELECT extract(epoch FROM max(completed_at) - min(attempted_at)) FROM autopilot.jobs"
    ).fetchone()
    verify_ours(conn, jobs, ledger=True)
    return Drain(
        seconds,
        float(steady),
        peak,
        None if lines is None else sum("deadlock detected" in ln for ln in lines),
        None if lines is None else sum("ERROR:" in ln and "deadlock detected" not in ln for ln in lines),
    )


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


def latency_runner(
    dsn: str, conn: psycopg.Connection, samples: int, runner_path: Path
) -> tuple[list[float], list[float]]:
    """ms from just before each enqueue to the worker's start, and the rows' attempted_at - inserted_at."""
    reset(conn)
    rng = random.Random(4)
    with tempfile.TemporaryDirectory() as tmp:
        starts_file = Path(tmp) / "starts"
        starts_file.touch()

        def starts() -> dict[int, float]:
            lines = starts_file.read_text().split("\n")
            return {int(p): float(t) for p, t in (ln.split() for ln in lines if ln.strip())}

        with runner(dsn, 10, runner_path, {"AUTOPILOT_BENCH_STARTS": str(starts_file)}) as proc:
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


# -- the figures ------------------------------------------------------------------------------


def ours_label(concurrency: int, processes: int = 1) -> str:
    return f"c={concurrency}" if processes == 1 else f"{processes} x c={concurrency}"


def peer_label(peer: str, config: dict[str, int]) -> str:
    if peer == "pgqueuer":
        limit = config["concurrency"]
        return f"batch {config['batch_size']}, " + (f"concurrency {limit}" if limit else "no limit")
    return f"concurrency {config['concurrency']}"


@dataclass
class DrainCheck:
    """What was seen during one drain of ours: the most jobs a runner process held in ``executing``
    (sampled every 50 ms), against ``concurrency + max_prefetch``; the server log's deadlocks."""

    jobs: int
    label: str
    peak: int
    limit: int
    deadlocks: int | None
    errors: int | None


@dataclass
class Figures:
    """Seconds per round of every measured thing, keyed by (system, what, jobs)."""

    seconds: dict[tuple[str, str, int], list[float]] = field(default_factory=dict)
    per_job_us: dict[str, list[float]] = field(default_factory=dict)  # one-at-a-time enqueue, by chunk
    single_jobs: int = 0  # jobs of each one-at-a-time figure (the peers' too)
    latency_ms: dict[str, list[float]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    checks: list[DrainCheck] = field(default_factory=list)
    stopped: dict[tuple[str, str, int], float] = field(default_factory=dict)  # peer config -> seconds
    failed: dict[tuple[str, str, int], str] = field(default_factory=dict)  # peer config -> why

    def add(self, system: str, what: str, jobs: int, seconds: float) -> None:
        self.seconds.setdefault((system, what, jobs), []).append(seconds)

    def rate(self, system: str, what: str, jobs: int) -> float | None:
        values = self.seconds.get((system, what, jobs))
        return jobs / statistics.median(values) if values else None

    def fmt(self, system: str, what: str, jobs: int) -> str:
        rate = self.rate(system, what, jobs)
        if rate is None:
            return "-"
        values = self.seconds[(system, what, jobs)]
        if len(values) < 2:
            return f"{rate:,.0f}"
        rates = sorted(jobs / s for s in values)
        return f"{rate:,.0f} [dim]({rates[0]:,.0f}-{rates[-1]:,.0f})[/]"

    def best_peer(self, jobs: int) -> tuple[str, str, float] | None:
        """(peer, configuration, jobs/s) of the fastest peer configuration at ``jobs``."""
        found = [
            (system, what.removeprefix("drain "), self.rate(system, what, jobs))
            for (system, what, n) in self.seconds
            if system in PEERS and n == jobs and what.startswith("drain ")
        ]
        return max(found, key=lambda x: x[2]) if found else None

    def best_of_peer(self, peer: str, jobs: int) -> float | None:
        rates = [
            self.rate(s, w, n)
            for (s, w, n) in self.seconds
            if s == peer and n == jobs and w.startswith("drain ")
        ]
        return max(rates) if rates else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def fmt_ratio(r: float | None, percent: bool = False) -> str:
    if r is None:
        return "-"
    return f"{r:.0%}" if percent else f"{r:.2f}x"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_enqueue(f: Figures, args: argparse.Namespace, goals: list[tuple[str, bool | None]]) -> None:
    t = Table(title="Enqueue, batched (jobs/s; medians, min-max in brackets)")
    for h in ("jobs", "", "ours", "procrastinate", "pgqueuer", "goal", ""):
        t.add_column(h, justify="right")
    for jobs in args.jobs:
        ours = f.rate("ours", "enqueue_batched", jobs)
        ok = None if ours is None else ours >= GOAL_BATCHED_ENQUEUE
        t.add_row(
            f"{jobs:,}",
            f"{args.batch:,} a call",
            f.fmt("ours", "enqueue_batched", jobs),
            f.fmt("procrastinate", "enqueue_batched", jobs),
            f.fmt("pgqueuer", "enqueue_batched", jobs),
            f">= {GOAL_BATCHED_ENQUEUE:,}/s",
            verdict(ok),
        )
        goals.append((f"batched enqueue {jobs:,}", ok))
        t.add_row("", f"one call of {jobs:,}", f.fmt("ours", "enqueue_one_call", jobs), "", "", "", "")
    console.print(t)

    t = Table(
        title=f"Enqueue, one at a time (microseconds per job; median of {len(f.per_job_us.get('ours', []))} "
        f"interleaved chunks of {args.single_chunk_size:,}, min-max in brackets)"
    )
    for h in ("", "us/job", "jobs/s", "÷ floor", "goal", ""):
        t.add_column(h, justify="right")
    floor = statistics.median(f.per_job_us[FLOOR_INSERT]) if f.per_job_us.get(FLOOR_INSERT) else None
    for name in ("ours", QUEUE_INSERT, FLOOR_INSERT, FLOOR_ROUND_TRIP):
        values = f.per_job_us.get(name)
        if not values:
            continue
        us = statistics.median(values)
        is_ours = name == "ours"
        r = ratio(us, floor)
        ok = None if r is None else r <= GOAL_SINGLE_X_FLOOR
        t.add_row(
            name if is_ours else f"[dim]{name}[/]",
            f"{us:,.0f} [dim]({min(values):,.0f}-{max(values):,.0f})[/]",
            f"{1e6 / us:,.0f}",
            fmt_ratio(r),
            f"<= {GOAL_SINGLE_X_FLOOR:g}x floor" if is_ours else "",
            verdict(ok) if is_ours else "",
        )
        if is_ours:
            goals.append(("single enqueue vs floor", ok))
    bare = f.per_job_us.get(QUEUE_INSERT)
    if bare and floor:  # what the table costs before enqueue does anything
        t.caption = (
            f"the queue table's own one-row INSERT (no function, no NOTIFY) is "
            f"{statistics.median(bare) / floor:.2f}x the floor: an enqueue into it costs at least that"
        )
    for peer in PEERS:
        values = f.seconds.get((peer, "enqueue_single", f.single_jobs))
        if values:
            us = statistics.median(values) * 1e6 / f.single_jobs
            t.add_row(
                f"[dim]{peer} ({f.single_jobs:,} in a row)[/]",
                f"{us:,.0f}",
                f"{1e6 / us:,.0f}",
                fmt_ratio(ratio(us, floor)),
                "",
                "",
            )
    console.print(t)


def print_peer_sweep(f: Figures, args: argparse.Namespace) -> None:
    if not f.versions:
        return
    t = Table(
        title="The peers' drain by configuration (jobs/s; medians, min-max in brackets; ★ each one's best)"
    )
    t.add_column("peer", justify="left")
    t.add_column("configuration", justify="right")
    for jobs in args.jobs:
        t.add_column(f"{jobs:,} jobs", justify="right")
    for peer in PEERS:
        if peer not in f.versions:
            continue
        for i, config in enumerate(args.peer_configs[peer]):
            lb = peer_label(peer, config)
            cells = []
            for jobs in args.jobs:
                rate = f.rate(peer, f"drain {lb}", jobs)
                if (peer, lb, jobs) in f.failed:
                    cells.append(f"[red]failed: {f.failed[(peer, lb, jobs)][:60]}[/]")
                elif (peer, lb, jobs) in f.stopped:
                    cells.append(f"< {jobs / f.stopped[(peer, lb, jobs)]:,.0f} (stopped)")
                elif rate is None:
                    before = [n for n in args.jobs if (peer, lb, n) in f.stopped]
                    cells.append(f"[dim]skipped (stopped at {before[0]:,})[/]" if before else "-")
                else:
                    star = " ★" if rate == f.best_of_peer(peer, jobs) else ""
                    cells.append(f.fmt(peer, f"drain {lb}", jobs) + star)
            t.add_row(f"{peer} {f.versions[peer]}" if i == 0 else "", lb, *cells, end_section=False)
        t.add_section()
    console.print(t)


def print_drain(f: Figures, args: argparse.Namespace, goals: list[tuple[str, bool | None]]) -> None:
    for jobs in args.jobs:
        t = Table(title=f"Drain {jobs:,} no-op jobs (jobs/s; medians, min-max in brackets)")
        for h in ("", "spawn→done", "claim→done", "most executing / process", "deadlocks", "other ERRORs"):
            t.add_column(h, justify="right")
        labels = [ours_label(c) for c in CONCURRENCIES]
        if jobs == max(args.jobs):
            labels += [ours_label(PROCESS_CONCURRENCY, p) for p in PROCESSES if p > 1]
        for lb in labels:
            checks = [c for c in f.checks if c.jobs == jobs and c.label == lb]
            steady = f.rate("ours steady", lb, jobs)
            peak = max((c.peak for c in checks), default=None)
            limit = checks[0].limit if checks else None
            dl = [c.deadlocks for c in checks if c.deadlocks is not None]
            er = [c.errors for c in checks if c.errors is not None]
            t.add_row(
                f"ours {lb}",
                f.fmt("ours", lb, jobs),
                "-" if steady is None else f"{steady:,.0f}",
                "-" if peak is None else f"{peak} (limit {limit})",
                str(sum(dl)) if dl else "n/a",
                str(sum(er)) if er else "n/a",
            )
        for system in ("raw single", "raw batched"):
            for c in CONCURRENCIES:
                if (system, ours_label(c), jobs) in f.seconds:
                    name = f"raw {RAW_BATCH}" if system == "raw batched" else "raw single"
                    t.add_row(f"{name} c={c}", f.fmt(system, ours_label(c), jobs), "", "", "", "")
        for peer in PEERS:
            rates = [
                (w.removeprefix("drain "), f.rate(s, w, n))
                for (s, w, n) in f.seconds
                if s == peer and n == jobs and w.startswith("drain ")
            ]
            if rates:
                lb, _ = max(rates, key=lambda x: x[1])
                t.add_row(f"{peer} best ({lb})", f.fmt(peer, f"drain {lb}", jobs), "", "", "", "")
        console.print(t)

    t = Table(title="Drain goals (ours: spawn→done, one runner process)")
    for h in ("jobs", "compared", "ours", "other", "ratio", "goal", ""):
        t.add_column(h, justify="right")
    for jobs in args.jobs:
        ours = [(lb, f.rate("ours", lb, jobs)) for lb in (ours_label(c) for c in CONCURRENCIES)]
        ours = [(lb, r) for lb, r in ours if r is not None]
        best = max(ours, key=lambda x: x[1]) if ours else None
        peer = f.best_peer(jobs)
        r = ratio(best[1] if best else None, peer[2] if peer else None)
        ok = None if r is None else r >= GOAL_DRAIN_X_PEER
        t.add_row(
            f"{jobs:,}",
            f"ours best ({best[0] if best else '-'}) ÷ best peer ({f'{peer[0]} {peer[1]}' if peer else '-'})",
            f"{best[1]:,.0f}" if best else "-",
            f"{peer[2]:,.0f}" if peer else "-",
            fmt_ratio(r),
            f">= {GOAL_DRAIN_X_PEER:g}x",
            verdict(ok),
        )
        goals.append((f"drain {jobs:,} vs best peer", ok))
        for c in CONCURRENCIES:
            lb = ours_label(c)
            a, b = f.rate("ours", lb, jobs), f.rate("raw batched", lb, jobs)
            r = ratio(a, b)
            ok = None if r is None else r >= GOAL_DRAIN_OF_RAW
            t.add_row(
                "",
                f"ours {lb} ÷ raw {RAW_BATCH} {lb}",
                "-" if a is None else f"{a:,.0f}",
                "-" if b is None else f"{b:,.0f}",
                fmt_ratio(r, percent=True),
                f">= {GOAL_DRAIN_OF_RAW:.0%}",
                verdict(ok),
            )
            goals.append((f"drain {jobs:,} {lb} vs raw", ok))
        t.add_section()
    biggest = max(args.jobs)
    one = f.rate("ours", ours_label(PROCESS_CONCURRENCY), biggest)
    for i, p in enumerate(PROCESSES[1:]):
        many = f.rate("ours", ours_label(PROCESS_CONCURRENCY, p), biggest)
        t.add_row(
            f"{biggest:,}" if i == 0 else "",
            f"[dim]runner processes: ours {ours_label(PROCESS_CONCURRENCY, p)} ÷ ours "
            f"{ours_label(PROCESS_CONCURRENCY)}[/]",
            "-" if many is None else f"{many:,.0f}",
            "-" if one is None else f"{one:,.0f}",
            fmt_ratio(ratio(many, one)),
            "",
            "",
        )
    console.print(t)

    if f.checks:
        over = [c for c in f.checks if c.peak > c.limit]
        worst = max(f.checks, key=lambda c: c.peak / c.limit)
        ok = not over
        goals.append(("executing <= concurrency + max_prefetch", ok))
        console.print(
            f"  most jobs executing at once in one runner process: {worst.peak} ({worst.label}, "
            f"{worst.jobs:,} jobs; limit {worst.limit}) {verdict(ok)}"
            + "".join(f"\n    over the limit: {c.label}, {c.jobs:,} jobs: {c.peak} > {c.limit}" for c in over)
        )
        dl = [c.deadlocks for c in f.checks if c.deadlocks is not None]
        ok = None if not dl else sum(dl) == 0
        goals.append(("no deadlocks", ok))
        console.print(
            f"  deadlocks in the server log during our {len(f.checks)} drains: "
            + (
                f"{sum(dl)} {verdict(ok)}"
                if dl
                else f"not checked (--dsn: the server log is not read) {verdict(None)}"
            )
        )


def print_latency(f: Figures, goals: list[tuple[str, bool | None]]) -> None:
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


def print_report(f: Figures, args: argparse.Namespace) -> list[tuple[str, bool | None]]:
    goals: list[tuple[str, bool | None]] = []
    print_enqueue(f, args, goals)
    print_peer_sweep(f, args)
    print_drain(f, args, goals)
    print_latency(f, goals)
    return goals


# -- the rounds -------------------------------------------------------------------------------


def bench_ours(dsn: str, f: Figures, args: argparse.Namespace, logfile: Path | None) -> None:
    def ours(conn: psycopg.Connection, jobs: int, concurrency: int, processes: int = 1) -> str:
        lb = ours_label(concurrency, processes)
        with console.status(f"ours, {jobs:,} jobs: runner drain, {lb}"):
            d = drain_runner(dsn, conn, jobs, concurrency, processes, args.runner_path, logfile)
        f.add("ours", lb, jobs, d.seconds)
        f.add("ours steady", lb, jobs, d.steady_seconds)
        peak = max(d.peak_executing.values(), default=0)
        f.checks.append(DrainCheck(jobs, lb, peak, concurrency + MAX_PREFETCH, d.deadlocks, d.errors))
        deadlocks = "" if not d.deadlocks else f", [bold red]{d.deadlocks} deadlocks[/]"
        return f"runner {lb} {d.rate(jobs):,.0f} (held ≤ {peak}{deadlocks})"

    def backlog(conn: psycopg.Connection, jobs: int) -> None:
        reset(conn)
        f.add("ours", "enqueue_batched", jobs, enqueue_batched(conn, jobs, args.batch))

    with psycopg.connect(dsn, autocommit=True) as conn:
        for rnd in range(1, args.rounds + 1):
            with console.status(f"ours, round {rnd}: one at a time, interleaved with the floor"):
                for name, values in enqueue_single_interleaved(
                    conn, args.single_chunks, args.single_chunk_size
                ).items():
                    f.per_job_us.setdefault(name, []).extend(values)
            for jobs in args.jobs:
                line = []
                reset(conn)
                f.add("ours", "enqueue_one_call", jobs, enqueue_batched(conn, jobs, jobs))
                line.append(ours(conn, jobs, CONCURRENCIES[0]))
                for c in CONCURRENCIES[1:]:
                    backlog(conn, jobs)
                    line.append(ours(conn, jobs, c))
                if jobs == max(args.jobs):
                    for p in PROCESSES[1:]:  # 1 process at PROCESS_CONCURRENCY: measured just above
                        backlog(conn, jobs)
                        line.append(ours(conn, jobs, PROCESS_CONCURRENCY, p))
                for name, batch in (("raw batched", RAW_BATCH), ("raw single", 1)):
                    if batch == 1 and jobs != min(args.jobs):  # the single-row floor: for reference
                        continue
                    for c in CONCURRENCIES:
                        with console.status(f"ours, {jobs:,} jobs: {name} drain, c={c}"):
                            backlog(conn, jobs)
                            d = drain_raw(dsn, conn, jobs, c, batch)
                        f.add(name, ours_label(c), jobs, d.seconds)
                        line.append(f"{name} c={c} {d.rate(jobs):,.0f}")
                console.print(f"  round {rnd}, {jobs:,} jobs (jobs/s): " + ", ".join(line))
            us = {k: statistics.median(v) for k, v in f.per_job_us.items()}
            console.print(
                f"  round {rnd}, one at a time (us/job, medians so far): ours {us['ours']:,.0f}, "
                f"bare INSERT into jobs {us[QUEUE_INSERT]:,.0f}, insert floor {us[FLOOR_INSERT]:,.0f}, "
                f"round trip {us[FLOOR_ROUND_TRIP]:,.0f}"
            )
        with console.status(f"ours: latency, {args.samples} jobs"):
            f.latency_ms["ours"], db = latency_runner(dsn, conn, args.samples, args.runner_path)
        f.latency_ms["ours (rows: attempted_at - inserted_at)"] = db
        reset(conn)


def run_peer(python: Path, peer: str, dsn: str, timeout: float, *extra: str) -> dict[str, Any]:
    argv = [str(python), str(BENCH / "queue_peers.py"), peer, "--dsn", dsn, *extra]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{peer} failed ({out.returncode}): {out.stderr.strip()[-3000:]}")
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"{peer} printed no figures: {out.stdout.strip()[-500:]!r}") from None


def bench_peer(python: Path, peer: str, dsn: str, f: Figures, args: argparse.Namespace) -> None:
    stopped: set[str] = set()  # configurations stopped once: not run again
    for rnd in range(1, args.peer_rounds + 1):
        for jobs in args.jobs:
            single = f.single_jobs if jobs == min(args.jobs) else 0
            with console.status(f"{peer}, round {rnd}, {jobs:,} jobs: enqueue"):
                result = run_peer(
                    python,
                    peer,
                    dsn,
                    args.peer_timeout,
                    *("--phases", "enqueue", "--jobs", str(jobs), "--batch", str(args.batch)),
                    *("--single", str(single)),
                )
            f.versions[peer] = result["version"]
            f.add(peer, "enqueue_batched", jobs, result["enqueue_batched_s"])
            if single:
                f.add(peer, "enqueue_single", single, result["enqueue_single_s"])
            line = [f"batched enqueue {jobs / result['enqueue_batched_s']:,.0f}"]
            for config in args.peer_configs[peer]:
                lb = peer_label(peer, config)
                if lb in stopped:
                    continue
                best = f.best_of_peer(peer, jobs)
                timeout = args.peer_timeout
                if best is not None:
                    timeout = min(timeout, max(PEER_MIN_TIMEOUT, PEER_CUTOFF * jobs / best))
                extra = [f"--{k.replace('_', '-')}={v}" for k, v in config.items()]
                try:
                    with console.status(
                        f"{peer}, round {rnd}, {jobs:,} jobs: drain, {lb} (at most {timeout:.0f} s)"
                    ):
                        result = run_peer(
                            python, peer, dsn, timeout, "--phases", "drain", "--jobs", str(jobs), *extra
                        )
                except subprocess.TimeoutExpired:
                    f.stopped[(peer, lb, jobs)] = timeout
                    stopped.add(lb)
                    line.append(f"{lb} stopped after {timeout:.0f} s")
                    continue
                except RuntimeError as exc:  # the peer's failure: reported, not fatal
                    f.failed[(peer, lb, jobs)] = str(exc).splitlines()[-1]
                    console.print(f"[bold red]{peer} {lb}, {jobs:,} jobs, failed[/]: {exc}")
                    continue
                drain = result["drain"]
                if drain["lost"] or drain["twice"] or drain["left"]:  # the peer's, not ours: not fatal
                    f.failed[(peer, lb, jobs)] = "lost or repeated jobs"
                    console.print(f"[bold red]{peer} {lb}, {jobs:,} jobs, lost or repeated jobs[/]: {drain}")
                    continue
                f.add(peer, f"drain {lb}", jobs, drain["seconds"])
                line.append(f"{lb} {jobs / drain['seconds']:,.0f}")
            console.print(
                f"  {peer} {f.versions[peer]}, round {rnd}, {jobs:,} jobs (jobs/s): " + ", ".join(line)
            )
    with console.status(f"{peer}: latency, {args.samples} jobs"):
        result = run_peer(
            python, peer, dsn, args.peer_timeout, "--phases", "latency", "--samples", str(args.samples)
        )
    f.latency_ms[peer] = result["latency_ms"]


# -- main -------------------------------------------------------------------------------------


def job_counts(text: str) -> list[int]:
    try:
        counts = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give job counts separated by commas, e.g. 20000,100000"
        ) from None
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: job counts must be positive")
    return counts


def installer_dir(text: str) -> Path:
    path = Path(text).resolve()
    if not (path / "pg_autopilot" / "__init__.py").is_file():
        raise argparse.ArgumentTypeError(
            f"{path} holds no pg_autopilot package: give a checkout's installer/ directory"
        )
    return path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="use this server (scratch databases are created and dropped)")
    p.add_argument(
        "--quick", action="store_true", help="a smoke run: 2,000 jobs, 1 round, one config per peer"
    )
    p.add_argument("--jobs", type=job_counts, help="backlog sizes, e.g. 20000,100000 (the default)")
    p.add_argument("--batch", type=int, default=5_000, help="jobs per batched enqueue call (default 5000)")
    p.add_argument("--rounds", type=int, help="rounds of ours and the raw floor (median; default 3)")
    p.add_argument("--peer-rounds", type=int, help="rounds of each peer's sweep (median; default 1)")
    p.add_argument("--single-chunks", type=int, help="alternations of one-at-a-time enqueue (default 10)")
    p.add_argument("--single-chunk-size", type=int, help="calls per alternation (default 500)")
    p.add_argument("--samples", type=int, help="latency probes (default 200)")
    p.add_argument("--peer-timeout", type=float, default=1800, help="most seconds of one peer process")
    p.add_argument("--no-peers", action="store_true", help="ours and the raw floor only")
    p.add_argument(
        "--runner-path",
        type=installer_dir,
        default=ROOT / "installer",
        metavar="DIR",
        help="import the runner's pg_autopilot from DIR (another checkout's installer/)",
    )
    args = p.parse_args(argv)
    preset = (
        {
            "jobs": [2_000],
            "rounds": 1,
            "peer_rounds": 1,
            "single_chunks": 4,
            "single_chunk_size": 250,
            "samples": 50,
        }
        if args.quick
        else {
            "jobs": [20_000, 100_000],
            "rounds": 3,
            "peer_rounds": 1,
            "single_chunks": 10,
            "single_chunk_size": 500,
            "samples": 200,
        }
    )
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.peer_configs = QUICK_PEER_CONFIGS if args.quick else PEER_CONFIGS
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    f = Figures(single_jobs=args.single_chunks * args.single_chunk_size)
    console.print(describe_runner(args.runner_path))
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
            console.print(
                f"backlogs of {', '.join(f'{n:,}' for n in args.jobs)} no-op jobs; batched enqueue in "
                f"calls of {args.batch:,}; rounds: {args.rounds} of ours and the raw floor, "
                f"{args.peer_rounds} of each peer's sweep; limit on executing jobs per runner process: "
                f"concurrency + {MAX_PREFETCH}; "
                f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)"
            )
            bench_ours(dsn, f, args, cluster.logfile if cluster is not None else None)
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
