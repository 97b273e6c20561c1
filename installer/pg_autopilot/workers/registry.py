"""The runner's workers: the code behind a job's `worker` name.

A worker is a function of (args, context) registered under a name with :func:`worker`. The runner
executes a job by calling the worker of its name; what it returns is logged, what it raises fails the
attempt (retried with backoff, or discarded past max_attempts). A module of your own registers more
workers the same way and is loaded with ``autopilot runner start --worker-module your.module``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class JobContext:
    """What a worker may need beyond its args: where it runs and whether to stop early."""

    job_id: int
    attempt: int
    queue: str
    node: str
    dsn: str = field(repr=False)  # may hold a password: never in a log line of the context
    deadline: float  # time.monotonic() by which the runner stops waiting for the worker
    cancelled: threading.Event = field(default_factory=threading.Event)


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


@worker("backup", timeout=6 * 3600)
def backup(args: dict[str, Any], context: JobContext) -> str:
    """backup-hourly, backup-daily: pg_dump of the configured databases, verified, then retention.

    Stops (pg_dump killed, nothing kept) when the job is cancelled or passes its deadline. A retry of the
    same job backs up only the databases without a verified backup from this job yet."""
    from . import backups  # pg_dump and friends only when a backup runs

    result = backups.run_backup(
        context.dsn,
        args.get("kind", "manual"),
        job_id=context.job_id,
        cancelled=context.cancelled,
        deadline=context.deadline,
    )
    for problem in result.prune_errors + result.warnings:  # the backup is verified; this needs a DBA
        log.warning("backup needs attention", extra={"fields": {"job_id": context.job_id, "error": problem}})
    return result.summary()


@worker("cache_cleanup", timeout=60)
def cache_cleanup(args: dict[str, Any], context: JobContext) -> str:
    """cache-cleanup: clear the runner's in-process caches."""
    cleared = 0
    for cache in CACHES:
        if hasattr(cache, "cache_clear"):
            cache.cache_clear()
        else:
            cache.clear()
        cleared += 1
    return f"cleared {cleared} in-process caches"
