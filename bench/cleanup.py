"""Benchmark: old-job-cleanup deleting 1,000,000 expired runner jobs under a concurrent writer.

Goal (from the issue): 1,000,000 expired rows deleted at >= 200,000 rows/s with the slowest batch
<= 100 ms, while a concurrent writer's inserts into the same table never wait longer than 100 ms.

What is measured, and how:

* A throwaway *durable* cluster (fsync on, synchronous_commit on, full_page_writes on) is started
  with ``pg_autopilot.testing.Cluster`` (or ``--dsn`` names an existing server); the extension is
  created in a scratch database ``autopilot_bench_cleanup``. pg_cron is not needed.
* For every batch size (``cleanup.batch_size``), ``autopilot.jobs`` is loaded server-side with
  ``INSERT ... SELECT generate_series``: 1,000,000 expired finished jobs (mostly completed, some
  cancelled and discarded, all finished months ago), 100,000 unfinished ``available`` jobs spread
  evenly among them (they must survive), and 50,000 recently finished jobs at the newest ids
  (they must survive: inside their retention). Then ``VACUUM ANALYZE`` and ``CHECKPOINT``, as
  for a table that has been sitting there for a week.
* Batch latency: the procedure's loop is reproduced from Python, one
  ``autopilot._run_job_step('old-job-cleanup', cursor)`` per transaction followed by a COMMIT
  (exactly what ``run_scheduled_job`` does per batch). Each batch is timed from the call to the
  end of its commit, client side.
* End-to-end rate: after a fresh reload, the real job as pg_cron runs it,
  ``CALL autopilot.run_scheduled_job('old-job-cleanup')`` on an autocommit connection, timed as
  a whole; rows/s = expired rows deleted / wall time of the CALL.
* Concurrent writer: during both runs a thread with its own autocommit connection inserts one
  ``available`` job at a time into ``autopilot.jobs`` (every ``--writer-interval-ms``, or as fast
  as it can with 0). Each insert's latency (statement + commit) is recorded; the figures count
  only the inserts that overlapped the cleanup.
* Correctness after every run: no expired row left, every survivor and every writer row present.
  A correctness failure exits 1; a missed goal is printed as MISS and still exits 0.

Run:  PYTHONPATH=installer .venv/bin/python bench/cleanup.py [--dsn DSN] [--batch-sizes 2000,5000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.table import Table

JOB = "old-job-cleanup"
SCRATCH_DB = "autopilot_bench_cleanup"
DEFAULT_BATCH_SIZE = 5000

GOAL_ROWS_PER_S = 200_000
GOAL_SLOWEST_BATCH_MS = 100.0
GOAL_WRITER_WAIT_MS = 100.0

console = Console(highlight=False, width=140)
T = TypeVar("T")


# -- the data set -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    """How many rows of each kind are loaded; ``worker`` tags each kind for the checks."""

    expired: int
    available: int
    recent: int

    def expected_survivors(self) -> dict[str, int]:
        return {"bench.available": self.available, "bench.recent": self.recent}


# Row g.i of the old region is unfinished when the running quota of available jobs steps up,
# which spreads exactly `available` unfinished jobs evenly among the `expired` ones. Expired jobs
# finished 200 to ~70 days ago (past the 7-day and 30-day retentions); recent jobs (the newest
# ids) finished 1 hour to 10 days ago and are all inside their retention.
LOAD_SQL = """
INSERT INTO autopilot.jobs (queue, worker, args, state, attempt, errors, inserted_at,
                            scheduled_at, attempted_at, completed_at, cancelled_at, discarded_at)
SELECT r.queue, r.worker,
       jsonb_build_object('n', r.i, 'path', 'backups/db_' || r.i || '.dump', 'database', 'app'),
       r.state, 1,
       CASE WHEN r.state = 'discarded'
            THEN jsonb_build_array(jsonb_build_object('attempt', 1, 'at', r.ts,
                                                      'error', 'pg_dump: connection refused'))
            ELSE '[]'::jsonb END,
       r.ts, r.ts,
       CASE WHEN r.state <> 'available' THEN r.ts END,
       CASE WHEN r.state = 'completed' THEN r.ts END,
       CASE WHEN r.state = 'cancelled' THEN r.ts END,
       CASE WHEN r.state = 'discarded' THEN r.ts END
