"""The runner: drains autopilot.jobs with a pool of worker threads.

One loop claims due jobs (``autopilot.claim``, SKIP LOCKED) for the free slots of each queue and hands
them to threads; finished jobs are completed in batches (``complete_many``), failures recorded one by
one (``fail``: retried with backoff, or discarded). A listener connection waits on
``NOTIFY autopilot_jobs`` so an idle runner starts a new job at once; polling every
``poll_interval`` seconds is the fallback (and finds jobs scheduled for later). A heartbeat thread
keeps the executing jobs (``heartbeat``); a job the database no longer gives this node (cancelled, or
rescued after the node looked dead) is flagged to its worker and its outcome is not recorded.

Stopping (SIGTERM, SIGINT, :meth:`Runner.stop`): no more claims; running jobs get ``grace`` seconds
to finish and are recorded; what still runs after that is left executing, and rescue-orphaned-jobs
takes it back once its heartbeats have stopped. A job is never marked done unless it finished.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue as queue_module
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from . import sqlfiles
from .db import APPLICATION_NAME, resolve_dsn
from .workers import CACHES, REGISTRY, JobContext, Worker

CACHES.append(sqlfiles.bundle)

log = logging.getLogger("autopilot.runner")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, event, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        return json.dumps(entry, default=str)


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


def _log(level: int, event: str, **fields: Any) -> None:
    log.log(level, event, extra={"fields": fields})


@dataclass
class RunnerConfig:
    dsn: str | None = None
    queues: tuple[str, ...] = ("default", "backups")
    concurrency: int = 10
    node: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    poll_interval: float = 1.0
    heartbeat_interval: float = 5.0
    grace: float = 30.0
    enqueue_startup_jobs: bool = True
    # jobs claimed ahead of the free slots, so that one round trip feeds many jobs; given back
    # (autopilot.release) when the runner stops
    prefetch: int = 10
    # completions are recorded in batches: at most this many, or after this many seconds
    complete_batch: int = 200
    complete_delay: float = 0.01


@dataclass
class _Running:
    job: dict
    worker: Worker | None
    context: JobContext
    started: float
    future: Future | None = None
    lost: bool = False  # the database no longer gives this job to this node


@dataclass
class _Outcome:
    running: _Running
    error: str | None = None  # None: succeeded
    discard: bool = False
    result: Any = None


class Runner:
    def __init__(self, config: RunnerConfig, workers: dict[str, Worker] | None = None):
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config = config
        self.workers = dict(REGISTRY if workers is None else workers)
        self.dsn = resolve_dsn(config.dsn)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._outcomes: queue_module.Queue[_Outcome] = queue_module.Queue()
        self._running: dict[int, _Running] = {}
        self._pending: collections.deque[dict] = collections.deque()  # claimed, not started
        self._succeeded: list[_Outcome] = []  # finished, completion not recorded yet
        self._succeeded_since = 0.0
        self._lost: set[int] = set()  # claimed jobs the database no longer gives this node
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.stats = {"completed": 0, "failed": 0, "discarded": 0, "lost": 0}

    # -- public ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; run() lets running jobs finish within the grace period, then returns."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        config = self.config
        self._pool = ConnectionPool(
            self.dsn,
            min_size=2,
            max_size=4,
            kwargs={"autocommit": True, "application_name": f"{APPLICATION_NAME} runner"},
            open=True,
            name="autopilot-runner",
        )
        self._executor = ThreadPoolExecutor(config.concurrency, thread_name_prefix="autopilot-worker")
        listener = threading.Thread(target=self._listen, name="autopilot-listener", daemon=True)
        heart = threading.Thread(target=self._heartbeats, name="autopilot-heartbeat", daemon=True)
        try:
            self._pool.wait(timeout=30)
            _log(
                logging.INFO,
                "runner started",
                node=config.node,
                queues=list(config.queues),
                concurrency=config.concurrency,
                workers=sorted(self.workers),
            )
            listener.start()
            heart.start()
            if config.enqueue_startup_jobs:
                self._enqueue_startup_jobs()
            self._loop()
            self._drain()
        finally:
            self._done.set()
            if heart.is_alive():
                heart.join(timeout=10)
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._pool.close()
            _log(logging.INFO, "runner stopped", node=config.node, **self.stats)

    # -- the loop ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._iterate()
            except psycopg.OperationalError as exc:
                # the database went away (restart, network): keep the outcomes, try again
                _log(logging.ERROR, "database unavailable; retrying", error=str(exc).strip())
                self._stopping.wait(max(self.config.poll_interval, 1.0))

    def _iterate(self) -> None:
        """Record what finished, start what fits, claim when nothing waits, then sleep until woken."""
        config = self.config
        self._record_outcomes()
        self._expire_timeouts()
        self._fill_slots()
        claimed = 0
        if not self._pending and self._free_slots() > 0:
            for queue in config.queues:
                want = self._free_slots() + config.prefetch - len(self._pending)
                if want <= 0 or self._stopping.is_set():
                    break
                claimed += self._claim(queue, want)
            self._fill_slots()
        if claimed or (self._pending and self._free_slots() > 0):
            return  # there may be more: claim again before sleeping
        timeout = config.poll_interval
        if self._succeeded:  # wake up in time to record the completions waiting for their batch
            flush_at = self._succeeded_since + config.complete_delay
            timeout = min(timeout, max(0.0, flush_at - time.monotonic()))
        self._wake.wait(timeout)
        self._wake.clear()

    def _free_slots(self) -> int:
        return self.config.concurrency - len(self._running)

    def _fill_slots(self) -> None:
        while self._pending and self._free_slots() > 0 and not self._stopping.is_set():
            job = self._pending.popleft()
            if job["id"] in self._lost:  # cancelled while waiting for a slot: never started
                self._lost.discard(job["id"])
                continue
            self._start(job)

    def _claim(self, queue: str, limit: int) -> int:
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            jobs = cur.execute(
                "SELECT * FROM autopilot.claim(%s, %s, %s)", [queue, self.config.node, limit]
            ).fetchall()
        self._pending.extend(jobs)
        return len(jobs)

    def _start(self, job: dict) -> None:
        worker = self.workers.get(job["worker"])
        timeout = worker.timeout if worker else 0.0
        context = JobContext(
            job_id=job["id"],
            attempt=job["attempt"],
            queue=job["queue"],
            node=self.config.node,
            dsn=self.dsn,
            deadline=time.monotonic() + timeout,
        )
        running = _Running(job, worker, context, time.monotonic())
        with self._lock:
            self._running[job["id"]] = running
        if worker is None:
            known = ", ".join(sorted(self.workers)) or "none"
            self._outcomes.put(
                _Outcome(
                    running,
                    error=f"no worker named {job['worker']!r} in this runner (it has: {known})",
                    discard=True,
                )
            )
            return
        running.future = self._executor.submit(self._execute, running)

    def _execute(self, running: _Running) -> None:
        try:
            result = running.worker.function(running.job["args"], running.context)
            self._outcomes.put(_Outcome(running, result=result))
        except BaseException as exc:  # a worker's failure is the job's, never the runner's
            error = f"{type(exc).__name__}: {exc}".strip()
            _log(
                logging.DEBUG,
                "worker traceback",
                job_id=running.job["id"],
                traceback="".join(traceback.format_exception(exc)),
            )
            self._outcomes.put(_Outcome(running, error=error))
        finally:
            self._wake.set()

    def _expire_timeouts(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [r for r in self._running.values() if r.worker and now > r.context.deadline and not r.lost]
        for running in late:
            # the thread cannot be killed: the attempt fails now, and whatever it returns later is ignored
            running.context.cancelled.set()
            running.lost = True
            self._finish_failed(
                _Outcome(running, error=f"timed out after {running.worker.timeout:g} s (worker timeout)")
            )

    def _record_outcomes(self, flush: bool = False) -> None:
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue_module.Empty:
                break
            running = outcome.running
            if running.lost:  # timed out, cancelled or rescued: its outcome is not ours to record
                with self._lock:
                    self._running.pop(running.job["id"], None)
                self._lost.discard(running.job["id"])
                continue
            if outcome.error is None:
                if not self._succeeded:
                    self._succeeded_since = time.monotonic()
                self._succeeded.append(outcome)
                with self._lock:  # the slot is free; the job stays executing in the table until recorded
                    self._running.pop(running.job["id"], None)
            else:
                self._finish_failed(outcome)
        idle = not self._running and not self._pending
        due = time.monotonic() >= self._succeeded_since + self.config.complete_delay
        if self._succeeded and (flush or idle or due or len(self._succeeded) >= self.config.complete_batch):
            self._finish_succeeded(self._succeeded)  # raises if the database is away: kept for later
            self._succeeded = []

    def _finish_succeeded(self, outcomes: list[_Outcome]) -> None:
        ids = [o.running.job["id"] for o in outcomes]
        attempts = [o.running.job["attempt"] for o in outcomes]
        with self._pool.connection() as conn:
            conn.execute("SELECT autopilot.complete_many(%s, %s)", [ids, attempts])
        now = time.monotonic()
        for o in outcomes:
            self.stats["completed"] += 1
            _log(
                logging.INFO,
                "job completed",
                job_id=o.running.job["id"],
                worker=o.running.job["worker"],
                queue=o.running.job["queue"],
                attempt=o.running.job["attempt"],
                duration_ms=round((now - o.running.started) * 1000, 1),
                result=None if o.result is None else str(o.result)[:500],
            )

    def _finish_failed(self, outcome: _Outcome) -> None:
        job = outcome.running.job
        with self._pool.connection() as conn:
            state = conn.execute(
                "SELECT autopilot.fail(%s, %s, %s, %s)",
                [job["id"], job["attempt"], outcome.error, outcome.discard],
            ).fetchone()[0]
        with self._lock:
            self._running.pop(job["id"], None)
        self.stats["discarded" if state == "discarded" else "failed"] += 1
        _log(
            logging.WARNING if state != "discarded" else logging.ERROR,
            "job failed",
            job_id=job["id"],
            worker=job["worker"],
            queue=job["queue"],
            attempt=job["attempt"],
            max_attempts=job["max_attempts"],
            state=state,
            error=outcome.error,
            duration_ms=round((time.monotonic() - outcome.running.started) * 1000, 1),
        )

    def _drain(self) -> None:
        """After a stop: give back the jobs not started, wait up to ``grace`` seconds for the running
        ones, recording each outcome."""
        self._release_pending()
        deadline = time.monotonic() + self.config.grace
        while self._running and time.monotonic() < deadline:
            self._record_outcomes()
            self._expire_timeouts()
            if self._running:
                self._wake.wait(0.05)
                self._wake.clear()
        self._record_outcomes(flush=True)
        if self._running:
            _log(
                logging.WARNING,
                "left running at shutdown; rescue-orphaned-jobs takes them back",
                job_ids=sorted(self._running),
                grace_s=self.config.grace,
            )

    def _release_pending(self) -> None:
        if not self._pending:
            return
        jobs, self._pending = list(self._pending), collections.deque()
        with self._pool.connection() as conn:
            released = conn.execute(
                "SELECT autopilot.release(%s, %s)", [[j["id"] for j in jobs], [j["attempt"] for j in jobs]]
            ).fetchone()[0]
        _log(logging.INFO, "released jobs claimed but not started", count=released)

    # -- threads -----------------------------------------------------------------------------------

    def _listen(self) -> None:
        """LISTEN on a connection of its own (never the one claims use), waking the loop."""
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    self.dsn, autocommit=True, application_name=f"{APPLICATION_NAME} runner"
                ) as conn:
                    conn.execute("LISTEN autopilot_jobs")
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            if notify.payload in self.config.queues:
                                self._wake.set()
            except psycopg.Error as exc:
                _log(logging.WARNING, "listener lost its connection; polling meanwhile", error=str(exc))
                self._stopping.wait(self.config.poll_interval)

    def _heartbeats(self) -> None:
        """Every heartbeat_interval until run() is over (the grace period included)."""
        while not self._done.wait(self.config.heartbeat_interval):
            with self._lock:
                ids = [job_id for job_id, r in self._running.items() if not r.lost]
            # claimed but not started, finished but not recorded: executing in the table too
            ids += [job["id"] for job in list(self._pending)]
            ids += [o.running.job["id"] for o in list(self._succeeded)]
            if not ids:
                continue
            try:
                with self._pool.connection() as conn:
                    kept = {
                        row[0]
                        for row in conn.execute(
                            "SELECT autopilot.heartbeat(%s, %s)", [ids, self.config.node]
                        ).fetchall()
                    }
            except Exception as exc:  # the next beat tries again; rescue is the backstop
                _log(logging.WARNING, "heartbeat failed", error=str(exc))
                continue
            for job_id in set(ids) - kept:
                self._lost.add(job_id)
                with self._lock:
                    running = self._running.get(job_id)
                if running and not running.lost:
                    running.lost = True
                    running.context.cancelled.set()
                    self.stats["lost"] += 1
                    _log(
                        logging.WARNING,
                        "job is no longer this runner's (cancelled or rescued): its outcome is not recorded",
                        job_id=job_id,
                        worker=running.job["worker"],
                    )

    def _enqueue_startup_jobs(self) -> None:
        """The catalog's startup jobs for the workers this runner has. The unique key is the one pg_cron's
        enqueues use (catalog:<name>), so a job already pending is not added twice."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT d.name, autopilot.enqueue(d.target, d.args, d.queue,"
                " p_unique_key => 'catalog:' || d.name, p_meta => jsonb_build_object('catalog', d.name))"
                " FROM autopilot.job_definitions AS d"
                " WHERE d.side = 'runner' AND d.run_at_startup AND d.target = ANY(%s) ORDER BY d.name",
                [sorted(self.workers)],
            ).fetchall()
        for name, job_id in rows:
            _log(logging.INFO, "startup job", job=name, job_id=job_id)
