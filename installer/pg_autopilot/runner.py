"""The runner: drains autopilot.jobs with ``concurrency`` slot threads.

The main loop claims due jobs (``autopilot.claim``, SKIP LOCKED) for the free slot threads plus a few
ahead (more when jobs are quick, none when they are slow), and claims again when half of them have been
taken or a slot is left with nothing; every queue gets a share of each round, the first share going to
each queue in turn, so that a backlog in one queue never starves another. Each slot thread takes the
next claimed job, in the order claim() returned them (priority first), and runs its worker. A completer
thread records completions in batches (``complete_many``); the main loop records failures one by one
(``fail``: retried with backoff, or discarded). An outcome is kept until the database has it: one that
cannot be recorded (the database restarting, a failover) is tried again. A listener connection waits on
``NOTIFY autopilot_jobs`` so an idle runner starts a new job at once; polling every ``poll_interval``
seconds is the fallback (and finds jobs scheduled for later). A heartbeat thread keeps every job attempt
the runner holds (``heartbeat``, by job id and attempt); an attempt the database no longer gives this
node (cancelled, or rescued after the node looked dead, perhaps claimed again since) is flagged to its
worker and its outcome is not recorded.

All the runner's state is per attempt, (job id, attempt), and whoever decides an attempt's fate -- its
worker finishing, its timeout, the heartbeat finding it gone -- decides it under one lock, once.
A worker past its timeout cannot be killed: its attempt fails, and its slot thread counts as busy
until the worker returns; when every slot thread is stuck that way, the runner claims nothing and
gives back what it had claimed ahead.

Stopping (SIGTERM, SIGINT, :meth:`Runner.stop`): no more claims; jobs claimed but not started are
given back (``release``); running jobs get ``grace`` seconds to finish and are recorded; what still
runs after that is left executing, and rescue-orphaned-jobs takes it back once its heartbeats have
stopped. A job is never marked done unless it finished.
"""

from __future__ import annotations

import collections
import logging
import os
import queue as queue_module
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pythonjsonlogger.core
import pythonjsonlogger.json
from psycopg_pool import ConnectionPool

from . import sqlfiles
from .db import APPLICATION_NAME, connect, conninfo, resolve_dsn
from .queue import Job, Key, QueueClient, backoff, claim_ahead, claim_round, latest_attempts, superseded
from .workers import CACHES, REGISTRY, JobContext, Worker

CACHES.append(sqlfiles.bundle)

