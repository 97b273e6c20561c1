"""The runner: drains autopilot.jobs with ``concurrency`` slot threads.

The main loop claims due jobs (``autopilot.claim``, SKIP LOCKED) for the free slots of each queue plus
a few ahead (more when jobs are quick), and claims again when half of them have been taken; each slot
thread takes the next claimed job and runs its worker. A completer thread records completions in
batches (``complete_many``); the main loop records failures one by one (``fail``: retried with
backoff, or discarded). A listener connection waits on ``NOTIFY autopilot_jobs`` so an idle runner
starts a new job at once; polling every ``poll_interval`` seconds is the fallback (and finds jobs
scheduled for later). A heartbeat thread keeps every job the runner holds (``heartbeat``); a job the
database no longer gives this node (cancelled, or rescued after the node looked dead) is flagged to its
worker and its outcome is not recorded.

Stopping (SIGTERM, SIGINT, :meth:`Runner.stop`): no more claims; jobs claimed but not started are
given back (``release``); running jobs get ``grace`` seconds to finish and are recorded; what still
runs after that is left executing, and rescue-orphaned-jobs takes it back once its heartbeats have
stopped. A job is never marked done unless it finished.
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
    # jobs claimed ahead of the free slots, so that one round trip feeds many jobs (given back with
    # autopilot.release when the runner stops): at least prefetch, and, when jobs are quick, as many
    # as keep the slots busy for about 50 ms, up to max_prefetch
    prefetch: int = 10
    max_prefetch: int = 200
    # completions are recorded by a thread of their own, in batches of at most this many
    complete_batch: int = 500


@dataclass
class _Running:
    job: dict
    worker: Worker | None
    context: JobContext
    started: float
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
        self._to_complete: queue_module.Queue[_Outcome] = queue_module.Queue()
        self._completing: set[int] = set()  # finished, completion not recorded yet
        self._completer_done = threading.Event()
        self._mean_duration: float | None = None  # seconds, moving average of successful jobs
        self._last_claim = 0
        self._lost: set[int] = set()  # claimed jobs the database no longer gives this node
        self._lock = threading.Lock()
        self._claimed = threading.Condition(self._lock)  # slots wait on it for claimed jobs
        self._pool: ConnectionPool | None = None
        self._slots: list[threading.Thread] = []
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
        self._slots = [
            threading.Thread(target=self._slot, name=f"autopilot-slot-{n}", daemon=True)
            for n in range(config.concurrency)
        ]
        listener = threading.Thread(target=self._listen, name="autopilot-listener", daemon=True)
        heart = threading.Thread(target=self._heartbeats, name="autopilot-heartbeat", daemon=True)
        completer = threading.Thread(target=self._completions, name="autopilot-completer", daemon=True)
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
            completer.start()
            for slot in self._slots:
                slot.start()
            if config.enqueue_startup_jobs:
                self._enqueue_startup_jobs()
            self._loop()
            self._drain()
        finally:
            self._completer_done.set()
            if completer.is_alive():
                completer.join(timeout=30)
            self._done.set()
            if heart.is_alive():
                heart.join(timeout=10)
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
        """Record failures, expire overrunning jobs, claim ahead when the claimed jobs run low (the slot
        threads take them from there), then sleep until woken (a slot running low or failing, a NOTIFY,
        the poll interval)."""
        config = self.config
        self._record_outcomes()
        self._expire_timeouts()
        claimed = 0
        with self._lock:
            low = len(self._pending) <= self._last_claim // 2
        if low:
            for queue in config.queues:
                with self._lock:
                    want = self._free_slots() + self._extra() - len(self._pending)
                if want <= 0 or self._stopping.is_set():
                    break
                claimed += self._claim(queue, want)
            self._last_claim = claimed or self._last_claim
        if claimed and self._free_slots() > 0:
            return  # there may be more: claim again before sleeping
        self._wake.wait(config.poll_interval)
        self._wake.clear()

    def _extra(self) -> int:
        """How many jobs to claim beyond the free slots."""
        config = self.config
        if self._mean_duration is None:
            return config.prefetch
        keep_busy = int(config.concurrency * 0.05 / max(self._mean_duration, 1e-6))
        return max(config.prefetch, min(config.max_prefetch, keep_busy))

    def _free_slots(self) -> int:
        return self.config.concurrency - len(self._running)

    def _claim(self, queue: str, limit: int) -> int:
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            jobs = cur.execute(
                "SELECT * FROM autopilot.claim(%s, %s, %s)", [queue, self.config.node, limit]
            ).fetchall()
        if jobs:
            with self._claimed:
                self._pending.extend(jobs)
                self._claimed.notify_all()
        return len(jobs)

    def _slot(self) -> None:
        """One of ``concurrency`` slot threads: takes the next claimed job and runs it, until the runner
        stops. Successes go straight to the completer; failures to the main loop."""
        while True:
            with self._claimed:
                while not self._pending and not self._stopping.is_set():
                    self._claimed.wait(0.5)
                if self._stopping.is_set():
                    return  # what is still claimed is given back by _drain
                job = self._pending.popleft()
                if job["id"] in self._lost:  # cancelled while waiting for a slot: never started
                    self._lost.discard(job["id"])
                    continue
                running = self._begin(job)
                low = len(self._pending) <= self._last_claim // 2
            if low:
                self._wake.set()  # the main loop claims more
            self._run(running)

    def _begin(self, job: dict) -> _Running:
        """Registers a job as running (the caller holds the lock)."""
        worker = self.workers.get(job["worker"])
        context = JobContext(
            job_id=job["id"],
            attempt=job["attempt"],
            queue=job["queue"],
            node=self.config.node,
            dsn=self.dsn,
            deadline=time.monotonic() + (worker.timeout if worker else 0.0),
        )
        running = _Running(job, worker, context, time.monotonic())
        self._running[job["id"]] = running
        return running

    def _run(self, running: _Running) -> None:
        if running.worker is None:
            known = ", ".join(sorted(self.workers)) or "none"
            error = f"no worker named {running.job['worker']!r} in this runner (it has: {known})"
            self._outcomes.put(_Outcome(running, error=error, discard=True))
            self._wake.set()
            return
        try:
            result = running.worker.function(running.job["args"], running.context)
        except BaseException as exc:  # a worker's failure is the job's, never the runner's
            _log(
                logging.DEBUG,
                "worker traceback",
                job_id=running.job["id"],
                traceback="".join(traceback.format_exception(exc)),
            )
            self._outcomes.put(_Outcome(running, error=f"{type(exc).__name__}: {exc}".strip()))
            self._wake.set()
            return
        job_id = running.job["id"]
        with self._lock:
            self._running.pop(job_id, None)
            if running.lost:  # timed out, cancelled or rescued: its outcome is not ours to record
                self._lost.discard(job_id)
                return
            self._completing.add(job_id)
        duration = time.monotonic() - running.started
        mean = self._mean_duration
        self._mean_duration = duration if mean is None else 0.9 * mean + 0.1 * duration
        self._to_complete.put(_Outcome(running, result=result))

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

    def _record_outcomes(self) -> None:
        """Failures (and unknown workers), which the main loop records one by one."""
        while True:
            try:
                outcome = self._outcomes.get_nowait()
            except queue_module.Empty:
                break
            job_id = outcome.running.job["id"]
            if outcome.running.lost:  # timed out, cancelled or rescued: its outcome is not ours to record
                with self._lock:
                    self._running.pop(job_id, None)
                    self._lost.discard(job_id)
                continue
            self._finish_failed(outcome)

    def _completions(self) -> None:
        """The completer thread: records completions in batches (complete_many), off the main loop, so
        that claiming and starting jobs never waits for it. Keeps a batch until it is recorded."""
        batch: list[_Outcome] = []
        while True:
            if not batch:
                try:
                    batch.append(self._to_complete.get(timeout=0.1))
                except queue_module.Empty:
                    if self._completer_done.is_set():
                        return
                    continue
            while len(batch) < self.config.complete_batch:
                try:
                    batch.append(self._to_complete.get_nowait())
                except queue_module.Empty:
                    break
            try:
                self._finish_succeeded(batch)
            except psycopg.Error as exc:
                _log(logging.ERROR, "could not record completions; retrying", error=str(exc).strip())
                self._done.wait(1.0)
                continue
            with self._lock:
                self._completing.difference_update(o.running.job["id"] for o in batch)
            batch = []

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
        self._record_outcomes()
        if self._running:
            _log(
                logging.WARNING,
                "left running at shutdown; rescue-orphaned-jobs takes them back",
                job_ids=sorted(self._running),
                grace_s=self.config.grace,
            )

    def _release_pending(self) -> None:
        with self._lock:
            jobs = list(self._pending)
            self._pending.clear()
        if not jobs:
            return
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
            with self._lock:
                ids += [job["id"] for job in self._pending]
                ids += list(self._completing)
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
