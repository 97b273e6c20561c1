"""What backups there are and whether their files still hold them: `autopilot backups list` (the rows, and a
cheap look at each kept backup's file) and `autopilot backups verify` (each file read again, its sha256
compared with the recorded one).

A verification records what it found in the row: a backup whose file is gone becomes ``missing``, one whose
file no longer has its recorded sha256 (or size, or cannot be read: an I/O error) becomes ``corrupt``;
either no longer counts as a backup (`status`, retention and restore take only ``verified`` rows). One that
checks out again (the file put back, the disk mounted again) becomes ``verified`` again: its bytes are those
that were read back when it was taken. Every change is guarded by the status it expects (a backup pruned
meanwhile stays pruned), and the outcome goes to ``details.last_check``.

Nothing is marked on the word of a row alone, nor when nothing could be looked at: the backup directory must
be there and readable on this host (or a disk that is not mounted would mark every backup missing), the
archive must be the runner's own (see trust.own_archive), its manifest must name it (trust), and a file this
OS user may not read is reported, not marked."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from ..errors import BackupFailed
from .archives import _unreadable, _user, hash_archive
from .rows import _ROW_COLUMNS, BackupRow
from .settings import read_settings
from .trust import _manifest_problem, _row_problem, own_archive

# the rows whose file is worth looking at: kept backups, and those a verification found wanting
CHECKED_STATUSES = ("verified", "missing", "corrupt")
# what a verification found: the backup is fine, or (PROBLEMS) it is not, or could not be checked
OUTCOMES = ("ok", "missing", "corrupt", "unreadable", "untrusted", "not checked", "changed")
PROBLEMS = frozenset({"missing", "corrupt", "unreadable", "untrusted", "not checked"})


@dataclass
class ListedBackup:
    row: BackupRow
    error: str | None
    # of a verified/missing/corrupt row: "present", "missing", or None when not looked at (the directory is
    # not readable here, or the row does not name the runner's archive: ``file_note`` says why)
    file: str | None
    file_note: str | None = None

    def as_json(self) -> dict:
        r = self.row
        return {
            "id": r.id,
            "database": r.database,
            "kind": r.kind,
            "status": r.status,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
            "verified_at": r.verified_at.isoformat() if r.verified_at else None,
            "size_bytes": r.size_bytes,
            "sha256": r.sha256,
            "file_path": r.file_path,
            "file": self.file,
            "file_note": self.file_note,
            "error": self.error,
            "format": r.details.get("format"),
            "job_id": r.details.get("job_id"),
            "last_check": r.details.get("last_check"),
        }


def _rows(conn: psycopg.Connection, where: str, params: list) -> list[tuple[BackupRow, str | None]]:
    """(row, its error) for the rows of backup_metadata matching ``where``."""
    found = conn.execute(
        f"SELECT {_ROW_COLUMNS}, error FROM autopilot.backup_metadata WHERE {where}", params
    ).fetchall()
    return [(BackupRow(*r[:-2], r[-2] or {}), r[-1]) for r in found]


def list_backups(
    conn: psycopg.Connection,
    *,
    database: str | None = None,
    statuses: tuple[str, ...] | None = None,
    limit: int | None = 50,
    directory: str | Path | None = None,
) -> tuple[list[ListedBackup], Path, str | None]:
    """The backups recorded in autopilot.backup_metadata, newest first (of ``database``, in ``statuses``, at
    most ``limit``), with a look (a stat, no read) at the file of every verified, missing or corrupt one:
    (the backups, the directory looked in, why the files were not looked at -- None when they were)."""
    where = Path(directory) if directory is not None else read_settings(conn).directory
    unreadable = _unreadable(where)
    found = _rows(
        conn,
        "(%(database)s::text IS NULL OR database_name = %(database)s) "
        "AND (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[])) "
        "ORDER BY started_at DESC, id DESC LIMIT %(limit)s",
        {"database": database, "statuses": list(statuses) if statuses else None, "limit": limit},
    )
    listed = []
    for row, error in found:
        state, note = None, None
        if row.status in CHECKED_STATUSES:
            archive, note = own_archive(row, where)
            if archive is not None and unreadable is None:
                state, note = _look(archive)
            elif archive is not None:
                note = unreadable
        listed.append(ListedBackup(row, error, state, note))
    return listed, where, unreadable


def _look(archive: Path) -> tuple[str | None, str | None]:
    """("present" | "missing" | None, why None): an lstat of the archive."""
    try:
        st = os.lstat(archive)
    except FileNotFoundError:
        return "missing", None
    except OSError as exc:
        return None, f"cannot look at {archive}: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return None, f"{archive} is a symbolic link"
    return "present", None


@dataclass
class Checked:
    """What the verification of one backup found (``outcome``, one of OUTCOMES), and its status before and
    after (``was`` and ``now``: equal when nothing was marked)."""

    id: int
    database: str | None
    kind: str | None
    finished_at: datetime | None
    path: str | None
    outcome: str
    message: str
    was: str | None
    now: str | None
    size_bytes: int | None = None
    seconds: float = 0.0

    @property
    def problem(self) -> bool:
        return self.outcome in PROBLEMS

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "database": self.database,
            "kind": self.kind,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "file_path": self.path,
            "outcome": self.outcome,
            "message": self.message,
            "status_before": self.was,
            "status": self.now,
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Verified:
    directory: Path
    checked: list[Checked] = field(default_factory=list)

    @property
    def problems(self) -> list[Checked]:
        return [c for c in self.checked if c.problem]


# reading: told (backup id, archive, bytes expected) when a file is about to be read, then the size of each
# chunk read (a progress bar)
Reading = Callable[[int, Path, int], Callable[[int], None] | None]


def verify_backups(
    conn: psycopg.Connection,
    ids: list[int] | None,
    *,
    database: str | None = None,
    directory: str | Path | None = None,
    reading: Reading | None = None,
) -> Verified:
    """Read the file of each backup again and compare its sha256 with the recorded one; record what was found
    (see the module's docstring). ``ids``: these backups; None: every verified, missing or corrupt one (of
    ``database``), newest first. ``directory``: where the backups are (default backups.directory).

    Raises BackupFailed, marking nothing, when the backup directory cannot be looked at from here."""
    where = Path(directory) if directory is not None else read_settings(conn).directory
    unreadable = _unreadable(where)
    if unreadable is not None:
        raise BackupFailed(
            f"cannot verify backups: {unreadable}; nothing was checked or marked",
            hint="Run `autopilot backups verify` on the host the runner writes the backups on, as the OS "
            "user it runs as, or pass --directory (where the backups are).",
        )
    result = Verified(where)
    if ids is None:
        found = _rows(
            conn,
            "status = ANY(%s) AND (%s::text IS NULL OR database_name = %s) "
            "ORDER BY finished_at DESC, id DESC",
            [list(CHECKED_STATUSES), database, database],
        )
    else:
        found = _rows(conn, "id = ANY(%s) ORDER BY id", [ids])
        known = {row.id for row, _ in found}
        for backup_id in ids:
            if backup_id not in known:
                result.checked.append(
                    Checked(
                        backup_id,
                        None,
                        None,
                        None,
                        None,
                        "not checked",
                        f"no backup #{backup_id} in autopilot.backup_metadata (`autopilot backups list`)",
                        None,
                        None,
                    )
                )
    for row, _error in found:
        result.checked.append(_verify_one(conn, row, where, reading))
    return result


def _verify_one(conn: psycopg.Connection, row: BackupRow, where: Path, reading: Reading | None) -> Checked:
    def outcome(kind: str, message: str, **more) -> Checked:
        return Checked(
            row.id, row.database, row.kind, row.finished_at, row.file_path, kind, message,
            row.status, row.status, row.size_bytes, **more,
        )  # fmt: skip

    if row.status not in CHECKED_STATUSES:
        return outcome(
            "not checked",
            f"it is {row.status}: only verified backups (and those marked missing or corrupt) have a file to "
            "check",
        )
    now = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]
    problem = _row_problem(row, now, None)
    archive = None
    if problem is None:
        archive, problem = own_archive(row, where)
    if problem is not None:
        return outcome("untrusted", f"not checked: the record is not trusted ({problem})")
    try:
        st = os.lstat(archive)
    except FileNotFoundError:
        return _mark(conn, outcome("missing", f"file missing: {archive}"), "missing", {"result": "missing"})
    except OSError as exc:
        return outcome("unreadable", f"cannot look at {archive}: {exc.strerror or exc}")
    if stat.S_ISLNK(st.st_mode):
        return outcome("untrusted", f"not checked: {archive} is a symbolic link")
    problem = _manifest_problem(row, archive, None)
    if problem is not None:
        return outcome("untrusted", f"not checked: {problem}")
    started = time.monotonic()
    read = reading(row.id, archive, row.size_bytes or 0) if reading is not None else None
    try:
        digest, size, _files = hash_archive(archive, read=read)
    except FileNotFoundError:  # deleted while it was read
        return _mark(conn, outcome("missing", f"file missing: {archive}"), "missing", {"result": "missing"})
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            return outcome("unreadable", f"cannot read {archive} as the OS user {_user()}: {exc.strerror}")
        found = outcome("corrupt", f"cannot read {archive}: {exc.strerror or exc}")
        return _mark(conn, found, "corrupt", {"result": "corrupt", "error": str(exc.strerror or exc)})
    seconds = time.monotonic() - started
    check = {"result": "ok", "sha256": digest, "size_bytes": size, "seconds": round(seconds, 3)}
    if digest != row.sha256 or size != row.size_bytes:
        found = outcome(
            "corrupt",
            f"failed verification: {archive} has sha256 {digest} ({size} bytes), recorded {row.sha256} "
            f"({row.size_bytes} bytes): it changed since it was verified",
            seconds=seconds,
        )
        return _mark(conn, found, "corrupt", {**check, "result": "corrupt"})
    message = "sha256 matches" + (f" (was {row.status}: verified again)" if row.status != "verified" else "")
    return _mark(conn, outcome("ok", message, seconds=seconds), "verified", check)


def _mark(conn: psycopg.Connection, found: Checked, status: str, check: dict) -> Checked:
    """Record ``status`` (and the error, for a missing or corrupt backup) and the check in the row, unless it
    changed meanwhile (then ``found`` becomes a "changed" outcome)."""
    error = None if status == "verified" else found.message
    changed = conn.execute(
        "UPDATE autopilot.backup_metadata SET status = %s, error = %s, "
        "details = details || pg_catalog.jsonb_build_object('last_check', "
        "%s::jsonb || pg_catalog.jsonb_build_object('at', pg_catalog.clock_timestamp())) "
        "WHERE id = %s AND status = %s",
        [status, error, Jsonb(check), found.id, found.was],
    ).rowcount
    if changed:
        found.now = status
        return found
    row = conn.execute("SELECT status FROM autopilot.backup_metadata WHERE id = %s", [found.id]).fetchone()
    found.now = row[0] if row else None
    found.outcome = "changed"
    found.message = f"changed while it was checked (it is now {found.now or 'deleted'}): not marked"
    return found