log = logging.getLogger("autopilot.runner")


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object per line for every record, whichever logger wrote it (psycopg_pool's and
    psycopg's too): ts, level, event, logger, the record's per-call fields (``_log``) or extras, and an
    exception's traceback as one string field, ``traceback`` (JSON escapes its line breaks)."""

    def __init__(self) -> None:
        super().__init__(
            json_default=str,
            reserved_attrs=[*pythonjsonlogger.core.RESERVED_ATTRS, "fields"],
            rename_fields={"exc_info": "traceback", "stack_info": "stack"},
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        log_data["ts"] = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        )
        log_data["level"] = record.levelname.lower()
        log_data["event"] = record.getMessage()
        log_data["logger"] = record.name
        super().add_fields(log_data, record, message_dict)  # traceback, stack, extras
        log_data.pop("message", None)  # the library's default field: "event" here
        log_data.update(getattr(record, "fields", {}))


def configure_logging(level: str = "info") -> None:
    """Every line the process writes to stderr is JSON: one handler, at the root, for every logger;
    Python warnings and uncaught exceptions (any thread's) go through it too, tracebacks as a field."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    log.handlers[:] = []
    log.setLevel(logging.NOTSET)
    log.propagate = True
    logging.captureWarnings(True)

    def uncaught(exc_type, exc, tb) -> None:
        log.critical("uncaught exception", exc_info=(exc_type, exc, tb))

    def uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            log.critical(
                "uncaught exception in thread",
                exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
                extra={"fields": {"thread": args.thread.name if args.thread else None}},
            )

    sys.excepthook = uncaught
    threading.excepthook = uncaught_in_thread


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
    # autopilot.release when the runner stops): prefetch until a job has finished, then as many as
    # keep the slots busy for about 50 ms, up to max_prefetch (none ahead of slow jobs)
    prefetch: int = 10
    max_prefetch: int = 200
    # completions are recorded by a thread of their own, in batches of at most this many
    complete_batch: int = 500


def _text(value: object) -> str:
    """str(value), whatever value's __str__ does (a worker's result or exception is anybody's code)."""
    try:
        return str(value)
    except Exception as exc:
        return f"<{type(value).__name__}: str() raised {type(exc).__name__}>"


def _one_line(exc: BaseException) -> str:
    return " ".join(_text(exc).split())


@dataclass(eq=False)
class _Running:
    job: Job
    worker: Worker | None
    context: JobContext
    started: float
    # the runner no longer waits for this attempt's outcome (timed out, cancelled, rescued, claimed
    # again): set once, under the lock, by whoever took it; its slot thread may still be in the worker
    lost: bool = False

    @property
    def key(self) -> Key:
        return self.job.key


@dataclass(eq=False)
class _Outcome:
    running: _Running
    error: str | None = None  # None: succeeded
    discard: bool = False
    result: str | None = None  # the worker's result as text (made in the slot thread, truncated)
    finished: float = field(default_factory=time.monotonic)
    tries: int = 0  # attempts to record it that failed
    retry_at: float = 0.0  # time.monotonic() before which it is not tried again


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
        self._lock = threading.Lock()
        self._claimed = threading.Condition(self._lock)  # slots wait on it for claimed jobs
        # what the runner holds, each attempt in exactly one place (all guarded by _lock):
        self._pending: collections.deque[Job] = collections.deque()  # claimed, not started, in run order
        self._running: dict[Key, _Running] = {}  # started, outcome not decided yet
        self._failing: dict[Key, _Outcome] = {}  # failed or timed out, fail() not recorded yet
        self._completing: dict[Key, _Outcome] = {}  # succeeded, complete_many() not recorded yet
        self._releasing: dict[Key, Job] = {}  # claimed, never to be started, release() not recorded yet
        self._busy = 0  # slot threads inside a worker
        self._orphans = 0  # of those, threads whose attempt was taken from them (timed out, lost)
        self._to_complete: queue_module.Queue[_Outcome] = queue_module.Queue()
        self._completer_done = threading.Event()
        self._mean_duration: float | None = None  # seconds, moving average of successful jobs
        self._last_claim = 0
        self._turn = 0  # the queue whose share comes first in the next claiming round
        self._pool: ConnectionPool | None = None
        self._queue = QueueClient(self._connection)
        self._slots: list[threading.Thread] = []
        self.stats = {"completed": 0, "failed": 0, "discarded": 0, "lost": 0}

    # -- public ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; run() lets running jobs finish within the grace period, then returns.

        Not for a signal handler (it takes locks): see runner_cli for how signals reach it."""
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        config = self.config
        # one plain connection first: a wrong DSN, role or password is libpq's own message, at once
        # (the pool would only say, 30 s later, that it could not fill itself)
        connect(self.dsn, autocommit=True, application_name=f"{APPLICATION_NAME} runner").close()
        self._pool = ConnectionPool(
            conninfo(self.dsn, application_name=f"{APPLICATION_NAME} runner"),
            min_size=2,
            max_size=4,
            kwargs={"autocommit": True},
            # a pooled connection is checked before use: one the server dropped (a restart, a network
            # cut) is replaced instead of failing the statement it was given
            check=ConnectionPool.check_connection,
            timeout=10,
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
        finally:
            # however the loop ended: no more claims, give back what was not started, let the running
            # jobs finish within the grace period and record them
            self.stop()
            with self._claimed:
                self._claimed.notify_all()
            self._drain()
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
        failures = 0
        while not self._stopping.is_set():
            try:
                self._iterate()
                failures = 0
            except psycopg.Error as exc:
                # the database went away (restart, network), turned read-only (failover), changed under
                # a statement (upgrade)...: keep every outcome, back off, try again
                failures += 1
                delay = backoff(failures, 10.0)
                _log(
                    logging.ERROR,
                    "database error; retrying",
                    error=_one_line(exc),
                    sqlstate=getattr(exc, "sqlstate", None),
                    retry_in_s=delay,
                )
                self._stopping.wait(delay)

    def _iterate(self) -> None:
        """Record failures, expire overrunning jobs, claim ahead when the claimed jobs run low (the slot
        threads take them from there), then sleep until woken (a slot running low or failing, a NOTIFY,
        the poll interval)."""
        self._record_outcomes()
        self._expire_timeouts()
        self._give_back_when_stuck()
        self._release_held()
        claimed = 0
        with self._lock:
            low = len(self._pending) <= self._last_claim // 2
        if low and not self._stopping.is_set():
            claimed = self._claim_round()
            self._last_claim = claimed or self._last_claim
        with self._lock:
            free = self._free_slots()
        if claimed and free > 0:
            return  # there may be more: claim again before sleeping
        self._wake.wait(self.config.poll_interval)
        self._wake.clear()

    def _extra(self) -> int:
        """How many jobs to claim beyond the free slots (queue.claim_ahead: none ahead of slow jobs)."""
        config = self.config
        return claim_ahead(self._mean_duration, config.concurrency, config.prefetch, config.max_prefetch)

    def _free_slots(self) -> int:
        """Slot threads not inside a worker (the caller holds the lock). A thread stuck in a worker past
        its timeout is not free, though its job is no longer running."""
        return self.config.concurrency - self._busy

    def _want(self) -> int:
        """How many jobs to claim now (the caller holds the lock): none while every slot thread is stuck
        in a worker past its timeout, since no claimed job could start. Jobs that finished but whose
        outcome is not recorded yet are still executing in the database: claims wait for them, so a
        runner never holds more than its slots and its prefetch (what a killed runner leaves for
        rescue), however far its completer falls behind."""
        if self._orphans >= self.config.concurrency:
            return 0
        unrecorded = len(self._completing) + len(self._failing)
        return self._free_slots() + self._extra() - len(self._pending) - unrecorded

    def _claim_round(self) -> int:
        """Claims what the slots want, shared among the queues (queue.claim_round: a backlog in one
        queue never starves another)."""
        with self._lock:
            want = self._want()
        turn, self._turn = self._turn, self._turn + 1
        return claim_round(self.config.queues, turn, want, self._claim, self._stopping.is_set)

    def _claim(self, queue: str, limit: int) -> int:
        jobs = self._queue.claim(queue, self.config.node, limit)
        if jobs:
            with self._claimed:
                self._supersede(jobs)
                self._pending.extend(jobs)  # claim() returns them in run order: priority, then age
                self._claimed.notify(len(jobs))
        return len(jobs)

    def _supersede(self, jobs: list[Job]) -> None:
        """Jobs claimed again by this node (rescued from it, or cancelled and retried): the attempts of
        them it still holds are no longer its own (the caller holds the lock)."""
        held = [*self._pending, *(running.job for running in self._running.values())]
        stale = {job.key for job in superseded(held, jobs)}
        if not stale:
            return
        for job in [job for job in self._pending if job.key in stale]:
            self._pending.remove(job)
            self._note_lost(job, started=False)
        for running in [r for r in self._running.values() if r.key in stale]:
            self._take(running)
            self._note_lost(running.job, started=True)

    def _slot(self) -> None:
        """One of ``concurrency`` slot threads: takes the next claimed job and runs it, until the runner
        stops. Successes go straight to the completer; failures to the main loop."""
        while True:
            with self._claimed:
                while not self._pending and not self._stopping.is_set():
                    self._claimed.wait(0.5)
                if self._stopping.is_set():
                    return  # what is still claimed is given back by _drain
                running = self._begin(self._pending.popleft())
                low = len(self._pending) <= self._last_claim // 2
            if low:
                self._wake.set()  # the main loop claims more
            try:
                self._run(running)
            finally:
                with self._lock:
                    self._busy -= 1
                    if running.lost:
                        self._orphans -= 1  # a stuck thread is free again: the main loop may claim
                    idle = not self._pending
                if running.lost or idle:
                    self._wake.set()  # a free slot and nothing claimed for it: the main loop claims

    def _begin(self, job: Job) -> _Running:
        """Registers a job as running on this slot thread (the caller holds the lock)."""
        worker = self.workers.get(job.worker)
        context = JobContext(
            job_id=job.id,
            attempt=job.attempt,
            queue=job.queue,
            node=self.config.node,
            dsn=self.dsn,
            deadline=time.monotonic() + (worker.timeout if worker else 0.0),
            progress_sink=lambda fields: self._queue.progress(job.key, fields),
        )
        running = _Running(job, worker, context, time.monotonic())
        self._running[running.key] = running
        self._busy += 1
        return running

    def _run(self, running: _Running) -> None:
        if running.worker is None:
            known = ", ".join(sorted(self.workers)) or "none"
            error = f"no worker named {running.job.worker!r} in this runner (it has: {known})"
            self._failed(_Outcome(running, error=error, discard=True))
            return
        job = running.job
        _log(
            logging.INFO,
            "job started",
            job_id=job.id,
            worker=job.worker,
            attempt=job.attempt,
            queue=job.queue,
        )
        try:
            result = running.worker.function(job.args, running.context)
        except BaseException as exc:  # a worker's failure is the job's, never the runner's
            _log(
                logging.DEBUG,
                "worker traceback",
                job_id=running.job.id,
                traceback="".join(traceback.format_exception(exc)),
            )
            self._failed(_Outcome(running, error=f"{type(exc).__name__}: {_text(exc)}".strip()))
            return
        # the result as text here, in the slot thread: a worker's object whose str() raises must not
        # reach the completer
        outcome = _Outcome(running, result=None if result is None else _text(result)[:500])
        with self._lock:
            if running.lost:  # timed out, cancelled, rescued or claimed again: not ours to record
                return
            # how long jobs take (how many to claim ahead), known before the completion is recorded
            duration = outcome.finished - running.started
            mean = self._mean_duration
            self._mean_duration = duration if mean is None else 0.9 * mean + 0.1 * duration
            # handed to the completer under the lock: _drain never finds the job in neither place
            del self._running[running.key]
            self._completing[running.key] = outcome
            self._to_complete.put(outcome)

    def _failed(self, outcome: _Outcome) -> None:
        """A worker failed (or does not exist): the main loop records it, unless the attempt was
        taken from it meanwhile."""
        running = outcome.running
        with self._lock:
            if running.lost:
                return
            del self._running[running.key]
            self._failing[running.key] = outcome
        self._wake.set()

    def _take(self, running: _Running) -> None:
        """The runner stops waiting for this attempt (timed out, cancelled, rescued, claimed again): its
        worker is asked to stop and its outcome will be ignored; its slot thread stays busy until the
        worker returns (the caller holds the lock)."""
        del self._running[running.key]
        running.lost = True
        running.context.cancelled.set()
        self._orphans += 1

    def _note_lost(self, job: dict, started: bool) -> None:
        """(the caller holds the lock)"""
        self.stats["lost"] += 1
        _log(
            logging.WARNING,
            "job is no longer this runner's (cancelled or rescued): its outcome is not recorded"
            if started
            else "job claimed but not started is no longer this runner's (cancelled or rescued): not started",
            job_id=job.id,
            attempt=job.attempt,
            worker=job.worker,
        )

    def _expire_timeouts(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [r for r in self._running.values() if r.worker and now > r.context.deadline]
            for running in late:
                # the thread cannot be killed: the attempt fails now, and whatever it returns later is
                # ignored -- decided under the lock, so a worker finishing at this moment either
                # completes (it is no longer in _running) or is failed, never both
                self._take(running)
                self._failing[running.key] = _Outcome(
                    running, error=f"timed out after {running.worker.timeout:g} s (worker timeout)"
                )

    def _give_back_when_stuck(self) -> None:
        """Every slot thread stuck in a worker past its timeout: nothing claimed ahead can start, so it
        is given back for another runner (and claimed again here once a thread is free)."""
        with self._lock:
            if self._orphans < self.config.concurrency or not self._pending:
                return
            for job in self._pending:
                self._releasing[job.key] = job
            count = len(self._pending)
            self._pending.clear()
        _log(
            logging.WARNING,
            "every slot is stuck in a worker past its timeout; giving back the jobs claimed ahead",
            count=count,
        )

    def _record_outcomes(self) -> None:
        """Failures (and unknown workers), which the main loop records one by one. One that cannot be
        recorded now is kept and tried again later (with backoff); the others go on."""
        now = time.monotonic()
        with self._lock:
            due = [o for o in self._failing.values() if o.retry_at <= now]
        for outcome in due:
            try:
                self._finish_failed(outcome)
            except psycopg.Error as exc:
                outcome.tries += 1
                delay = backoff(outcome.tries, 30.0)
                outcome.retry_at = time.monotonic() + delay
                _log(
                    logging.ERROR,
                    "could not record a failure; retrying",
                    job_id=outcome.running.job.id,
                    attempt=outcome.running.job.attempt,
                    error=_one_line(exc),
                    retry_in_s=delay,
                )
                if isinstance(exc, psycopg.OperationalError):
                    break  # the database is away: the others wait too
                continue
            with self._lock:
                self._failing.pop(outcome.running.key, None)

    def _completions(self) -> None:
        """The completer thread: records completions in batches (complete_many), off the main loop, so
        that claiming and starting jobs never waits for it. Keeps a batch until it is recorded; no error
        ends it."""
        batch: list[_Outcome] = []
        failures = 0
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
            except Exception as exc:  # the database's, or anything else: never let the thread die
                failures += 1
                if self._done.is_set():  # run() is over: the heartbeats have stopped, rescue takes them
                    _log(
                        logging.ERROR,
                        "completions not recorded at shutdown; rescue-orphaned-jobs takes the jobs back",
                        job_ids=[o.running.job.id for o in batch],
                        error=_one_line(exc),
                    )
                    with self._lock:
                        for o in batch:
                            self._completing.pop(o.running.key, None)
                    batch = []
                    continue
                delay = backoff(failures, 10.0)
                _log(
                    logging.ERROR,
                    "could not record completions; retrying",
                    error=_one_line(exc),
                    error_type=type(exc).__name__,
                    retry_in_s=delay,
                )
                self._done.wait(delay)
                continue
            failures = 0
            batch = []

    def _finish_succeeded(self, outcomes: list[_Outcome]) -> None:
        done = self._queue.complete_many([o.running.key for o in outcomes])  # None: all of them
        with self._lock:
            for o in outcomes:
                self._completing.pop(o.running.key, None)
                self.stats["completed" if done is None or o.running.key in done else "lost"] += 1
        self._wake.set()  # claims that waited for these completions to be recorded may go on
        for o in outcomes:
            job = o.running.job
            if done is not None and o.running.key not in done:
                _log(
                    logging.WARNING,
                    "job finished, but is no longer this runner's (cancelled or rescued): not completed",
                    job_id=job.id,
                    worker=job.worker,
                    attempt=job.attempt,
                )
                continue
            _log(
                logging.INFO,
                "job completed",
                job_id=job.id,
                worker=job.worker,
                queue=job.queue,
                attempt=job.attempt,
                duration_ms=round((o.finished - o.running.started) * 1000, 1),
                result=o.result,
            )

    def _finish_failed(self, outcome: _Outcome) -> None:
        job = outcome.running.job
        state = self._queue.fail(job.key, outcome.error or "", outcome.discard)
        if state is None:  # no longer executing that attempt: cancelled, or rescued meanwhile
            with self._lock:
                self.stats["lost"] += 1
            _log(
                logging.WARNING,
                "job failed, but is no longer this runner's (cancelled or rescued): failure not recorded",
                job_id=job.id,
                worker=job.worker,
                attempt=job.attempt,
                error=outcome.error,
            )
            return
        with self._lock:
            self.stats["discarded" if state == "discarded" else "failed"] += 1
        _log(
            logging.WARNING if state != "discarded" else logging.ERROR,
            "job failed",
            job_id=job.id,
            worker=job.worker,
            queue=job.queue,
            attempt=job.attempt,
            max_attempts=job.max_attempts,
            state=state,
            error=outcome.error,
            duration_ms=round((outcome.finished - outcome.running.started) * 1000, 1),
        )

    def _drain(self) -> None:
        """After a stop: give back the jobs not started, wait up to ``grace`` seconds for the running
        ones, recording each outcome. Every step is retried until the grace period is over: one error
        (the database away for a moment) does not cut it short."""
        with self._lock:
            for job in self._pending:
                self._releasing[job.key] = job
            self._pending.clear()
        deadline = time.monotonic() + self.config.grace
        while True:
            ok = all(
                [
                    self._step(self._release_held),
                    self._step(self._record_outcomes),
                    self._step(self._expire_timeouts),
                ]
            )
            with self._lock:
                busy = bool(self._running or self._failing or self._completing or self._releasing)
            left = deadline - time.monotonic()
            if not busy or left <= 0:
                break
            self._wake.wait(min(left, 0.05 if ok else 1.0))
            self._wake.clear()
        self._step(self._record_outcomes)
        with self._lock:
            leftover = {
                "running": sorted(job_id for job_id, _ in self._running),
                "failure_not_recorded": sorted(job_id for job_id, _ in self._failing),
                "not_released": sorted(job_id for job_id, _ in self._releasing),
            }
        if any(leftover.values()):
            _log(
                logging.WARNING,
                "left running at shutdown; rescue-orphaned-jobs takes them back",
                job_ids=sorted({job_id for ids in leftover.values() for job_id in ids}),
                grace_s=self.config.grace,
                **{k: v for k, v in leftover.items() if v},
            )

    def _step(self, step: Callable[[], None]) -> bool:
        try:
            step()
        except Exception as exc:
            _log(logging.ERROR, "shutdown step failed; retrying", step=step.__name__, error=_one_line(exc))
            return False
        return True

    def _release_held(self) -> None:
        """Gives back the claimed jobs that will not be started here (kept until release() has them)."""
        with self._lock:
            jobs = list(self._releasing.values())
        if not jobs:
            return
        released = self._queue.release([job.key for job in jobs])
        with self._lock:
            for job in jobs:
                self._releasing.pop(job.key, None)
        _log(logging.INFO, "released jobs claimed but not started", count=released)

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection. One that saw an error is closed, so the pool replaces it: after a
        failover it may be read-only, after an upgrade its prepared statements may no longer fit."""
        assert self._pool is not None
        with self._pool.connection() as conn:
            try:
                yield conn
            except psycopg.Error:
                conn.close()
                raise

    # -- threads -----------------------------------------------------------------------------------

    def _listen(self) -> None:
        """LISTEN on a connection of its own (never the one claims use), waking the loop. While the
        database cannot be reached, it tries again after 1, 2, 4 ... at most 30 s (polling goes on)."""
        failures = 0
        while not self._stopping.is_set():
            try:
                with psycopg.connect(
                    conninfo(self.dsn, application_name=f"{APPLICATION_NAME} runner"),
                    autocommit=True,
                    connect_timeout=10,
                ) as conn:
                    conn.execute("LISTEN autopilot_jobs")
                    if failures:
                        self._wake.set()  # what was enqueued meanwhile sent no NOTIFY we heard
                    failures = 0
                    while not self._stopping.is_set():
                        for notify in conn.notifies(timeout=1.0):
                            if notify.payload in self.config.queues:
                                self._wake.set()
            except psycopg.Error as exc:
                failures += 1
                delay = backoff(failures, 30.0)
                _log(
                    logging.WARNING,
                    "listener lost its connection; polling meanwhile",
                    error=_one_line(exc),
                    retry_in_s=delay,
                )
                self._stopping.wait(delay)

    def _held(self) -> dict[int, int]:
        """Every job attempt the runner holds -- claimed, running, finished but not recorded -- as
        {job id: attempt}; of two attempts of one job, the later (the caller holds the lock)."""
        return latest_attempts(
            [*(job.key for job in self._pending), *self._running, *self._failing, *self._completing,
             *self._releasing]
        )  # fmt: skip

    def _heartbeats(self) -> None:
        """Every heartbeat_interval until run() is over (the grace period included)."""
        while not self._done.wait(self.config.heartbeat_interval):
            with self._lock:
                held = self._held()
            if not held:
                continue
            try:
                kept = self._queue.heartbeat(held, self.config.node)
            except Exception as exc:  # the next beat tries again; rescue is the backstop
                _log(logging.WARNING, "heartbeat failed", error=_one_line(exc))
                continue
            gone = [(job_id, attempt) for job_id, attempt in held.items() if job_id not in kept]
            if gone:
                with self._lock:
                    self._lose(gone)

    def _lose(self, keys: list[Key]) -> None:
        """Attempts the database no longer gives this node (the caller holds the lock). Only those still
        held as they were: running, the worker is told and its outcome ignored; claimed, never started.
        One finished meanwhile is left to its recording, which changes nothing in the database."""
        for key in keys:
            running = self._running.get(key)
            if running is not None:
                self._take(running)
                self._note_lost(running.job, started=True)
                continue
            for job in self._pending:
                if job.key == key:
                    self._pending.remove(job)
                    self._note_lost(job, started=False)
                    break

    def _enqueue_startup_jobs(self) -> None:
        """The catalog's startup jobs for the workers this runner has. The unique key is the one pg_cron's
        enqueues use (catalog:<name>), so a job already pending is not added twice."""
        for name, job_id in self._queue.enqueue_startup_jobs(self.workers):
            _log(logging.INFO, "startup job", job=name, job_id=job_id)
