"""The peers' half of bench/queue_throughput.py: procrastinate and pgqueuer, each on its own scratch database.

Run by bench/queue_throughput.py with the interpreter of ``.venv-bench`` (where the peers are installed; the
project's own ``.venv`` never gets them), one process per peer, phase and configuration; prints one JSON
object on stdout and nothing else there. Each peer's schema is applied with its own API the first time
(procrastinate: ``app.schema_manager.apply_schema_async()``; pgqueuer: ``Queries.install()``), and its
tables are emptied before every phase. Every job is a no-op; the task counts its executions in the
process, so a job lost or run twice is reported (``lost``, ``twice``).

Phases, in this order (``--phases``):

* ``enqueue``: ``--jobs`` jobs with the peer's batch API in chunks of ``--batch`` (procrastinate
  ``task.batch_defer_async(*kwargs)``, pgqueuer ``Queries.enqueue([...], [...], [...])``), timed;
  then emptied and ``--single`` jobs (if not 0) one at a time (``task.defer_async()``; ``Queries.enqueue(name,
  None)``), each its own autocommit transaction, timed.
* ``drain``: ``--jobs`` jobs batch-enqueued (not timed), then the peer's worker, in the configuration
  given, drains them and returns when the queue is empty; timed from that call to its return.
  procrastinate: ``app.run_worker_async(concurrency=--concurrency, wait=False)`` (each of its
  ``concurrency`` sub-workers fetches one job at a time). pgqueuer: ``QueueManager.run(mode=drain,
  batch_size=--batch-size)``, ``batch_size`` jobs claimed per dequeue, each dispatched at once as an
  asyncio task; ``--concurrency`` is the entrypoint's ``concurrency_limit`` (jobs of it picked at
  once, enforced in its dequeue query; 0, its default, is no limit). ``QueueManager.run``'s
  ``max_concurrent_tasks`` is not used: it must be at least twice the batch size, so it cannot say
  "one at a time".
* ``latency``: the worker running idle (procrastinate ``wait=True``, concurrency 10; pgqueuer
  ``mode=continuous``, batch size 10), ``--samples`` jobs are enqueued one by one with random gaps;
  each start is the task's first ``time.time()``, compared with the ``time.time()`` just before its
  enqueue call. pgqueuer's psycopg driver LISTENs on the connection it queries with; here it gets a
  connection of its own to listen on (``SplitPsycopgDriver``), as our runner has.

Run:  .venv-bench/bin/python bench/queue_peers.py pgqueuer --dsn DSN --phases drain --batch-size 100
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import random
import sys
import time
from importlib import metadata
from typing import Any

import psycopg

QUEUE = "default"


class Executions:
    """What the no-op task saw: how often each job ran, and when the probes started."""

    def __init__(self) -> None:
        self.count: collections.Counter = collections.Counter()
        self.starts: dict[int, float] = {}

    def reset(self) -> None:
        self.count.clear()
        self.starts.clear()

    def check(self, expected: int) -> dict[str, int]:
        twice = sum(1 for n in self.count.values() if n > 1)
        return {"executed": len(self.count), "lost": max(0, expected - len(self.count)), "twice": twice}


EXECUTIONS = Executions()


def chunks(n: int, size: int) -> list[int]:
    return [min(size, n - i) for i in range(0, n, size)]


async def latency_probe(enqueue: Any, samples: int, gap_ms: tuple[float, float]) -> list[float]:
    """Enqueue ``samples`` probes one by one (``await enqueue(probe)``); ms from enqueue to start."""
    sent: dict[int, float] = {}
    rng = random.Random(4)
    for probe in range(samples):
        await asyncio.sleep(rng.uniform(*gap_ms) / 1000)
        sent[probe] = time.time()
        await enqueue(probe)
    deadline = time.monotonic() + 30
    while len(EXECUTIONS.starts) < samples and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return [(EXECUTIONS.starts[p] - sent[p]) * 1000 for p in sorted(EXECUTIONS.starts) if p in sent]


# -- procrastinate ----------------------------------------------------------------------------


async def run_procrastinate(args: argparse.Namespace) -> dict[str, Any]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=args.dsn))

    @app.task(name="noop", queue=QUEUE, pass_context=True)
    async def noop(context: procrastinate.JobContext, probe: int | None = None) -> None:
        if probe is not None:
            EXECUTIONS.starts.setdefault(probe, time.time())
        EXECUTIONS.count[context.job.id] += 1

    result: dict[str, Any] = {"peer": "procrastinate", "version": metadata.version("procrastinate")}

    async with await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as admin:

        async def empty() -> None:
            await admin.execute("TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE")
            EXECUTIONS.reset()

        async def left() -> int:
            cur = await admin.execute("SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'")
            return (await cur.fetchone())[0]

        async with app.open_async():
            cur = await admin.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            if not (await cur.fetchone())[0]:
                await app.schema_manager.apply_schema_async()

            async def enqueue_batched(n: int) -> None:
                for size in chunks(n, args.batch):
                    await noop.batch_defer_async(*([{}] * size))

            if "enqueue" in args.phases:
                await empty()
                t0 = time.perf_counter()
                await enqueue_batched(args.jobs)
                result["enqueue_batched_s"] = time.perf_counter() - t0
                if args.single:
                    await empty()
                    t0 = time.perf_counter()
                    for _ in range(args.single):
                        await noop.defer_async()
                    result["enqueue_single_s"] = time.perf_counter() - t0

            if "drain" in args.phases:
                await empty()
                await enqueue_batched(args.jobs)
                t0 = time.perf_counter()
                await app.run_worker_async(
                    queues=[QUEUE], concurrency=args.concurrency, wait=False, install_signal_handlers=False
                )
                seconds = time.perf_counter() - t0
                result["drain"] = {
                    "config": {"concurrency": args.concurrency},
                    "seconds": seconds,
                    "left": await left(),
                    **EXECUTIONS.check(args.jobs),
                }

            if "latency" in args.phases:
                await empty()
                worker = asyncio.create_task(
                    app.run_worker_async(
                        queues=[QUEUE], concurrency=10, wait=True, install_signal_handlers=False
                    )
                )
                await asyncio.sleep(1.0)  # listening, idle

                async def enqueue(probe: int) -> None:
                    await noop.defer_async(probe=probe)

                result["latency_ms"] = await latency_probe(enqueue, args.samples, args.gap_ms)
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
    return result


# -- pgqueuer ---------------------------------------------------------------------------------


def split_driver_class() -> type:
    """PsycopgDriver that LISTENs on a connection of its own and queries on the other."""
    from pgqueuer.db import PsycopgDriver

    class SplitPsycopgDriver(PsycopgDriver):
        def __init__(self, connection: psycopg.AsyncConnection, listen: psycopg.AsyncConnection) -> None:
            super().__init__(connection)
            self._listen_driver = PsycopgDriver(listen)

        async def add_listener(self, channel: str, callback: Any) -> None:
            await self._listen_driver.add_listener(channel, callback)

        async def remove_listener(self, channel: str, callback: Any) -> None:
            await self._listen_driver.remove_listener(channel, callback)

        async def __aenter__(self) -> SplitPsycopgDriver:
            await self._listen_driver.__aenter__()
            return await super().__aenter__()

        async def __aexit__(self, *exc: object) -> None:
            await super().__aexit__(*exc)
            await self._listen_driver.__aexit__(*exc)

    return SplitPsycopgDriver


async def run_pgqueuer(args: argparse.Namespace) -> dict[str, Any]:
    from pgqueuer import Queries, QueueManager
    from pgqueuer.db import PsycopgDriver
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    result: dict[str, Any] = {"peer": "pgqueuer", "version": metadata.version("pgqueuer")}
    split = split_driver_class()

    async def noop(job: Job) -> None:
        if job.payload:
            EXECUTIONS.starts.setdefault(int(job.payload), time.time())
        EXECUTIONS.count[job.id] += 1

    def manager(driver: Any, concurrency_limit: int = 0) -> QueueManager:
        qm = QueueManager(Queries(driver))
        qm.entrypoint("noop", concurrency_limit=concurrency_limit)(noop)
        return qm

    async with (
        await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as admin,
        await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as producer,
    ):
        queries = Queries(PsycopgDriver(producer))

        async def empty() -> None:
            await admin.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY")
            EXECUTIONS.reset()

        async def left() -> int:
            cur = await admin.execute("SELECT count(*) FROM pgqueuer")
            return (await cur.fetchone())[0]

        cur = await admin.execute("SELECT to_regclass('pgqueuer') IS NOT NULL")
        if not (await cur.fetchone())[0]:
            await queries.install()

        async def enqueue_batched(n: int) -> None:
            for size in chunks(n, args.batch):
                await queries.enqueue(["noop"] * size, [None] * size, [0] * size)

        if "enqueue" in args.phases:
            await empty()
            t0 = time.perf_counter()
            await enqueue_batched(args.jobs)
            result["enqueue_batched_s"] = time.perf_counter() - t0
            if args.single:
                await empty()
                t0 = time.perf_counter()
                for _ in range(args.single):
                    await queries.enqueue("noop", None)
                result["enqueue_single_s"] = time.perf_counter() - t0

        if "drain" in args.phases:
            await empty()
            await enqueue_batched(args.jobs)
            async with (
                await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn,
                await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as listen,
            ):
                qm = manager(split(conn, listen), concurrency_limit=args.concurrency)
                t0 = time.perf_counter()
                await qm.run(mode=QueueExecutionMode.drain, batch_size=args.batch_size)
                seconds = time.perf_counter() - t0
            result["drain"] = {
                "config": {"batch_size": args.batch_size, "concurrency": args.concurrency},
                "seconds": seconds,
                "left": await left(),
                **EXECUTIONS.check(args.jobs),
            }

        if "latency" in args.phases:
            await empty()
            async with (
                await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as conn,
                await psycopg.AsyncConnection.connect(args.dsn, autocommit=True) as listen,
            ):
                qm = manager(split(conn, listen))
                worker = asyncio.create_task(qm.run(mode=QueueExecutionMode.continuous, batch_size=10))
                await asyncio.sleep(1.0)  # listening, idle

                async def enqueue(probe: int) -> None:
                    await queries.enqueue("noop", str(probe).encode())

                result["latency_ms"] = await latency_probe(enqueue, args.samples, args.gap_ms)
                qm.shutdown.set()
                try:
                    await asyncio.wait_for(worker, 10)
                except (TimeoutError, asyncio.CancelledError, Exception):
                    worker.cancel()
    return result


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("peer", choices=["procrastinate", "pgqueuer"])
    p.add_argument("--dsn", required=True)
    p.add_argument("--jobs", type=int, default=20_000, help="jobs per batched enqueue and per drain")
    p.add_argument("--single", type=int, help="jobs enqueued one at a time (default: --jobs)")
    p.add_argument("--batch", type=int, default=5_000, help="jobs per batched enqueue call")
    p.add_argument(
        "--concurrency",
        type=int,
        default=10,
        help="drain: procrastinate's worker concurrency; pgqueuer's entrypoint concurrency_limit (0: none)",
    )
    p.add_argument("--batch-size", type=int, default=10, help="drain: pgqueuer's batch_size")
    p.add_argument("--phases", default="enqueue,drain,latency", type=lambda s: set(s.split(",")))
    p.add_argument("--samples", type=int, default=200, help="latency probes")
    p.add_argument(
        "--gap-ms", default="10,40", type=lambda s: tuple(float(x) for x in s.split(",")), help="min,max"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.single is None:
        args.single = args.jobs
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    runner = run_procrastinate if args.peer == "procrastinate" else run_pgqueuer
    result = asyncio.run(runner(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
