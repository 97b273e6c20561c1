"""The worker of backup-hourly and backup-daily: pg_dump of the configured databases, verified,
then retention (the domain code is pg_autopilot.backups)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, log, worker


@worker("backup", timeout=6 * 3600)
def backup(args: dict[str, Any], context: JobContext) -> str:
    """backup-hourly, backup-daily: pg_dump of the configured databases, verified, then retention.

    Stops (pg_dump killed, nothing kept) when the job is cancelled or passes its deadline. A retry of the
    same job backs up only the databases without a verified backup from this job yet."""
    from .. import backups  # pg_dump and friends only when a backup runs

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
