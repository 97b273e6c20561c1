"""The worker of cron-history-cleanup where pg_cron lives in another database: prunes
cron.job_run_details there (the domain code is pg_autopilot.cron_history)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, worker


@worker("cron_history_cleanup", timeout=3600)
def cron_history_cleanup(args: dict[str, Any], context: JobContext) -> str:
    """cron-history-cleanup (daily 00:30), enqueued by its pg_cron run where pg_cron is not in this
    database (job_catalog.cron_elsewhere_worker): deletes, in pg_cron's database, the runs that ended
    before cron_history.retention, in batches of cleanup.batch_size, each committed."""
    from ..cron_history import prune

    result = prune(
        context.dsn,
        cancelled=context.cancelled,
        deadline=context.deadline,
        progress=lambda final=False, **fields: context.progress(final, **fields),
    )
    context.progress(final=True, deleted=result.deleted, batches=result.batches)
    return result.line()
