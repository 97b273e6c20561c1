"""The worker of backup-hourly and backup-daily: pg_dump of the configured databases, verified,
then retention (the domain code is pg_autopilot.backups)."""

from __future__ import annotations

import logging
from typing import Any

from .registry import JobContext, log, worker

_LEVELS = {"failed": logging.WARNING}
_EVENTS = {
    "started": "backup started",
    "dumping": "backup progress",
    "verifying": "backup verifying",
    "finished": "backup finished",
    "failed": "backup failed",
}


@worker("backup", timeout=6 * 3600)
def backup(args: dict[str, Any], context: JobContext) -> str:
    """backup-hourly, backup-daily: pg_dump of the configured databases, verified, then retention.

    Stops (pg_dump killed, nothing kept) when the job is cancelled or passes its deadline. A retry of the
    same job backs up only the databases without a verified backup from this job yet. While pg_dump runs,
    the bytes written and the rate go to the job's meta (`autopilot status`) and, every few seconds, to the
    runner's log (``backup started`` / ``backup progress`` / ``backup finished`` lines)."""
    from .. import backups  # pg_dump and friends only when a backup runs

    cadence = backups.LogCadence()

    def report(progress: backups.BackupProgress) -> None:
        fields = progress.fields()
        context.progress(progress.phase != "dumping", **fields)
        if cadence.due(progress):
            level = _LEVELS.get(progress.phase, logging.INFO)
            log.log(level, _EVENTS[progress.phase], extra={"fields": {"job_id": context.job_id, **fields}})

    result = backups.run_backup(
        context.dsn,
        args.get("kind", "manual"),
        job_id=context.job_id,
        cancelled=context.cancelled,
        deadline=context.deadline,
        progress=report,
    )
    for problem in result.prune_errors + result.warnings:  # the backup is verified; this needs a DBA
        log.warning("backup needs attention", extra={"fields": {"job_id": context.job_id, "error": problem}})
    return result.summary()
