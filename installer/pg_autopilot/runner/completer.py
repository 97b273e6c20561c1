"""The completer thread: records completions in batches (``complete_many``), off the main loop, so
that claiming and starting jobs never waits for it."""

from __future__ import annotations

import logging
import queue as queue_module
import threading

from ..queue import QueueClient, backoff
from .ledger import Ledger, Outcome
from .logs import event, one_line


class Completer:
    """Owns its inbox of successful outcomes. Keeps a batch until it is recorded; no error ends it.
    ``close()`` ends it once the inbox is empty; after ``run_over`` (the heartbeats have stopped) a
    batch it cannot record is given up to rescue-orphaned-jobs."""

    def __init__(
        self, queue: QueueClient, ledger: Ledger, batch: int, wake: threading.Event, run_over: threading.Event
    ):
        self._queue = queue
        self._ledger = ledger
        self._batch = batch
        self._wake = wake
        self._run_over = run_over
        self._inbox: queue_module.Queue[Outcome] = queue_module.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autopilot-completer", daemon=True)

    def put(self, outcome: Outcome) -> None:
        self._inbox.put(outcome)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        batch: list[Outcome] = []
        failures = 0
        while True:
            if not batch and not self._take_batch(batch):
                if self._closing.is_set():
                    return
                continue
            try:
                self._record(batch)
            except Exception as exc:  # the database's, or anything else: never let the thread die
                failures += 1
                if self._run_over.is_set():
                    self._give_up(batch, exc)
                    batch = []
                    continue
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
            batch = []

    def _take_batch(self, batch: list[Outcome]) -> bool:
        """Waits up to 0.1 s for an outcome, then takes what else is there, up to a batch."""
        try:
            batch.append(self._inbox.get(timeout=0.1))
        except queue_module.Empty:
            return False
        while len(batch) < self._batch:
            try:
                batch.append(self._inbox.get_nowait())
            except queue_module.Empty:
                break
        return True

    def _record(self, outcomes: list[Outcome]) -> None:
        done = self._queue.complete_many([o.running.key for o in outcomes])  # None: all of them
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
