"""pg_dump backups (backup-hourly, backup-daily, `autopilot runner backup`) and their restore.

One backup of one database, in order:

1. a ``running`` row in ``autopilot.backup_metadata`` is committed, and this session holds an advisory
   lock on it for as long as the backup runs (a ``running`` row whose lock is free was abandoned by a
   killed runner: the next backup marks it failed and removes its leftovers);
2. ``pg_dump`` (custom format, or directory format with ``--jobs``) writes ``<name>.partial`` with
   umask 077, ``--lock-wait-timeout`` and ``--no-password``; the password, if the DSN has one, goes
   through a private passfile (``PGPASSFILE``), never the command line;
3. the archive is fsynced (every file of a directory archive), renamed to its final name, and the
   directory fsynced: only then is the row ``succeeded``;
4. verification reads the whole archive back: ``pg_restore --file=/dev/null`` decompresses every data
   block (``pg_restore --list`` reads only the table of contents and passes a truncated archive). For
   the custom format the file is tailed into pg_restore *while* pg_dump writes it, on the other core,
   so verifying adds little wall time (see ``_dump``); then the final file's size is compared with what
   was read back, its sha256 taken and its rewritten table of contents listed. A directory archive is
   read back after the dump while its files are hashed;
5. a JSON manifest is written beside the archive (temp file, fsync, rename) and the row becomes
   ``verified``; then older verified backups of the same kind and database beyond
   ``backups.<kind>_keep`` are deleted (files and manifest; their rows become ``pruned``).

Anything failing leaves no final-named file and no manifest, a ``failed`` row with pg_dump's own
message, and raises BackupFailed (the runner retries it with backoff).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from . import __version__, installer
from .db import connect, resolve_dsn
from .errors import AutopilotError, BackupFailed, RestoreFailed, translate

KINDS = ("hourly", "daily", "manual")
FORMATS = ("custom", "directory")
MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".partial"
# advisory lock (int4, int4) space: (this class, backup id) is held while a backup runs
LOCK_CLASS = 0x6170_6275  # "apbu"
_CHUNK = 1 << 20

# Test hook: called in the pg_dump child before exec (e.g. to set RLIMIT_FSIZE and simulate a full disk).
child_setup: Callable[[], None] | None = None


# -- settings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    directory: Path
    databases: list[str]
    format: str
    parallel_jobs: int
    lock_wait_timeout: timedelta
    keep: dict[str, int]
    overdue_after: timedelta


def read_settings(conn: psycopg.Connection) -> Settings:
    values = dict(
        conn.execute(
            "SELECT s.name, autopilot.get_setting(s.name) FROM autopilot.settings AS s"
            " WHERE s.name LIKE 'backups.%'"
        ).fetchall()
    )
    missing = [f"backups.{n}" for n in ("directory", "databases", "format", "overdue_after")]
    if any(name not in values for name in missing):
        raise BackupFailed(
            "the installed autopilot has no backup settings (backups.*)", hint="Run `autopilot upgrade`."
        )
    lock_wait, overdue = conn.execute(
        "SELECT %s::interval, %s::interval",
        [values["backups.lock_wait_timeout"], values["backups.overdue_after"]],
    ).fetchone()

    def get(name: str, cast: str = "text"):
        value = values[name]
        return int(value) if cast == "integer" else value

    databases = [d.strip() for d in get("backups.databases").split(",") if d.strip()]
    fmt = get("backups.format").strip().lower()
    if fmt not in FORMATS:
        raise BackupFailed(
            f"backups.format is {fmt!r}; it must be one of {', '.join(FORMATS)}",
            hint="autopilot settings backups.format custom",
        )
    return Settings(
        directory=Path(get("backups.directory")),
        databases=databases or [conn.info.dbname],
        format=fmt,
        parallel_jobs=get("backups.parallel_jobs", "integer"),
        lock_wait_timeout=lock_wait,
        keep={kind: get(f"backups.{kind}_keep", "integer") for kind in KINDS},
        overdue_after=overdue,
    )


# -- the PostgreSQL client programs -----------------------------------------------------------------


def pg_bindir(server_major: int, program: str = "pg_dump") -> Path:
    """The directory of ``program`` best suited to a server of ``server_major``: AUTOPILOT_PG_BINDIR, then
    Debian's /usr/lib/postgresql/<major>/bin (the server's major first, then newer, then older), then
    pg_config --bindir, then PATH. The version check decides whether the one found is usable."""
    candidates: list[Path] = []
    if override := os.environ.get("AUTOPILOT_PG_BINDIR"):
        candidates.append(Path(override))
    root = Path("/usr/lib/postgresql")
    majors = sorted(int(p.name) for p in root.glob("*") if p.name.isdigit()) if root.is_dir() else []
    ordered = (
        [m for m in majors if m == server_major]
        + [m for m in majors if m > server_major]
        + [m for m in reversed(majors) if m < server_major]
    )
    candidates += [root / str(m) / "bin" for m in ordered]
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(out.stdout.strip()))
    if found := shutil.which(program):
        candidates.append(Path(found).parent)
    for directory in candidates:
        if (directory / program).is_file() and os.access(directory / program, os.X_OK):
            return directory
    raise BackupFailed(
        f"{program} not found",
        hint=f"Install postgresql-client-{server_major} or set AUTOPILOT_PG_BINDIR to its bin directory.",
    )


def program_version(path: Path) -> str:
    """``15.14`` from ``pg_dump (PostgreSQL) 15.14 (Debian 15.14-1.pgdg120+1)``."""
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\)\s+(\d+(?:\.\d+)?)", out.stdout)
    if out.returncode != 0 or not match:
        raise BackupFailed(f"cannot tell the version of {path}: {(out.stdout + out.stderr).strip()!r}")
    return match.group(1)


def check_pg_dump_version(pg_dump_version: str, server_version_num: int, path: str = "pg_dump") -> None:
    """pg_dump refuses (or cannot faithfully dump) a server of a newer major version than its own."""
    dump_major = int(pg_dump_version.split(".")[0])
    server_major = server_version_num // 10000
    if dump_major < server_major:
        raise BackupFailed(
            f"{path} is version {pg_dump_version}, older than the server's major version {server_major}: "
            "pg_dump must be of the server's major version or newer",
            hint=f"Install postgresql-client-{server_major} (or newer), or set AUTOPILOT_PG_BINDIR to its "
            "bin directory.",
        )


# -- connection settings for pg_dump / pg_restore, without the password on the command line ------------


@contextlib.contextmanager
def libpq_target(dsn: str | None, dbname: str) -> Iterator[tuple[str, dict[str, str], str | None]]:
    """(conninfo without any password, environment for the child, the password to scrub from messages).

    A password from the DSN is written to a passfile (0600, in a private temp directory removed
    afterwards) named by PGPASSFILE; passwords from PGPASSWORD or ~/.pgpass reach the child as usual."""
    params = conninfo_to_dict(resolve_dsn(dsn))
    params["dbname"] = dbname
    password = params.pop("password", None)
    params.setdefault("application_name", "autopilot-backup")
    env = dict(os.environ)
    if not password:
        yield make_conninfo("", **params), env, None
        return
    params.pop("passfile", None)  # a passfile in the DSN would win over ours
    env.pop("PGPASSWORD", None)  # PGPASSWORD would win over the passfile
    private = tempfile.mkdtemp(prefix="autopilot-pass-")  # 0700
    try:
        passfile = Path(private) / "pgpass"
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")
        fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"*:*:*:*:{escaped}\n")
        env["PGPASSFILE"] = str(passfile)
        yield make_conninfo("", **params), env, password
    finally:
        shutil.rmtree(private, ignore_errors=True)


def pg_dump_argv(
    pg_dump: Path, conninfo: str, output: Path, fmt: str, lock_wait_timeout: timedelta, jobs: int
) -> list[str]:
    argv = [
        str(pg_dump),
        f"--format={fmt}",
        f"--file={output}",
        f"--lock-wait-timeout={max(1, int(lock_wait_timeout.total_seconds() * 1000))}",
        "--no-password",  # never prompt: a runner has no terminal
    ]
    if fmt == "directory" and jobs > 1:
        argv.append(f"--jobs={jobs}")
    argv.append(f"--dbname={conninfo}")
    return argv


# -- results ----------------------------------------------------------------------------------------


@dataclass
class Pruned:
    id: int
    database: str
    path: str | None
    files_removed: bool


@dataclass
class DatabaseBackup:
    id: int
    database: str
    kind: str
    format: str
    path: Path
    manifest: Path
    size_bytes: int
    sha256: str
    started_at: datetime
    finished_at: datetime
    verified_at: datetime
    dump_seconds: float
    verify_seconds: float
    pruned: list[Pruned] = field(default_factory=list)


@dataclass
class BackupResult:
    kind: str
    directory: Path
    backups: list[DatabaseBackup] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # database -> error
    abandoned: list[int] = field(default_factory=list)  # rows of killed runs cleaned up

    @property
    def pruned(self) -> list[Pruned]:
        return [p for b in self.backups for p in b.pruned]


# -- files -----------------------------------------------------------------------------------------


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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _prepare_directory(directory: Path) -> None:
    if not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # mkdir's mode is subject to the umask
        _fsync_path(directory.parent)
        return
    if not directory.is_dir():
        raise BackupFailed(f"backups.directory {directory} exists and is not a directory")
    mode = directory.stat().st_mode & 0o777
    if mode & 0o077:
        # tightening it ourselves could lock others out of a shared directory such as /tmp
        raise BackupFailed(
            f"backup directory {directory} is accessible to other users (mode {mode:04o}); "
            "backups hold every row of the database",
            hint=f"chmod 700 {directory}, or set backups.directory to a directory of its own.",
        )


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


# -- verification ----------------------------------------------------------------------------------


@dataclass
class Verification:
    sha256: str
    size_bytes: int
    files: dict[str, str] | None  # directory format: sha256 of every file, by relative path
    seconds: float
    message: str


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "********") if password else text


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def directory_digest(files: dict[str, str]) -> str:
    """The sha256 of a directory archive: of the sha256sum-style listing of its files, sorted by name."""
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_archive(path: Path) -> tuple[str, int, dict[str, str] | None]:
    """(sha256, size, per-file digests of a directory archive) without any verification."""
    if path.is_dir():
        files = {str(p.relative_to(path)): _hash_file(p) for p in sorted(path.rglob("*")) if p.is_file()}
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return directory_digest(files), size, files
    return _hash_file(path), path.stat().st_size, None


def verify_archive(path: Path, pg_restore: Path) -> Verification:
    """Read the whole archive back: pg_restore decompresses every data block to /dev/null (a truncated or
    corrupt archive fails), while the same bytes are hashed. Raises BackupFailed."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as errors:
        if path.is_dir():
            # pg_restore reads the files itself; hash them meanwhile (another process, another core)
            proc = subprocess.Popen(
                [str(pg_restore), "--format=directory", "--file=/dev/null", str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            try:
                digest, size, files = hash_archive(path)
            finally:
                code = proc.wait()
        else:
            files = None
            h = hashlib.sha256()
            size = 0
            # one read of the file: hashed, and streamed into pg_restore, which reads it sequentially
            proc = subprocess.Popen(
                [str(pg_restore), "--format=custom", "--file=/dev/null"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            with contextlib.suppress(OSError):  # a bigger pipe lets hashing overlap pg_restore's work
                fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
            feeding = True
            try:
                with open(path, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        h.update(chunk)
                        size += len(chunk)
                        if feeding:
                            try:
                                proc.stdin.write(chunk)
                            except BrokenPipeError:
                                feeding = False  # pg_restore stopped; its exit code says why
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            finally:
                code = proc.wait()
            digest = h.hexdigest()
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    seconds = time.monotonic() - started
    if code != 0 or stderr.strip():
        raise BackupFailed(
            f"verification failed: pg_restore could not read {path} back: "
            f"{_first_line(stderr) or f'exit code {code}'}",
            hint="The archive is truncated or corrupt; it was not kept. Check the disk and pg_dump's output.",
        )
    return Verification(
        digest,
        size,
        files,
        seconds,
        f"pg_restore --file=/dev/null read every data block of {size} bytes in {seconds:.2f} s",
    )


@dataclass
class _Dump:
    returncode: int
    stderr: str
    streamed_bytes: int | None  # custom format: bytes pg_restore read back, complete, while pg_dump wrote
    after_dump_seconds: float  # how long the read-back went on after pg_dump had exited


def _dump(argv: list[str], env: dict[str, str], partial: Path, fmt: str, pg_restore: Path) -> _Dump:
    """Run pg_dump; for the custom format, read the archive back *while* it is written.

    pg_dump writes a custom archive sequentially (header, table of contents, then every data block) and
    at the end rewrites only the table of contents in place, to fill in the data offsets. So the file is
    tailed from disk into ``pg_restore --file=/dev/null`` (which reads a pipe sequentially and needs no
    offsets) on another core while pg_dump is still compressing: every data block is read back exactly as
    it stays in the file. ``_confirm_streamed`` then checks the final file (size, sha256, its rewritten
    table of contents); anything unexpected falls back to a full read-back of the final file."""
    with tempfile.TemporaryFile() as dump_errors:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=dump_errors,
            env=env,
            umask=0o077,
            preexec_fn=child_setup,
        )
        streamed = None
        after = 0.0
        try:
            if fmt == "custom":
                streamed, after = _tail_into_pg_restore(proc, partial, pg_restore)
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        dump_errors.seek(0)
        stderr = dump_errors.read().decode(errors="replace")
    return _Dump(code, stderr, streamed if code == 0 else None, after)


def _tail_into_pg_restore(
    proc: subprocess.Popen, partial: Path, pg_restore: Path
) -> tuple[int | None, float]:
    """(bytes read back, seconds after pg_dump's exit), or (None, ...) when the read-back did not pass."""
    with tempfile.TemporaryFile() as errors:
        restore = subprocess.Popen(
            [str(pg_restore), "--format=custom", "--file=/dev/null"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        with contextlib.suppress(OSError):  # a bigger pipe: fewer wake-ups
            fcntl.fcntl(restore.stdin.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
        with contextlib.suppress(OSError):
            # pg_dump (and the server behind it) first: on a busy machine the read-back yields and catches up
            # at the end rather than slowing the dump
            os.setpriority(os.PRIO_PROCESS, restore.pid, 10)
        size, feeding, dump_exited_at = 0, True, None
        try:
            f = None
            while f is None:  # pg_dump creates the file first thing
                try:
                    f = open(partial, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.005)
            if f is not None:
                with f:
                    while True:
                        chunk = f.read(_CHUNK)
                        if chunk:
                            size += len(chunk)
                            if feeding:
                                try:
                                    restore.stdin.write(chunk)
                                except BrokenPipeError:
                                    feeding = False  # pg_restore gave up; its exit code says why
                            continue
                        if dump_exited_at is not None:
                            break
                        if proc.poll() is not None:
                            # pg_dump has exited: one more pass reads everything it wrote
                            dump_exited_at = time.monotonic()
                            continue
                        time.sleep(0.01)
        finally:
            with contextlib.suppress(BrokenPipeError):
                restore.stdin.close()
            if dump_exited_at is None:
                restore.kill()  # pg_dump failed before writing anything, or we are interrupted
            code = restore.wait()
        errors.seek(0)
        failed = code != 0 or errors.read().strip() or not feeding or dump_exited_at is None
    after = time.monotonic() - dump_exited_at if dump_exited_at is not None else 0.0
    return (None if failed else size), after


def _confirm_streamed(
    archive: Path, pg_restore: Path, streamed_bytes: int, after_dump: float
) -> Verification:
    """The final file is what was read back (same size), its rewritten table of contents reads, and its
    sha256 is taken; otherwise a full read-back of the final file decides."""
    started = time.monotonic()
    digest, size, _ = hash_archive(archive)
    listing = subprocess.run(
        [str(pg_restore), "--list", str(archive)], stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    if size != streamed_bytes or listing.returncode != 0 or listing.stderr.strip():
        return verify_archive(archive, pg_restore)
    seconds = after_dump + time.monotonic() - started
    return Verification(
        digest,
        size,
        None,
        seconds,
        f"pg_restore --file=/dev/null read every data block of {size} bytes back from the file as pg_dump "
        f"wrote it; the final table of contents lists; {seconds:.2f} s after pg_dump",
    )


# -- the backup --------------------------------------------------------------------------------------


def _identity(conn: psycopg.Connection) -> dict:
    """Which autopilot database recorded a backup: a restored copy (another name) or another cluster
    sharing the directory (another system identifier) must never delete this one's files."""
    system_identifier = None
    with contextlib.suppress(psycopg.Error):
        system_identifier = str(
            conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()[0]
        )
    return {"database": conn.info.dbname, "system_identifier": system_identifier}


def _lock_key(backup_id: int) -> int:
    return backup_id % 2_147_483_647


def _ours(details: dict, identity: dict) -> bool:
    return details.get("recorded_in") == identity


def _clean_abandoned(conn: psycopg.Connection, identity: dict) -> list[int]:
    """Rows this database recorded that were left ``running``/``succeeded`` by a runner that died (their
    advisory lock is free): mark them failed and remove their files. Rows recorded elsewhere (inherited by a
    restored copy) are left alone: their files belong to the original."""
    cleaned = []
    rows = conn.execute(
        "SELECT id, file_path FROM autopilot.backup_metadata "
        "WHERE status IN ('running', 'succeeded') AND details -> 'recorded_in' = %s ORDER BY id",
        [Jsonb(identity)],
    ).fetchall()
    for backup_id, file_path in rows:
        got = conn.execute(
            "SELECT pg_catalog.pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)]
        ).fetchone()[0]
        if not got:
            continue  # still running
        try:
            if file_path:
                archive = Path(file_path)
                for leftover in (
                    archive.with_name(archive.name + PARTIAL_SUFFIX),
                    archive,
                    manifest_path(archive),
                ):
                    _remove(leftover)
            conn.execute(
                "UPDATE autopilot.backup_metadata SET status = 'failed', "
                "finished_at = coalesce(finished_at, now()), error = %s "
                "WHERE id = %s AND status IN ('running', 'succeeded')",
                [
                    "abandoned: the backup process stopped before finishing (runner killed or crashed)",
                    backup_id,
                ],
            )
            cleaned.append(backup_id)
        finally:
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
    return cleaned


def prune(conn: psycopg.Connection, kind: str, database: str, keep: int, identity: dict) -> list[Pruned]:
    """Delete the verified backups of (kind, database) beyond the newest ``keep`` verified ones."""
    pruned = []
    rows = conn.execute(
        "SELECT id, file_path, details FROM autopilot.backup_metadata "
        "WHERE kind = %s AND database_name = %s AND status = 'verified' "
        "ORDER BY finished_at DESC, id DESC OFFSET %s",
        [kind, database, keep],
    ).fetchall()
    for backup_id, file_path, details in rows:
        removed = False
        if file_path and _ours(details, identity):
            archive = Path(file_path)
            _remove(archive)
            _remove(manifest_path(archive))  # last: a manifest without its archive is obviously dangling
            removed = True
        conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'pruned', "
            "details = details || jsonb_build_object('pruned_at', now()) "
            "WHERE id = %s AND status = 'verified'",
            [backup_id],
        )
        pruned.append(Pruned(backup_id, database, file_path, removed))
    return pruned


def run_backup(dsn: str | None, kind: str = "manual", *, directory: str | None = None) -> BackupResult:
    """Back up every database of ``backups.databases`` (default: the DSN's); see the module docstring.

    Raises BackupFailed when any database failed (the others are still backed up; ``exc.result``)."""
    if kind not in KINDS:
        raise AutopilotError(f"unknown backup kind {kind!r}; one of {', '.join(KINDS)}")
    try:
        conn = connect(dsn, autocommit=True)
    except AutopilotError as exc:
        raise BackupFailed(f"backup not started: {exc.message}", hint=exc.hint) from exc
    try:
        with conn:
            return _run_backup(conn, dsn, kind, directory)
    except psycopg.Error as exc:  # e.g. the server went away mid-run: still a BackupFailed for the runner
        raise BackupFailed(f"backup failed: {translate(exc).message}") from exc


def _run_backup(conn: psycopg.Connection, dsn: str | None, kind: str, directory: str | None) -> BackupResult:
    if installer.installed(conn) is None:
        raise BackupFailed(
            f'autopilot is not installed in database "{conn.info.dbname}": nowhere to record backups',
            hint="Run `autopilot install`, or point --dsn at the database autopilot is installed in.",
        )
    settings = read_settings(conn)
    target = Path(directory) if directory else settings.directory
    target = target.absolute()
    result = BackupResult(kind, target)
    server_major = conn.info.server_version // 10000
    bindir = pg_bindir(server_major)
    pg_dump, pg_restore = bindir / "pg_dump", bindir / "pg_restore"
    dump_version = program_version(pg_dump)
    check_pg_dump_version(dump_version, conn.info.server_version, str(pg_dump))
    _prepare_directory(target)
    identity = _identity(conn)
    result.abandoned = _clean_abandoned(conn, identity)
    common = {
        "server_version": conn.execute("SHOW server_version").fetchone()[0],
        "pg_dump_version": dump_version,
        "pg_dump": str(pg_dump),
        "autopilot_version": installer.installed(conn).version,
        "pg_autopilot_version": __version__,
    }
    last_hint = None
    for database in settings.databases:
        try:
            result.backups.append(
                _backup_one(
                    conn, dsn, database, kind, target, settings, identity, common, pg_dump, pg_restore
                )
            )
        except BackupFailed as exc:
            result.failures[database] = exc.message
            last_hint = exc.hint
    if result.failures:
        if len(result.failures) == 1 and len(settings.databases) == 1:
            message = next(iter(result.failures.values()))
        else:
            message = "backup failed for " + "; ".join(f"{d}: {e}" for d, e in result.failures.items())
        failure = BackupFailed(message, hint=last_hint)
        failure.result = result
        raise failure
    return result


def _backup_one(
    conn: psycopg.Connection,
    dsn: str | None,
    database: str,
    kind: str,
    directory: Path,
    settings: Settings,
    identity: dict,
    common: dict,
    pg_dump: Path,
    pg_restore: Path,
) -> DatabaseBackup:
    fmt = settings.format
    details = {"format": fmt, "recorded_in": identity, **common}
    backup_id, started_at = conn.execute(
        "INSERT INTO autopilot.backup_metadata (kind, database_name, status, details) "
        "VALUES (%s, %s, 'running', %s) RETURNING id, started_at",
        [kind, database, Jsonb(details)],
    ).fetchone()
    conn.execute("SELECT pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
    stamp = started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    archive = (
        directory
        / f"{_safe_name(database)}-{kind}-{stamp}-{backup_id}.{'dump' if fmt == 'custom' else 'dir'}"
    )
    partial = archive.with_name(archive.name + PARTIAL_SUFFIX)
    manifest = manifest_path(archive)
    conn.execute(
        "UPDATE autopilot.backup_metadata SET file_path = %s WHERE id = %s", [str(archive), backup_id]
    )
    password = None
    try:
        with libpq_target(dsn, database) as (conninfo, env, password):
            argv = pg_dump_argv(
                pg_dump, conninfo, partial, fmt, settings.lock_wait_timeout, settings.parallel_jobs
            )
            t0 = time.monotonic()
            dump = _dump(argv, env, partial, fmt, pg_restore)
            dump_seconds = time.monotonic() - t0
        stderr = _scrub(dump.stderr, password)
        if dump.returncode != 0:
            reason = _first_line(stderr) or f"pg_dump exited with code {dump.returncode}"
            if dump.returncode < 0:
                reason += f" (pg_dump killed by signal {-dump.returncode})"
            raise BackupFailed(
                f'pg_dump of database "{database}" failed: {reason}',
                hint="Nothing was kept; the job is retried. Check the database name (backups.databases), "
                "that the server is up, and the free space in " + str(directory) + ".",
            )
        _fsync_tree(partial)
        os.rename(partial, archive)
        _fsync_path(directory)
        finished_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'succeeded', finished_at = %s, "
            "details = details || %s WHERE id = %s",
            [finished_at, Jsonb({"dump_seconds": round(dump_seconds, 3)}), backup_id],
        )

        if dump.streamed_bytes is not None:
            verification = _confirm_streamed(
                archive, pg_restore, dump.streamed_bytes, dump.after_dump_seconds
            )
        else:
            verification = verify_archive(archive, pg_restore)
        verified_at = conn.execute("SELECT clock_timestamp()").fetchone()[0]
        body = {
            "manifest_version": 1,
            "backup_id": backup_id,
            "database": database,
            "kind": kind,
            "format": fmt,
            "file": archive.name,
            "size_bytes": verification.size_bytes,
            "sha256": verification.sha256,
            "started_at": started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            "verified_at": verified_at.isoformat(),
            "verification": verification.message,
            "recorded_in": identity,
            **{k: v for k, v in common.items() if k != "pg_dump"},
        }
        if verification.files is not None:
            body["files"] = verification.files
        _write_manifest(manifest, body)
        conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'verified', size_bytes = %s, sha256 = %s, "
            "verified_at = %s, verification = %s, details = details || %s WHERE id = %s",
            [
                verification.size_bytes,
                verification.sha256,
                verified_at,
                verification.message,
                Jsonb({"verify_seconds": round(verification.seconds, 3), "manifest": str(manifest)}),
                backup_id,
            ],
        )
    except BaseException as exc:
        for leftover in (partial, archive, manifest, manifest.with_name(manifest.name + PARTIAL_SUFFIX)):
            _remove(leftover)
        message = exc.message if isinstance(exc, AutopilotError) else f"{type(exc).__name__}: {exc}"
        message = _scrub(message, password)
        with contextlib.suppress(psycopg.Error):
            conn.execute(
                "UPDATE autopilot.backup_metadata SET status = 'failed', finished_at = clock_timestamp(), "
                "error = %s WHERE id = %s",
                [message, backup_id],
            )
        if isinstance(exc, BackupFailed):
            raise
        if isinstance(exc, OSError | AutopilotError | psycopg.Error):
            raise BackupFailed(f'backup of database "{database}" failed: {message}') from exc
        raise
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])

    pruned = prune(conn, kind, database, settings.keep[kind], identity)
    return DatabaseBackup(
        backup_id,
        database,
        kind,
        fmt,
        archive,
        manifest,
        verification.size_bytes,
        verification.sha256,
        started_at,
        finished_at,
        verified_at,
        dump_seconds,
        verification.seconds,
        pruned,
    )


# -- restore ---------------------------------------------------------------------------------------


@dataclass
class RestoreResult:
    backup_id: int
    database: str  # the database the backup was taken of
    into: str
    path: Path
    sha256: str
    seconds: float


def restore_backup(
    dsn: str | None, backup_id: int | None, into: str, *, database: str | None = None, jobs: int = 1
) -> RestoreResult:
    """Restore a verified backup (default: the latest verified one, of ``database`` when given) into the
    NEW database ``into``, after checking the archive's sha256 against its record. An existing database
    is refused; a failed restore drops the database it created."""
    with connect(dsn, autocommit=True) as conn:
        if installer.installed(conn) is None:
            raise RestoreFailed(f'autopilot is not installed in database "{conn.info.dbname}"')
        if backup_id is None:
            row = conn.execute(
                "SELECT id, database_name, file_path, sha256, status, details FROM autopilot.backup_metadata "
                "WHERE status = 'verified' AND (%s::text IS NULL OR database_name = %s) "
                "ORDER BY finished_at DESC, id DESC LIMIT 1",
                [database, database],
            ).fetchone()
            if row is None:
                raise RestoreFailed(
                    "no verified backup to restore" + (f' of database "{database}"' if database else ""),
                    hint="Take one with `autopilot runner backup`.",
                )
        else:
            row = conn.execute(
                "SELECT id, database_name, file_path, sha256, status, details FROM autopilot.backup_metadata "
                "WHERE id = %s",
                [backup_id],
            ).fetchone()
            if row is None:
                raise RestoreFailed(f"no backup #{backup_id} in autopilot.backup_metadata")
        chosen, source, file_path, recorded_sha, status, _details = row
        if status != "verified":
            raise RestoreFailed(f"backup #{chosen} is {status}, not verified: it cannot be restored")
        archive = Path(file_path)
        if not archive.exists():
            raise RestoreFailed(f"backup #{chosen}: {archive} does not exist (on this host)")
        digest, _size, _files = hash_archive(archive)
        if digest != recorded_sha:
            raise RestoreFailed(
                f"backup #{chosen}: {archive} does not match its recorded sha256 "
                f"(recorded {recorded_sha}, file {digest}): it changed since it was verified",
            )
        exists = conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", [into]).fetchone()
        if exists:
            raise RestoreFailed(
                f'database "{into}" already exists: restore only into a new database',
                hint="Choose another --into name (nothing was changed).",
            )
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(into)))
        except psycopg.errors.DuplicateDatabase as exc:
            raise RestoreFailed(
                f'database "{into}" already exists: restore only into a new database'
            ) from exc
        bindir = pg_bindir(conn.info.server_version // 10000, "pg_restore")
        started = time.monotonic()
        with libpq_target(dsn, into) as (conninfo, env, password):
            argv = [str(bindir / "pg_restore"), "--exit-on-error", "--no-password", f"--dbname={conninfo}"]
            if jobs > 1:
                argv.append(f"--jobs={jobs}")
            argv.append(str(archive))
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, check=False)
        if done.returncode != 0:
            stderr = _scrub(done.stderr.decode(errors="replace"), password)
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(into)))
            raise RestoreFailed(
                f'restoring backup #{chosen} into "{into}" failed: {_first_line(stderr)}',
                hint=f'The new database "{into}" was dropped again.',
            )
        return RestoreResult(chosen, source, into, archive, digest, time.monotonic() - started)


