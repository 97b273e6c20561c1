"""The runner's workers: the registry (:mod:`.registry`) and one module per built-in worker.

A new worker goes into a module of its own here, ``workers/<name>.py``, registered with
``@worker("<name>", timeout=...)`` and imported below; its domain code lives in a package of its
own (as ``backups`` does for ``backup``). Your own workers register the same way from a module
loaded with ``autopilot runner start --worker-module your.module``.
"""

from __future__ import annotations

from . import (  # noqa: F401 - importing a worker module registers it
    backup,
    cache_cleanup,
    code_ingest,
    cron_history_cleanup,
    graph_populate,
    index_reindex,
    knowledge_migration,
    planning_seed,
    rag_setup,
    registry_sync,
    template_embed,
    template_sync,
    templates_data_load,
)
from .registry import CACHES, REGISTRY, JobContext, ProgressSink, Worker, WorkerFunction, worker

__all__ = ["CACHES", "REGISTRY", "JobContext", "ProgressSink", "Worker", "WorkerFunction", "worker"]
