"""The registry of workers: the code behind a job's `worker` name, and what a worker is given.

A worker is a function of (args, context) registered under a name with :func:`worker`. The runner
executes a job by calling the worker of its name; what it returns is logged, what it raises fails the
attempt (retried with backoff, or discarded past max_attempts). A module of your own registers more
workers the same way and is loaded with ``autopilot runner start --worker-module your.module``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from ..db import connect

ProgressSink = Callable[[dict[str, Any]], None]


@dataclass
class JobContext:
    """What a worker gets beyond its args: where it runs, whether to stop early (``cancelled``, set
    when the job is cancelled, rescued or past its deadline), connections to the database
    (:meth:`connect`) and a way to report progress (:meth:`progress`), so that it needs no plumbing
    of its own."""

    job_id: int
    attempt: int
    queue: str
    node: str
    dsn: str = field(repr=False)  # may hold a password: never in a log line of the context
    deadline: float  # time.monotonic() by which the runner stops waiting for the worker
    cancelled: threading.Event = field(default_factory=threading.Event)
    # where progress goes: the runner records it in the job's meta (autopilot.jobs.meta.progress)
    progress_sink: ProgressSink | None = field(default=None, repr=False)
    progress_interval: float = 1.0  # seconds: reports in between are kept, only the latest is sent
    _progress_sent: float = field(default=float("-inf"), repr=False)

    def connect(self, *, autocommit: bool = True, **overrides: str) -> psycopg.Connection:
        """A new connection to the job's database, as the runner's own are made (its search_path
        pinned to pg_catalog, so the SQL a worker sends resolves no name through a writable schema).
        The worker closes it (``with context.connect() as conn``)."""
        return connect(self.dsn, autocommit=autocommit, **overrides)

    def progress(self, final: bool = False, **fields: Any) -> None:
        """Reports how far the job has come (e.g. ``files=120, of=800``); ``autopilot status`` shows
        the latest report of each executing job. Reports closer together than ``progress_interval``
        are dropped, unless ``final``; a report that cannot be recorded is dropped too (progress is
        never worth failing the job for)."""
        now = time.monotonic()
        if self.progress_sink is None or (not final and now - self._progress_sent < self.progress_interval):
            return
        self._progress_sent = now
        try:
            self.progress_sink(fields)
        except Exception as exc:
            log.warning("progress not recorded", extra={"fields": {"job_id": self.job_id, "error": str(exc)}})


WorkerFunction = Callable[[dict[str, Any], JobContext], Any]


@dataclass(frozen=True)
class Worker:
    name: str
    function: WorkerFunction
    timeout: float  # seconds an attempt may take before the runner fails it


REGISTRY: dict[str, Worker] = {}

# under the runner's logger (its JSON handler), silent where the runner's logging is not configured
log = logging.getLogger("autopilot.runner.workers")
log.addHandler(logging.NullHandler())

# in-process caches that cache-cleanup clears (anything with a cache_clear(), or a dict)
CACHES: list[Any] = []


def worker(name: str, *, timeout: float = 3600.0) -> Callable[[WorkerFunction], WorkerFunction]:
    """Register ``function`` as the worker ``name`` (a job's autopilot.jobs.worker)."""

    def register(function: WorkerFunction) -> WorkerFunction:
        REGISTRY[name] = Worker(name, function, timeout)
        return function

    return register
