"""The completer: the successes waiting to be recorded (``complete_many``), and a thread that records
them in batches on a connection of its own, at once.

It runs beside the main loop's claims, so under a backlog the server records one batch of finished
jobs while it hands out the next (two backends, two cores): a batch is whatever finished while the
one before it was being recorded, up to ``batch``. Claims still wait for what it has not recorded
(the ledger counts those as held), so a runner never holds more than its slots and its prefetch."""

from __future__ import annotations

import collections
import logging
import threading

from ..queue import Key, QueueClient, backoff
from .ledger import Ledger, Outcome
from .logs import event, one_line


class Completer:
    """Owns the successes not recorded yet (its inbox): each is either in the inbox or in the batch its
    thread is recording until the database has it. No error ends the thread; ``close()`` ends it once
    the inbox is empty; after ``run_over`` (the heartbeats have stopped) a batch it cannot record is
    given up to rescue-orphaned-jobs."""

    def __init__(
        self,
        queue: QueueClient,
        ledger: Ledger,
        batch: int,
        wake: threading.Event,
        run_over: threading.Event,
    ):
        self._queue = queue
        self._ledger = ledger
        self._batch = batch
        self._wake = wake
        self._run_over = run_over
        self._inbox: collections.deque[Outcome] = collections.deque()  # oldest first
        self._changed = threading.Condition(threading.Lock())
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autopilot-completer", daemon=True)

    def put(self, outcome: Outcome) -> None:
        with self._changed:
            self._inbox.append(outcome)
            if len(self._inbox) == 1:
                self._changed.notify()

    def _take(self) -> list[Outcome]:
        count = min(len(self._inbox), self._batch)
        return [self._inbox.popleft() for _ in range(count)]

    def give_back(self, outcomes: list[Outcome]) -> None:
        """Successes the thread could not record: first in line again."""
        if outcomes:
            with self._changed:
                self._inbox.extendleft(reversed(outcomes))
                self._changed.notify()

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> None:
        self._closing.set()
        with self._changed:
            self._changed.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        failures = 0
        while True:
            batch = self._wait_for_batch()
            if not batch:
                if self._closing.is_set():
                    return
                continue
            try:
                self.recorded(batch, self._queue.complete_many([o.running.key for o in batch]))
            except Exception as exc:  # the database's, or anything else: never let the thread die
                failures += 1
                if self._run_over.is_set():
                    self._give_up(batch, exc)
                    continue
                self.give_back(batch)
                delay = backoff(failures, 10.0)
                event(
                    logging.ERROR,
                    "could not record completions; retrying",
                    error=one_line(exc),
                    error_type=type(exc).__name__,
                    retry_in_s=delay,
                )
                self._run_over.wait(delay)
                continue
            failures = 0

    def _wait_for_batch(self) -> list[Outcome]:
        """Waits (up to 0.1 s) for a success, then takes what is there, up to a batch; [] if none came."""
        with self._changed:
            if not self._inbox and not self._closing.is_set():
                self._changed.wait(0.1)
            return self._take()

    def recorded(self, outcomes: list[Outcome], done: set[Key] | None) -> None:
        """complete_many() returned: ``done`` the attempts it completed (None: all of them)."""
        self._ledger.completions_recorded(outcomes, done)
        self._wake.set()  # claims that waited for these completions to be recorded may go on
        for o in outcomes:
            job = o.job
            if done is not None and o.running.key not in done:
                event(
                    logging.WARNING,
                    "job finished, but is no longer this runner's (cancelled or rescued): not completed",
                    job_id=job.id,
                    worker=job.worker,
                    attempt=job.attempt,
                )
                continue
            event(
                logging.INFO,
                "job completed",
                job_id=job.id,
                worker=job.worker,
                queue=job.queue,
                attempt=job.attempt,
                duration_ms=o.duration_ms,
                result=o.result,
            )

    def _give_up(self, batch: list[Outcome], exc: Exception) -> None:
        event(
            logging.ERROR,
            "completions not recorded at shutdown; rescue-orphaned-jobs takes the jobs back",
            job_ids=[o.job.id for o in batch],
            error=one_line(exc),
        )
        self._ledger.completions_abandoned(batch)
