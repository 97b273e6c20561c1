"""The worker of index-reindex where pg_cron lives in another database: plans a cycle and runs its
REINDEX / DROP INDEX CONCURRENTLY statements at top level (the domain code is pg_autopilot.run_now,
which `autopilot run index-reindex` uses too)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, worker


@worker("index_reindex", timeout=6 * 3600)
def index_reindex(args: dict[str, Any], context: JobContext) -> str:
    """index-reindex (Sundays 03:00), enqueued by its pg_cron run where pg_cron is not in this database
    (job_catalog.cron_elsewhere_worker): there pg_cron cannot be handed the statements one at a time
    (index-reindex-step), so the runner's own session runs them, each at top level."""
    from ..run_now import run_index_reindex_on_runner

    with context.connect(autocommit=True) as conn:
        return run_index_reindex_on_runner(conn, cancelled=context.cancelled)
