"""Archive files in the backup directory: their names, the intent record and manifest beside them, their
sha256, fsync, removal, and the directory itself."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ..errors import BackupFailed

MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".partial"
# written beside the .partial before pg_dump starts: what the cleanup of an abandoned backup checks
INTENT_SUFFIX = ".intent.json"
_EXTENSIONS = {"custom": "dump", "directory": "dir"}
_CHUNK = 1 << 20


def _no_poll() -> None:
    """The default ``poll`` of what reads an archive back: never stops it."""
    return None


def directory_digest(files: dict[str, str]) -> str:
    """The sha256 of a directory archive: of the sha256sum-style listing of its files, sorted by name."""
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def _hash_file(
    path: Path, poll: Callable[[], None] = _no_poll, read: Callable[[int], None] | None = None
) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            poll()
            h.update(chunk)
            if read is not None:
                read(len(chunk))
    return h.hexdigest()


def hash_archive(
    path: Path, poll: Callable[[], None] = _no_poll, read: Callable[[int], None] | None = None
) -> tuple[str, int, dict[str, str] | None]:
    """(sha256, size, per-file digests of a directory archive) without any verification. ``read`` is told
    the size of every chunk read (a progress bar)."""
    if path.is_dir():
        files = {
            str(p.relative_to(path)): _hash_file(p, poll, read)
            for p in sorted(path.rglob("*"))
            if p.is_file()
        }
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return directory_digest(files), size, files
    return _hash_file(path, poll, read), path.stat().st_size, None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """fsync a file, or every file and directory of a directory archive (bottom up)."""
    if path.is_dir():
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files:
                os.chmod(Path(root) / name, 0o600)
                _fsync_path(Path(root) / name)
            for name in dirs:
                _fsync_path(Path(root) / name)
        os.chmod(path, 0o700)
    else:
        os.chmod(path, 0o600)
    _fsync_path(path)


def _remove(path: Path) -> bool:
    """Delete a file or a directory archive; True when something was there. Raises OSError when it
    cannot be deleted (whatever could not be deleted is still there)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry, no LOGNAME
        return str(os.geteuid())


def _unreadable(directory: Path) -> str | None:
    """None when the files of the backup directory can be looked at from here (this host, this OS user), else
    why not."""
    try:
        if not directory.is_dir():
            return f"the backup directory {directory} does not exist on this host"
    except OSError as exc:
        return f"cannot look at the backup directory {directory}: {exc.strerror or exc}"
    if not os.access(directory, os.R_OK | os.X_OK):
        return f"the backup directory {directory} is not readable by the OS user {_user()}"
    return None


def _directory_problem(directory: Path, problem: str) -> BackupFailed:
    user = _user()
    return BackupFailed(
        f"cannot use the backup directory {directory}: {problem}",
        hint=f"Backups are written as the OS user {user}: create the directory for it "
        f"(install -d -m 700 -o {user} {directory}), or fix its owner and mode (chown {user} {directory}; "
        f"chmod 700 {directory}), or point backups.directory (or --directory) at a directory {user} owns.",
    )


def _prepare_directory(directory: Path) -> None:
    """Create the directory 0700, or check an existing one is private and writable; BackupFailed with what
    to do otherwise."""
    try:
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.mkdir(mode=0o700)
            os.chmod(directory, 0o700)  # mkdir's mode is subject to the umask
            _fsync_path(directory.parent)
        elif not directory.is_dir():
            raise BackupFailed(
                f"backups.directory {directory} exists and is not a directory",
                hint="Set backups.directory (or --directory) to a directory.",
            )
        else:
            mode = directory.stat().st_mode & 0o777
            if mode & 0o077:
                # tightening it ourselves could lock others out of a shared directory such as /tmp
                raise BackupFailed(
                    f"backup directory {directory} is accessible to other users (mode {mode:04o}); "
                    "backups hold every row of the database",
                    hint=f"chmod 700 {directory}, or set backups.directory to a directory of its own.",
                )
        # can we create (and delete) a file in it? (a read-only mount, another owner, an immutable directory)
        fd, probe = tempfile.mkstemp(prefix=".autopilot-probe-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(directory) else ""
        raise _directory_problem(directory, f"{exc.strerror or exc}{where}") from exc


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_name(path.name + PARTIAL_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_path(path.parent)


def manifest_path(archive: Path) -> Path:
    return archive.with_name(archive.name + MANIFEST_SUFFIX)


def _safe_name(database: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", database)[:64] or "_"


def archive_name(database: str, kind: str, started_at: datetime, backup_id: int, fmt: str) -> str:
    """The one name the runner gives the archive of a backup row (the row's database, kind, start, id)."""
    stamp = started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{_safe_name(database)}-{kind}-{stamp}-{backup_id}.{_EXTENSIONS[fmt]}"


def intent_path(archive: Path) -> Path:
    return archive.with_name(archive.name + INTENT_SUFFIX)


def _leftovers(archive: Path) -> list[Path]:
    """Every file the runner may have made for an archive (.partial, archive, manifest and their temporary
    files), the intent record last."""
    manifest, intent = manifest_path(archive), intent_path(archive)
    return [
        archive.with_name(archive.name + PARTIAL_SUFFIX),
        archive,
        manifest,
        manifest.with_name(manifest.name + PARTIAL_SUFFIX),
        intent.with_name(intent.name + PARTIAL_SUFFIX),
        intent,
    ]


def _resolved(directory: Path) -> Path:
    return Path(os.path.realpath(directory))
