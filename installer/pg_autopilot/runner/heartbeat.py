"""The heartbeat thread: keeps every job attempt the runner holds, and finds those it lost."""

from __future__ import annotations

import logging
import threading

from ..queue import QueueClient
from .ledger import Ledger, Lost
from .logs import event, one_line


def note_lost(lost: list[Lost]) -> None:
    for item in lost:
        event(
            logging.WARNING,
            "job is no longer this runner's (cancelled or rescued): its outcome is not recorded"
            if item.started
            else "job claimed but not started is no longer this runner's (cancelled or rescued): not started",
            job_id=item.job.id,
            attempt=item.job.attempt,
            worker=item.job.worker,
        )


class Heartbeat:
    """Every ``interval`` seconds until ``run_over`` (the grace period included): ``heartbeat`` by job
    id and attempt; an attempt the database no longer gives this node (cancelled, or rescued after
    the node looked dead, perhaps claimed again since) is taken from its worker in the ledger."""

    def __init__(
        self, queue: QueueClient, ledger: Ledger, node: str, interval: float, run_over: threading.Event
    ):
        self._queue = queue
        self._ledger = ledger
        self._node = node
        self._interval = interval
        self._run_over = run_over
        self._thread = threading.Thread(target=self._loop, name="autopilot-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    def _loop(self) -> None:
        while not self._run_over.wait(self._interval):
            held = self._ledger.held()
            if not held:
                continue
            try:
                kept = self._queue.heartbeat(held, self._node)
            except Exception as exc:  # the next beat tries again; rescue is the backstop
                event(logging.WARNING, "heartbeat failed", error=one_line(exc))
                continue
            gone = [(job_id, attempt) for job_id, attempt in held.items() if job_id not in kept]
            if gone:
                note_lost(self._ledger.lose(gone))
