"""The backups part of `autopilot status`."""

from __future__ import annotations

import os
from datetime import datetime

import psycopg

from ..errors import BackupFailed
from .restoring import half_restored
from .rows import _backup_rows
from .settings import Settings, read_settings
from .trust import check_backup


def backup_status(conn: psycopg.Connection, now: datetime) -> dict | None:
    """The last verified backup of every configured database that can be trusted, and whether it is
    overdue; the rows not trusted; half-restored databases. None when the installed autopilot has no backup
    settings (before 0.3.0).

    The checks are the cheap ones of check_backup: times not in the future, the file named as the runner
    names it in backups.directory and, where that directory can be read on this host, the archive there with
    its manifest naming it (no sha256: restore computes that). ``files_checked`` says whether the files were
    looked at."""
    has = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM autopilot.settings WHERE name = 'backups.overdue_after')"
    ).fetchone()[0]
    if not has:
        return None
    try:
        settings = read_settings(conn)
    except BackupFailed:  # e.g. an invalid backups.format: the backup itself reports it
        return None
    try:
        files = os.access(settings.directory, os.R_OK | os.X_OK) and settings.directory.is_dir()
    except OSError:
        files = False
    databases = [_database_status(conn, database, settings, now, files) for database in settings.databases]
    restoring = half_restored(conn)
    return {
        "overdue_after": settings.overdue_after,
        "directory": str(settings.directory),
        "files_checked": files,
        "databases": databases,
        "half_restored": [r for r in restoring if not r["restoring"]],
        "restoring": [r for r in restoring if r["restoring"]],
        "overdue": any(d["overdue"] for d in databases),
    }


def _database_status(
    conn: psycopg.Connection, database: str, settings: Settings, now: datetime, files: bool
) -> dict:
    """The backups of one database in `autopilot status`: its last verified backup that can be trusted (the
    newer verified rows that cannot are listed, not counted), its last failure, whether it is overdue."""
    row, untrusted = None, []
    for candidate in _backup_rows(
        conn,
        "database_name = %s AND status = 'verified' ORDER BY finished_at DESC, id DESC",
        [database],
    ):
        problem = check_backup(candidate, settings.directory, now, files=files)
        if problem is None:
            row = candidate
            break
        untrusted.append(f"#{candidate.id}: {problem}")
    last_failed = conn.execute(
        "SELECT finished_at, error FROM autopilot.backup_metadata "
        "WHERE database_name = %s AND status = 'failed' ORDER BY id DESC LIMIT 1",
        [database],
    ).fetchone()
    age = now - row.finished_at if row else None
    return {
        "database": database,
        "last_verified_id": row.id if row else None,
        "last_verified_kind": row.kind if row else None,
        "last_verified_at": row.finished_at if row else None,
        "age": age,
        "size_bytes": row.size_bytes if row else None,
        "file_path": row.file_path if row else None,
        "last_failure_at": last_failed[0] if last_failed else None,
        "last_failure": last_failed[1] if last_failed else None,
        "untrusted": untrusted,  # newer verified rows that cannot be trusted (not counted)
        "overdue": age is None or age > settings.overdue_after,
    }
