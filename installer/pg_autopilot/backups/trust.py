"""Which rows of backup_metadata to trust (check_backup)."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .archives import _no_poll, _resolved, _safe_name, hash_archive, manifest_path
from .rows import BackupRow
from .settings import KINDS

# Which rows of backup_metadata to trust.
#
# The runner's database role can write backup_metadata, so a row proves nothing by itself. The files the
# runner made do: a row is the runner's own backup only when its file is in the backup directory (resolved:
# no symbolic link or `..` leads out of it), named exactly as the runner names that row's archive, with the
# runner's manifest beside it naming the same backup, sha256, size and times, and its times not in the future
# (a verified backup); or with the runner's intent record beside it (the leftovers of a backup that never
# finished). Nothing is ever deleted, counted toward retention, shown as fresh or restored on
# the word of a row alone.

# a backup row's times may be this far ahead of the database's clock and still be trusted
CLOCK_SKEW = timedelta(minutes=5)


def own_archive(row: BackupRow, directory: Path) -> tuple[Path | None, str | None]:
    """(where the archive of ``row`` is, None) when its file_path is exactly where and how the runner names
    that row's archive in ``directory``; else (None, why not). Only the path is looked at (and the directory
    resolved), not the files."""
    if not row.file_path:
        return None, "it names no file"
    path = Path(row.file_path)
    if not path.is_absolute() or ".." in path.parts or "\x00" in row.file_path:
        return None, f"its file {row.file_path!r} is not an absolute path without '..'"
    if row.kind not in KINDS:
        return None, f"its kind {row.kind!r} is unknown"
    pattern = rf"{re.escape(_safe_name(row.database))}-{row.kind}-\d{{8}}T\d{{6}}Z-{row.id}\.(?:dump|dir)"
    if not re.fullmatch(pattern, path.name):
        return None, f"its file {path.name!r} is not named as the runner names backup #{row.id}"
    where = _resolved(directory)
    if _resolved(path.parent) != where:
        return None, f"its file {row.file_path} is not in the backup directory {where}"
    return where / path.name, None


def _read_record(path: Path) -> dict | None:
    """A manifest or intent record: a small regular JSON file (never through a symbolic link); None else."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO never blocks
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(1 << 20)
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _record_names(record: dict | None, row: BackupRow, archive: Path, identity: dict | None) -> bool:
    return (
        record is not None
        and record.get("backup_id") == row.id
        and record.get("file") == archive.name
        and record.get("database") == row.database
        and record.get("kind") == row.kind
        and (identity is None or record.get("recorded_in") == identity)
    )


def check_backup(
    row: BackupRow,
    directory: Path,
    now: datetime,
    *,
    identity: dict | None = None,
    files: bool = True,
    full: bool = False,
    poll: Callable[[], None] = _no_poll,
) -> str | None:
    """None when a verified row can be trusted, else why not: its times are not in the future (beyond
    CLOCK_SKEW), its archive is the runner's (own_archive), and -- with ``files`` -- the archive is there (not
    a symbolic link) with the runner's manifest beside it naming this backup with the row's sha256, size and
    times (a row moved in time is not trusted); ``identity``: recorded by this autopilot database; ``full``:
    the archive's sha256 is computed and must match (the others are cheap)."""
    problem = _row_problem(row, now, identity)
    if problem is not None:
        return problem
    archive, problem = own_archive(row, directory)
    if problem:
        return problem
    if not files:
        return None
    try:
        st = os.lstat(archive)
    except OSError:
        return f"its archive {archive} is missing"
    if stat.S_ISLNK(st.st_mode):
        return f"its archive {archive} is a symbolic link"
    problem = _manifest_problem(row, archive, identity)
    if problem is not None:
        return problem
    if full:
        return _digest_problem(row, archive, poll)
    return None


def _row_problem(row: BackupRow, now: datetime, identity: dict | None) -> str | None:
    """Why the row alone cannot be trusted: a time in the future, no finish time or sha256, recorded by
    another autopilot database; else None."""
    for label, moment in (
        ("start", row.started_at),
        ("finish", row.finished_at),
        ("verification", row.verified_at),
    ):
        if moment is not None and moment > now + CLOCK_SKEW:
            return f"its {label} time {moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC is in the future"
    if row.finished_at is None or not row.sha256:
        return "it has no finish time or no sha256"
    if identity is not None and row.details.get("recorded_in") != identity:
        return "it was recorded by another autopilot database"
    return None


def _manifest_problem(row: BackupRow, archive: Path, identity: dict | None) -> str | None:
    """Why the manifest beside ``archive`` does not vouch for the row (missing, naming another backup, sha256,
    size or times); else None."""
    manifest = _read_record(manifest_path(archive))
    if manifest is None:
        return f"its manifest {manifest_path(archive).name} is missing or unreadable"
    if (
        not _record_names(manifest, row, archive, identity)
        or manifest.get("sha256") != row.sha256
        or (manifest.get("size_bytes") != row.size_bytes)
    ):
        return f"its manifest {manifest_path(archive).name} does not name this backup, its sha256 and size"
    for label, key, moment in (
        ("start", "started_at", row.started_at),
        ("finish", "finished_at", row.finished_at),
        ("verification", "verified_at", row.verified_at),
    ):
        try:
            same = moment is not None and datetime.fromisoformat(manifest.get(key)) == moment
        except (TypeError, ValueError):
            same = False
        if not same:  # a row moved in time (to be counted as the newest, say) is not the runner's record
            return f"its {label} time differs from its manifest's"
    return None


def _digest_problem(row: BackupRow, archive: Path, poll: Callable[[], None]) -> str | None:
    """Why the archive's sha256, computed now, is not the row's (it cannot be read, it differs); else None."""
    try:
        digest, _size, _files = hash_archive(archive, poll)
    except OSError as exc:
        return f"cannot read {archive}: {exc.strerror or exc}"
    if digest != row.sha256:
        return (
            f"{archive} does not match its recorded sha256 (recorded {row.sha256}, file {digest}): it "
            "changed since it was verified"
        )
    return None
