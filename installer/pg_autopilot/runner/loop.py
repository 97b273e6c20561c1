"""The main loop: starts the threads, claims, records failures, expires timeouts, and stops."""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool

from ..db import APPLICATION_NAME, connect, conninfo, resolve_dsn
from ..queue import QueueClient, backoff, claim_round
from ..workers import REGISTRY, Worker
from .completer import Completer
from .config import RunnerConfig
from .heartbeat import Heartbeat, note_lost
from .ledger import Ledger, Outcome
from .listener import Listener
from .logs import event, one_line
from .slots import Slots


class Runner:
    def __init__(self, config: RunnerConfig, workers: dict[str, Worker] | None = None):
        if config.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.config = config
        self.workers = dict(REGISTRY if workers is None else workers)
        self.dsn = resolve_dsn(config.dsn)
        self._stopping = threading.Event()  # no more claims
        self._wake = threading.Event()  # the main loop has something to do
        self._run_over = threading.Event()  # run() is over, the grace period included
        self._ledger = Ledger(config.concurrency, config.prefetch, config.max_prefetch)
        self._pool: ConnectionPool | None = None
        self._queue = QueueClient(self._connection)
        self._turn = 0  # the queue whose share comes first in the next claiming round
        self._completer: Completer | None = None
        # when each pooled connection was last given back without an error (see _check_if_idle)
        self._returned: weakref.WeakKeyDictionary[psycopg.Connection, float] = weakref.WeakKeyDictionary()

    @property
    def stats(self) -> dict[str, int]:
        """Attempts completed, failed, discarded and lost so far."""
        return self._ledger.stats

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
        self._pool = self._open_pool()
        completer = self._completer = Completer(
            self._queue, self._ledger, config.complete_batch, self._wake, self._run_over
        )
        heartbeat = Heartbeat(
            self._queue, self._ledger, config.node, config.heartbeat_interval, self._run_over
        )
        slots = Slots(
            config,
            self.dsn,
            self.workers,
            self._ledger,
            self._queue,
            completer.put,
            self._stopping,
            self._wake,
        )
        try:
            self._pool.wait(timeout=30)
            event(
                logging.INFO,
                "runner started",
                node=config.node,
                queues=list(config.queues),
                concurrency=config.concurrency,
                workers=sorted(self.workers),
            )
            Listener(self.dsn, config.queues, self._stopping, self._wake).start()
            heartbeat.start()
            completer.start()
            slots.start()
            if config.enqueue_startup_jobs:
                self._enqueue_startup_jobs()
            self._loop()
        finally:
            # however the loop ended: no more claims, give back what was not started, let the running
            # jobs finish within the grace period and record them
            self.stop()
            self._ledger.wake_slots()
            self._drain()
            completer.close(timeout=30)
            self._run_over.set()
            heartbeat.join(timeout=10)
            self._pool.close()
            event(logging.INFO, "runner stopped", node=config.node, **self.stats)

    def _open_pool(self) -> ConnectionPool:
        return ConnectionPool(
            conninfo(self.dsn, application_name=f"{APPLICATION_NAME} runner"),
            min_size=2,
            max_size=4,
            kwargs={"autocommit": True},
            # a pooled connection is checked before use: one the server dropped (a restart, a network
            # cut) is replaced instead of failing the statement it was given
            check=self._check_if_idle,
            timeout=10,
            open=True,
            name="autopilot-runner",
        )

    def _check_if_idle(self, conn: psycopg.Connection) -> None:
        """The pool's check of a connection it hands out (a round trip), for one idle over a second:
        one the server dropped meanwhile (a restart, a network cut) is replaced instead of failing the
        statement it was given. One that was in use a moment ago is not checked again: a drain would
        pay a round trip for each claim and each batch of completions."""
        if time.monotonic() - self._returned.get(conn, 0.0) > 1.0:
            ConnectionPool.check_connection(conn)

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
            self._returned[conn] = time.monotonic()

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
                event(
                    logging.ERROR,
                    "database error; retrying",
                    error=one_line(exc),
                    sqlstate=getattr(exc, "sqlstate", None),
                    retry_in_s=delay,
                )
                self._stopping.wait(delay)

    def _iterate(self) -> None:
        """Record failures, expire overrunning jobs, claim ahead when the claimed jobs run low (the slot
        threads take them from there), then sleep until woken (a slot running low or failing, a NOTIFY,
        the poll interval)."""
        self._record_failures()
        self._ledger.expire(time.monotonic())
        if count := self._ledger.give_back_if_stuck():
            event(
                logging.WARNING,
                "every slot is stuck in a worker past its timeout; giving back the jobs claimed ahead",
                count=count,
            )
        self._release_held()
        claimed = 0
        if self._ledger.running_low() and not self._stopping.is_set():
            claimed = self._claim_round()
            self._ledger.round_claimed(claimed)
        if claimed and self._ledger.has_free_slot():
            return  # there may be more: claim again before sleeping
        self._wake.wait(self.config.poll_interval)
        self._wake.clear()

    def _claim_round(self) -> int:
        """Claims what the slots want, shared among the queues (queue.claim_round: a backlog in one
        queue never starves another). The completer records successes meanwhile, on a connection of
        its own: under a backlog the server records one batch while it hands out the next."""
        turn, self._turn = self._turn, self._turn + 1
        return claim_round(self.config.queues, turn, self._ledger.want(), self._claim, self._stopping.is_set)

    def _claim(self, queue: str, limit: int) -> int:
        jobs = self._queue.claim(queue, self.config.node, limit)
        if jobs:
            note_lost(self._ledger.add_claimed(jobs))
        return len(jobs)

    def _record_failures(self) -> None:
        """Failures (and unknown workers), recorded one by one. One that cannot be recorded now is kept
        and tried again later (with backoff); the others go on."""
        for outcome in self._ledger.failures_due(time.monotonic()):
            try:
                state = self._queue.fail(outcome.job.key, outcome.error or "", outcome.discard)
            except psycopg.Error as exc:
                outcome.tries += 1
                delay = backoff(outcome.tries, 30.0)
                outcome.retry_at = time.monotonic() + delay
                event(
                    logging.ERROR,
                    "could not record a failure; retrying",
                    job_id=outcome.job.id,
                    attempt=outcome.job.attempt,
                    error=one_line(exc),
                    retry_in_s=delay,
                )
                if isinstance(exc, psycopg.OperationalError):
                    break  # the database is away: the others wait too
                continue
            self._ledger.failure_recorded(outcome, state)
            _log_failure(outcome, state)

    def _release_held(self) -> None:
        """Gives back the claimed jobs that will not be started here (kept until release() has them)."""
        jobs = self._ledger.to_release()
        if not jobs:
            return
        released = self._queue.release([job.key for job in jobs])
        self._ledger.released(jobs)
        event(logging.INFO, "released jobs claimed but not started", count=released)

    # -- stopping ----------------------------------------------------------------------------------

    def _drain(self) -> None:
        """After a stop: give back the jobs not started, wait up to ``grace`` seconds for the running
        ones, recording each outcome. Every step is retried until the grace period is over: one error
        (the database away for a moment) does not cut it short."""
        self._ledger.give_back_all()
        deadline = time.monotonic() + self.config.grace
        while True:
            ok = all(
                [
                    _step(self._release_held),
                    _step(self._record_failures),
                    _step(lambda: self._ledger.expire(time.monotonic()), "expire_timeouts"),
                ]
            )
            left = deadline - time.monotonic()
            if not self._ledger.holding() or left <= 0:
                break
            self._wake.wait(min(left, 0.05 if ok else 1.0))
            self._wake.clear()
        _step(self._record_failures)
        leftover = self._ledger.leftover()
        if any(leftover.values()):
            event(
                logging.WARNING,
                "left running at shutdown; rescue-orphaned-jobs takes them back",
                job_ids=sorted({job_id for ids in leftover.values() for job_id in ids}),
                grace_s=self.config.grace,
                **{k: v for k, v in leftover.items() if v},
            )

    def _enqueue_startup_jobs(self) -> None:
        """The catalog's startup jobs for the workers this runner has, the seed's chain waiting link by
        link (autopilot.enqueue_startup_jobs). The unique key is the one pg_cron's enqueues use
        (catalog:<name>), so a job already pending is not added twice."""
        for name, job_id, after in self._queue.enqueue_startup_jobs(self.workers):
            event(logging.INFO, "startup job", job=name, job_id=job_id, waits_for=after)


def _step(step: Callable[[], object], name: str | None = None) -> bool:
    """One shutdown step; an error is logged and the step tried again by the caller."""
    try:
        step()
    except Exception as exc:
        event(
            logging.ERROR, "shutdown step failed; retrying", step=name or step.__name__, error=one_line(exc)
        )
        return False
    return True


def _log_failure(outcome: Outcome, state: str | None) -> None:
    job = outcome.job
    if state is None:  # no longer executing that attempt: cancelled, or rescued meanwhile
        event(
            logging.WARNING,
            "job failed, but is no longer this runner's (cancelled or rescued): failure not recorded",
            job_id=job.id,
            worker=job.worker,
            attempt=job.attempt,
            error=outcome.error,
        )
        return
    event(
        logging.WARNING if state != "discarded" else logging.ERROR,
        "job failed",
        job_id=job.id,
        worker=job.worker,
        queue=job.queue,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        state=state,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
    )
