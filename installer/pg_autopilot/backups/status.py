"""The backups part of `autopilot status`."""

from __future__ import annotations

import os
from datetime import datetime

import psycopg

from ..errors import BackupFailed
from .archives import _unreadable
from .restoring import half_restored
from .rows import LOCK_CLASS, BackupRow, _backup_rows
from .settings import Settings, read_settings
from .trust import check_backup, own_archive

# newer backups marked missing or corrupt shown in detail, per database (`autopilot backups list`: all)
SHOWN_PROBLEMS = 3


def backup_status(conn: psycopg.Connection, now: datetime) -> dict | None:
    """The last verified backup of every configured database that can be trusted, and whether it is
    overdue; the rows not trusted; half-restored databases. None when the installed autopilot has no backup
    settings (before 0.3.0).

    The checks are the cheap ones of check_backup: times not in the future, the file named as the runner
    names it in backups.directory and, where that directory can be read on this host, the archive there with
    its manifest naming it (no sha256: restore and `autopilot backups verify` compute that). A newer verified
    backup whose archive is gone is reported as ``file_missing`` (not counted); so are the newer backups
    `autopilot backups verify` marked missing or corrupt. ``files_checked`` says whether the files were
    looked at (``files_not_checked``: why not). Backups running now are listed with their latest progress
    report."""
    has = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM autopilot.settings WHERE name = 'backups.overdue_after')"
    ).fetchone()[0]
    if not has:
        return None
    try:
        settings = read_settings(conn)
    except BackupFailed:  # e.g. an invalid backups.format: the backup itself reports it
        return None
    not_checked = _unreadable(settings.directory)
    files = not_checked is None
    databases = [_database_status(conn, database, settings, now, files) for database in settings.databases]
    restoring = half_restored(conn)
    return {
        "overdue_after": settings.overdue_after,
        "directory": str(settings.directory),
        "files_checked": files,
        "files_not_checked": not_checked,
        "databases": databases,
        "half_restored": [r for r in restoring if not r["restoring"]],
        "restoring": [r for r in restoring if r["restoring"]],
        "overdue": any(d["overdue"] for d in databases),
    }


def _database_status(
    conn: psycopg.Connection, database: str, settings: Settings, now: datetime, files: bool
) -> dict:
    """The backups of one database in `autopilot status`: its last verified backup that can be trusted (the
    newer verified rows whose file is gone, or that cannot be trusted, are listed, not counted), the newer
    ones marked missing or corrupt, its last failure, the backups running now, whether it is overdue."""
    row, untrusted, missing = None, [], []
    for candidate in _backup_rows(
        conn,
        "database_name = %s AND status = 'verified' ORDER BY finished_at DESC, id DESC",
        [database],
    ):
        problem = check_backup(candidate, settings.directory, now, files=files)
        if problem is None:
            row = candidate
            break
        if files and _archive_gone(candidate, settings):
            missing.append(_problem_entry(candidate, "file missing", None))
        else:
            untrusted.append(f"#{candidate.id}: {problem}")
    marked = [
        _problem_entry(r, "file missing" if r.status == "missing" else "failed verification", error)
        for r, error in _marked(conn, database, row)
    ]
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
        # newer verified rows whose archive is gone, and rows `autopilot backups verify` marked missing or
        # corrupt since the last verified one, newest first
        "file_missing": missing,
        "marked": marked[:SHOWN_PROBLEMS],
        "marked_more": max(0, len(marked) - SHOWN_PROBLEMS),
        "in_progress": _running(conn, database),
        "overdue": age is None or age > settings.overdue_after,
    }


def _archive_gone(row: BackupRow, settings: Settings) -> bool:
    """The runner's archive of ``row`` is not in the backup directory (a stat; the directory is readable)."""
    archive, problem = own_archive(row, settings.directory)
    return problem is None and not os.path.lexists(archive)


def _problem_entry(row: BackupRow, problem: str, error: str | None) -> dict:
    """A newer backup that does not count; ``checked_at``: when `autopilot backups verify` marked it."""
    check = row.details.get("last_check")
    checked_at = None
    if isinstance(check, dict) and isinstance(check.get("at"), str):
        try:
            checked_at = datetime.fromisoformat(check["at"])
        except ValueError:  # the row is the runner role's to write
            checked_at = None
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "finished_at": row.finished_at,
        "file_path": row.file_path,
        "problem": problem,
        "error": error,
        "checked_at": checked_at if row.status in ("missing", "corrupt") else None,
    }


def _marked(
    conn: psycopg.Connection, database: str, last: BackupRow | None
) -> list[tuple[BackupRow, str | None]]:
    """The backups of ``database`` marked missing or corrupt that finished after ``last`` (all when None),
    newest first, with their error."""
    found = conn.execute(
        "SELECT id, error FROM autopilot.backup_metadata WHERE database_name = %s "
        "AND status IN ('missing', 'corrupt') AND (%s::timestamptz IS NULL OR finished_at > %s) "
        "ORDER BY finished_at DESC, id DESC",
        [database, last.finished_at if last else None, last.finished_at if last else None],
    ).fetchall()
    if not found:
        return []
    errors = dict(found)
    rows = _backup_rows(conn, "id = ANY(%s) ORDER BY finished_at DESC, id DESC", [list(errors)])
    return [(r, errors[r.id]) for r in rows]


def _running(conn: psycopg.Connection, database: str) -> list[dict]:
    """The backups of ``database`` this autopilot database recorded that are running now (pg_dump or the
    verification): when they started, their latest progress report (details.progress), and whether their
    process is alive (its advisory lock is held; a row whose lock is free was abandoned, and the next backup
    cleans it up). A restored copy inherits the row of the backup that was running when it was dumped: not
    its own, never cleaned up by it, not shown."""
    found = conn.execute(
        "SELECT b.id, b.kind, b.status, b.started_at, b.details -> 'progress', "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_locks AS l WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d "
        "WHERE d.datname = pg_catalog.current_database()) "
        "AND l.classid = %s::oid AND l.objid = (b.id %% 2147483647)::oid AND l.objsubid = 2) "
        "FROM autopilot.backup_metadata AS b WHERE b.database_name = %s "
        "AND b.status IN ('running', 'succeeded') "
        "AND b.details -> 'recorded_in' ->> 'database' = pg_catalog.current_database() ORDER BY b.id",
        [LOCK_CLASS, database],
    ).fetchall()
    return [
        {
            "id": r[0],
            "kind": r[1],
            "status": r[2],
            "started_at": r[3],
            "progress": r[4] if isinstance(r[4], dict) else None,
            "live": r[5],
        }
        for r in found
    ]