FROM (
    SELECT g.i,
           (ARRAY['default', 'backup', 'ingest', 'embed'])[1 + g.i %% 4] AS queue,
           CASE WHEN g.i > %(old)s THEN 'bench.recent'
                WHEN g.i::bigint * %(available)s / %(old)s
                     > (g.i - 1)::bigint * %(available)s / %(old)s THEN 'bench.available'
                ELSE 'bench.expired' END AS worker,
           CASE WHEN g.i > %(old)s THEN
                    (ARRAY['discarded', 'cancelled', 'completed', 'completed', 'completed',
                           'completed', 'completed', 'completed', 'completed', 'completed'])[1 + g.i %% 10]
                WHEN g.i::bigint * %(available)s / %(old)s
                     > (g.i - 1)::bigint * %(available)s / %(old)s THEN 'available'
                WHEN g.i %% 50 = 0 THEN 'cancelled'
                WHEN g.i %% 50 = 1 THEN 'discarded'
                ELSE 'completed' END AS state,
           CASE WHEN g.i > %(old)s THEN
                    now() - CASE g.i %% 10 WHEN 0 THEN interval '10 days'
                                          WHEN 1 THEN interval '2 days'
                                          ELSE interval '1 hour' * (g.i %% 24 + 1) END
                ELSE now() - interval '200 days' + interval '10 seconds' * g.i END AS ts
    FROM generate_series(1, %(total)s) AS g(i)
) AS r
ORDER BY r.i
"""


def load(conn: psycopg.Connection, data: DataSet) -> dict[str, int]:
    """Empty autopilot.jobs and load the data set; returns the row count per kind."""
    old = data.expired + data.available
    conn.execute("TRUNCATE autopilot.jobs RESTART IDENTITY")
    conn.execute(
        LOAD_SQL,
        {"old": old, "available": data.available, "total": old + data.recent},
    )
    conn.execute("VACUUM (ANALYZE) autopilot.jobs")
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")
    return counts_by_kind(conn)


def counts_by_kind(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT worker, count(*) FROM autopilot.jobs GROUP BY worker").fetchall()
    return dict(rows)


# -- the concurrent writer --------------------------------------------------------------------


@dataclass
class Insert:
    start: float
    seconds: float


class Writer(threading.Thread):
    """Inserts one job at a time on its own autocommit connection and times every insert."""

    def __init__(self, dsn: str, interval_s: float) -> None:
        super().__init__(name="writer", daemon=True)
        self.dsn = dsn
        self.interval_s = interval_s
        self.inserts: list[Insert] = []
        self.ids: list[int] = []
        self.error: BaseException | None = None
        self._halt = threading.Event()
        self._ready = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                self._ready.set()
                next_at = time.perf_counter()
                n = 0
                while not self._halt.is_set():
                    n += 1
                    t0 = time.perf_counter()
                    (job_id,) = conn.execute(
                        "INSERT INTO autopilot.jobs (queue, worker, args)"
                        " VALUES ('default', 'bench.writer', jsonb_build_object('n', %s::int))"
                        " RETURNING id",
                        (n,),
                        prepare=True,
                    ).fetchone()
                    t1 = time.perf_counter()
                    self.inserts.append(Insert(t0, t1 - t0))
                    self.ids.append(job_id)
                    if self.interval_s > 0:
                        next_at = max(next_at + self.interval_s, t1)
                        time.sleep(max(0.0, next_at - time.perf_counter()))
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            self._ready.set()

    def start_and_wait(self, warmup_s: float = 0.3) -> None:
        self.start()
        self._ready.wait()
        time.sleep(warmup_s)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        if self.error is not None:
            raise RuntimeError(f"the writer failed: {self.error!r}") from self.error

    def during(self, start: float, end: float) -> list[float]:
        """Latencies (s) of the inserts that overlapped [start, end]."""
        return [i.seconds for i in self.inserts if i.start < end and i.start + i.seconds > start]


@dataclass
class WriterFigures:
    inserts: int
    worst_ms: float
    p99_ms: float
    median_ms: float

    @classmethod
    def of(cls, latencies: list[float]) -> WriterFigures:
        if not latencies:
            return cls(0, float("nan"), float("nan"), float("nan"))
        return cls(
            len(latencies),
            max(latencies) * 1000,
            percentile(latencies, 0.99) * 1000,
            statistics.median(latencies) * 1000,
        )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the two ways of running the cleanup ------------------------------------------------------


@dataclass
class Batch:
    phase: str
    rows: int
    seconds: float


@dataclass
class LoopRun:
    """The procedure's loop reproduced from Python: one batch per transaction, each timed."""

    batches: list[Batch] = field(default_factory=list)
    seconds: float = 0.0
    writer: WriterFigures | None = None

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.batches)

    @property
    def slowest_ms(self) -> float:
        return max(b.seconds for b in self.batches) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile([b.seconds for b in self.batches], 0.99) * 1000

    @property
    def median_ms(self) -> float:
        return statistics.median(b.seconds for b in self.batches) * 1000


