"""The slot threads: each takes the next claimed job from the ledger and runs its worker."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

from ..queue import Job, QueueClient
from ..workers import JobContext, Worker
from .config import RunnerConfig
from .ledger import Ledger, Outcome, Running
from .logs import event, one_line, text


class Slots:
    """``concurrency`` threads. A success goes straight to the completer (``hand_over``); a failure to
    the ledger, for the main loop to record (``wake`` tells it, and that more jobs are wanted)."""

    def __init__(
        self,
        config: RunnerConfig,
        dsn: str,
        workers: dict[str, Worker],
        ledger: Ledger,
        queue: QueueClient,
        hand_over: Callable[[Outcome], None],
        stopping: threading.Event,
        wake: threading.Event,
    ):
        self._config = config
        self._dsn = dsn
        self._workers = workers
        self._ledger = ledger
        self._queue = queue
        self._hand_over = hand_over
        self._stopping = stopping
        self._wake = wake
        self._threads = [
            threading.Thread(target=self._slot, name=f"autopilot-slot-{n}", daemon=True)
            for n in range(config.concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _slot(self) -> None:
        while True:
            running, low = self._ledger.next_job(self._stopping, self._begin)
            if running is None:
                return
            if low:
                self._wake.set()  # the main loop claims more
            try:
                self._run(running)
            finally:
                if self._ledger.slot_free(running):
                    self._wake.set()  # a free slot and nothing claimed for it: the main loop claims

    def _begin(self, job: Job) -> Running:
        """The attempt's Running and the context its worker gets (called under the ledger's lock:
        nothing here waits)."""
        worker = self._workers.get(job.worker)
        context = JobContext(
            job_id=job.id,
            attempt=job.attempt,
            queue=job.queue,
            node=self._config.node,
            dsn=self._dsn,
            deadline=time.monotonic() + (worker.timeout if worker else 0.0),
            progress_sink=lambda fields: self._queue.progress(job.key, fields),
        )
        return Running(job, worker, context, time.monotonic())

    def _run(self, running: Running) -> None:
        job = running.job
        if running.worker is None:
            known = ", ".join(sorted(self._workers)) or "none"
            error = f"no worker named {job.worker!r} in this runner (it has: {known})"
            self._failed(Outcome(running, error=error, discard=True))
            return
        event(
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
            event(
                logging.DEBUG,
                "worker traceback",
                job_id=job.id,
                traceback="".join(traceback.format_exception(exc)),
            )
            self._failed(Outcome(running, error=f"{type(exc).__name__}: {text(exc)}".strip()))
            return
        # the result as text here, in the slot thread: a worker's object whose str() raises must not
        # reach the completer
        summary = None if result is None else text(result)[:2000]
        if summary is not None:
            self._keep_summary(running, summary)
        self._ledger.succeeded(Outcome(running, result=summary), self._hand_over)

    def _keep_summary(self, running: Running, summary: str) -> None:
        """The worker's summary, kept with the job for complete_many to record in job_runs (a worker
        that returns nothing costs no round trip). Not kept, the run is still recorded, with the default
        message."""
        try:
            self._queue.record_result(running.key, summary)
        except Exception as exc:
            event(logging.WARNING, "job summary not kept", job_id=running.job.id, error=one_line(exc))

    def _failed(self, outcome: Outcome) -> None:
        if self._ledger.failed(outcome):
            self._wake.set()