# -- status ----------------------------------------------------------------------------------------


def backup_status(conn: psycopg.Connection, now: datetime) -> dict | None:
    """The last verified backup of every configured database and whether it is overdue; None when the
    installed autopilot has no backup settings (before 0.3.0)."""
    has = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM autopilot.settings WHERE name = 'backups.overdue_after')"
    ).fetchone()[0]
    if not has:
        return None
    try:
        settings = read_settings(conn)
    except BackupFailed:  # e.g. an invalid backups.format: the backup itself reports it
        return None
    databases = []
    for database in settings.databases:
        row = conn.execute(
            "SELECT id, kind, finished_at, size_bytes, file_path FROM autopilot.backup_metadata "
            "WHERE database_name = %s AND status = 'verified' ORDER BY finished_at DESC, id DESC LIMIT 1",
            [database],
        ).fetchone()
        last_failed = conn.execute(
            "SELECT finished_at, error FROM autopilot.backup_metadata "
            "WHERE database_name = %s AND status = 'failed' ORDER BY id DESC LIMIT 1",
            [database],
        ).fetchone()
        age = now - row[2] if row else None
        databases.append(
            {
                "database": database,
                "last_verified_id": row[0] if row else None,
                "last_verified_kind": row[1] if row else None,
                "last_verified_at": row[2] if row else None,
                "age": age,
                "size_bytes": row[3] if row else None,
                "file_path": row[4] if row else None,
                "last_failure_at": last_failed[0] if last_failed else None,
                "last_failure": last_failed[1] if last_failed else None,
                "overdue": age is None or age > settings.overdue_after,
            }
        )
    return {
        "overdue_after": settings.overdue_after,
        "directory": str(settings.directory),
        "databases": databases,
        "overdue": any(d["overdue"] for d in databases),
    }