def run_loop(dsn: str) -> LoopRun:
    run = LoopRun()
    cursor: dict | None = None
    with psycopg.connect(dsn) as conn:
        started = time.perf_counter()
        while True:
            phase = (cursor or {}).get("phase", "jobs")
            t0 = time.perf_counter()
            done, cursor, rows = conn.execute(
                "SELECT s.done, s.cursor, s.rows_affected FROM autopilot._run_job_step(%s, %s::jsonb) AS s",
                (JOB, Jsonb(cursor) if cursor is not None else None),
            ).fetchone()
            conn.commit()
            run.batches.append(Batch(phase, rows or 0, time.perf_counter() - t0))
            if done:
                break
        run.seconds = time.perf_counter() - started
    return run


@dataclass
class CallRun:
    """The real job: CALL autopilot.run_scheduled_job, timed as a whole; the ledger's figures."""

    seconds: float = 0.0
    rows: int = 0
    batches: int = 0
    status: str = ""
    writer: WriterFigures | None = None


def run_call(dsn: str) -> CallRun:
    run = CallRun()
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("CALL autopilot.run_scheduled_job(%s)", (JOB,))
        run.seconds = time.perf_counter() - t0
        run.status, run.rows, run.batches = conn.execute(
            "SELECT status, rows_affected, (details ->> 'batches')::int FROM autopilot.job_runs"
            " WHERE job_name = %s ORDER BY id DESC LIMIT 1",
            (JOB,),
        ).fetchone()
    return run


def with_writer(dsn: str, interval_s: float, cleanup: Callable[[str], T]) -> tuple[T, Writer, WriterFigures]:
    """Runs cleanup(dsn) while a Writer inserts; the writer's figures cover the cleanup only."""
    writer = Writer(dsn, interval_s)
    writer.start_and_wait()
    start = time.perf_counter()
    try:
        result = cleanup(dsn)
    finally:
        end = time.perf_counter()
        time.sleep(0.1)
        writer.stop()
    return result, writer, WriterFigures.of(writer.during(start, end))


# -- correctness ------------------------------------------------------------------------------


def verify(conn: psycopg.Connection, data: DataSet, writer_ids: list[int], deleted: int) -> None:
    """Exactly the expired rows are gone; the survivors and every writer row are present."""
    counts = counts_by_kind(conn)
    problems = []
    if counts.get("bench.expired", 0):
        problems.append(f"{counts['bench.expired']} expired rows were not deleted")
    for kind, expected in data.expected_survivors().items():
        if counts.get(kind, 0) != expected:
            problems.append(f"{kind}: {counts.get(kind, 0)} rows survive, expected {expected}")
    (present,) = conn.execute(
        "SELECT count(*) FROM autopilot.jobs WHERE worker = 'bench.writer' AND id = ANY(%s)", (writer_ids,)
    ).fetchone()
    if present != len(writer_ids) or counts.get("bench.writer", 0) != len(writer_ids):
        problems.append(f"writer rows: {present} of {len(writer_ids)} present")
    if deleted != data.expired:
        problems.append(f"the job reported {deleted} rows deleted, expected {data.expired}")
    if problems:
        raise CorrectnessError("; ".join(problems))


# -- the report -------------------------------------------------------------------------------


@dataclass
class SizeResult:
    batch_size: int
    loop: LoopRun
    call: CallRun


def print_size(r: SizeResult) -> None:
    lp, cl = r.loop, r.call
    jobs_batches = [b for b in lp.batches if b.phase == "jobs"]
    console.print(
        f"  loop: {lp.rows:,} rows in {len(lp.batches)} batches ({len(jobs_batches)} over jobs), "
        f"{lp.seconds:.2f} s = {lp.rows / lp.seconds:,.0f} rows/s; batch median {lp.median_ms:.1f} ms, "
        f"p99 {lp.p99_ms:.1f} ms, slowest {lp.slowest_ms:.1f} ms"
    )
    console.print(
        f"        writer: {lp.writer.inserts:,} inserts, median {lp.writer.median_ms:.2f} ms, "
        f"p99 {lp.writer.p99_ms:.2f} ms, worst {lp.writer.worst_ms:.2f} ms"
    )
    console.print(
        f"  CALL: {cl.rows:,} rows in {cl.batches} batches, {cl.seconds:.2f} s = "
        f"{cl.rows / cl.seconds:,.0f} rows/s (ledger: {cl.status})"
    )
    console.print(
        f"        writer: {cl.writer.inserts:,} inserts, median {cl.writer.median_ms:.2f} ms, "
        f"p99 {cl.writer.p99_ms:.2f} ms, worst {cl.writer.worst_ms:.2f} ms"
    )


def print_summary(results: list[SizeResult], data: DataSet) -> None:
    table = Table(title=f"old-job-cleanup: {data.expired:,} expired rows, durable cluster")
    for header in (
        "batch size",
        "CALL rows/s",
        "loop rows/s",
        "batch p99 ms",
        "slowest batch ms",
        "writer inserts",
        "writer p99 ms",
        "writer worst ms",
    ):
        table.add_column(header, justify="right")
    for r in results:
        worst = max(r.loop.writer.worst_ms, r.call.writer.worst_ms)
        p99 = max(r.loop.writer.p99_ms, r.call.writer.p99_ms)
        label = f"{r.batch_size} (default)" if r.batch_size == DEFAULT_BATCH_SIZE else str(r.batch_size)
        table.add_row(
            label,
            f"{r.call.rows / r.call.seconds:,.0f}",
            f"{r.loop.rows / r.loop.seconds:,.0f}",
            f"{r.loop.p99_ms:.1f}",
            f"{r.loop.slowest_ms:.1f}",
            f"{r.loop.writer.inserts + r.call.writer.inserts:,}",
            f"{p99:.2f}",
            f"{worst:.2f}",
        )
    console.print(table)


def print_goals(r: SizeResult) -> None:
    rate = r.call.rows / r.call.seconds
    worst = max(r.loop.writer.worst_ms, r.call.writer.worst_ms)
    p99 = max(r.loop.writer.p99_ms, r.call.writer.p99_ms)
    console.print(f"[bold]Goals[/] at batch size {r.batch_size}:")
    console.print(
        f"  {verdict(rate >= GOAL_ROWS_PER_S)} rows/s (CALL, end to end): {rate:,.0f}  "
        f"goal >= {GOAL_ROWS_PER_S:,}"
    )
    console.print(
        f"  {verdict(r.loop.slowest_ms <= GOAL_SLOWEST_BATCH_MS)} slowest batch: "
        f"{r.loop.slowest_ms:.1f} ms  goal <= {GOAL_SLOWEST_BATCH_MS:.0f} ms"
    )
    console.print(
        f"  {verdict(worst <= GOAL_WRITER_WAIT_MS)} writer's worst wait: {worst:.2f} ms "
        f"(p99 {p99:.2f} ms, {r.loop.writer.inserts + r.call.writer.inserts:,} inserts)  "
        f"goal <= {GOAL_WRITER_WAIT_MS:.0f} ms"
    )


# -- main -------------------------------------------------------------------------------------


def bench_size(dsn: str, data: DataSet, batch_size: int, interval_s: float) -> SizeResult:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT autopilot.set_setting('cleanup.batch_size', %s)", (str(batch_size),))

        with console.status(f"batch size {batch_size}: loading"):
            load(conn, data)
        with console.status(f"batch size {batch_size}: per-batch loop"):
            loop, writer, loop.writer = with_writer(dsn, interval_s, run_loop)
        verify(conn, data, writer.ids, loop.rows)

        with console.status(f"batch size {batch_size}: reloading"):
            load(conn, data)
        with console.status(f"batch size {batch_size}: CALL autopilot.run_scheduled_job"):
            call, writer, call.writer = with_writer(dsn, interval_s, run_call)
        if call.status != "succeeded":
            raise CorrectnessError(f"the run ended {call.status}")
        verify(conn, data, writer.ids, call.rows)
    return SizeResult(batch_size, loop, call)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="use this server (a scratch database is created and dropped)")
    p.add_argument("--expired", type=int, default=1_000_000, help="expired rows to delete")
    p.add_argument("--available", type=int, default=100_000, help="unfinished rows that must survive")
    p.add_argument("--recent", type=int, default=50_000, help="recently finished rows that must survive")
    p.add_argument(
        "--batch-sizes",
        default="2000,5000,10000",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated cleanup.batch_size values (default: 2000,5000,10000)",
    )
    p.add_argument(
        "--writer-interval-ms",
        type=float,
        default=1.0,
        help="pause between the writer's inserts; 0 = as fast as it can (default 1)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data = DataSet(args.expired, args.available, args.recent)
    results: list[SizeResult] = []
    with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
        create_autopilot(dsn, console)
        console.print(
            f"data: {data.expired:,} expired + {data.available:,} available + {data.recent:,} recent jobs; "
            f"writer every {args.writer_interval_ms:g} ms"
        )
        try:
            for size in args.batch_sizes:
                console.print(f"[bold]cleanup.batch_size = {size}[/]")
                results.append(bench_size(dsn, data, size, args.writer_interval_ms / 1000))
                print_size(results[-1])
        except CorrectnessError as exc:
            console.print(f"[bold red]CORRECTNESS FAILURE[/]: {exc}")
            return 1
    print_summary(results, data)
    default = next((r for r in results if r.batch_size == DEFAULT_BATCH_SIZE), results[-1])
    print_goals(default)
    return 0


if __name__ == "__main__":
    sys.exit(main())
