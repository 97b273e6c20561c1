"""pg_dump backups (backup-hourly, backup-daily, `autopilot runner backup`) and their restore.

One backup of one database, in order:

1. a ``running`` row in ``autopilot.backup_metadata`` is inserted and, in the same transaction, this session
   takes an advisory lock on it that it holds for as long as the backup runs (a ``running`` row whose lock
   is free was abandoned by a killed runner: the next backup marks it failed and removes its leftovers; a
   row is never visible unlocked, so a concurrent cleanup cannot take a fresh backup for an abandoned one);
2. an intent record ``<name>.intent.json`` (the row's id, database, kind, file) is written beside the archive
   to be, then ``pg_dump`` (custom format, or directory format with ``--jobs``) writes ``<name>.partial`` with
   umask 077, ``--lock-wait-timeout`` and ``--no-password``; no secret of the DSN reaches its command line:
   the password goes through a private passfile (``PGPASSFILE``), ``sslpassword`` through a private service
   file (``PGSERVICEFILE``), ``options`` through ``PGOPTIONS``, both in a run directory of their own in a
   per-user private directory (private_root), which the next run sweeps if this one is killed;
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
   ``backups.<kind>_keep`` are deleted (files and manifest; their rows become ``pruned`` only once their
   files are gone). A backup that cannot be deleted stays ``verified`` and is reported (the new backup
   still counts as taken); the next backup tries again.

The runner's database role can write backup_metadata, so no row is trusted on its word (check_backup): the
cleanup of an abandoned backup deletes only files in the backup directory named as the runner names that
row's files with its intent record beside them; retention counts and deletes, status shows and
restore picks only verified rows whose times are not in the future and whose archive is there, named so,
with its manifest naming the row's sha256 (restore also recomputes the sha256). The rest is reported.

Every status change is guarded by the status it expects, so a row someone else marked failed is never
turned back into a verified one. Anything failing leaves no final-named file and no manifest, a ``failed``
row with pg_dump's own message, and raises BackupFailed (the runner retries it with backoff; a retry of
the same job backs up only the databases without a verified backup from that job).

pg_dump and pg_restore run in a process group of their own (a terminal's Ctrl-C or a service manager's
stop signal reaches this process, which decides) and are watched while they run: a cancelled job, a job
past its deadline or a lost metadata connection kills them and fails the backup. The metadata connection
has TCP keepalives and is touched every ``TOUCH_INTERVAL`` seconds while pg_dump runs, so a proxy that
drops idle connections cannot silently take the advisory lock away. At interpreter exit, children still
running are killed and private files (passfiles, ``.partial`` archives) removed; and they get a parent-death
signal, so that even a runner killed with SIGKILL leaves no pg_dump running.

A restore restores into a database named ``autopilot_restoring_<oid>_<token>``, renamed only once pg_restore
succeeded; its advisory lock marks it live. Whatever stops the restore, that database is dropped at once or,
when the server cannot be reached then (a restart), by the next restore or backup; `autopilot status` shows it
until then.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import getpass
import hashlib
import json
import os
import re
import secrets as secrets_mod
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import psycopg
from psycopg import pq, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from . import __version__, installer
from .db import connect, resolve_dsn
from .errors import AutopilotError, BackupFailed, ConnectionFailed, RestoreFailed, translate

KINDS = ("hourly", "daily", "manual")
FORMATS = ("custom", "directory")
MANIFEST_SUFFIX = ".manifest.json"
PARTIAL_SUFFIX = ".partial"
# written beside the .partial before pg_dump starts: what the cleanup of an abandoned backup checks
INTENT_SUFFIX = ".intent.json"
_EXTENSIONS = {"custom": "dump", "directory": "dir"}
# a backup row's times may be this far ahead of the database's clock and still be trusted
CLOCK_SKEW = timedelta(minutes=5)
# restore: the new database has this name (plus the autopilot database's oid and a random token) until
# pg_restore has finished; a database of that name whose restore lock is free is half-restored
RESTORING_PREFIX = "autopilot_restoring_"
RESTORE_LOCK_CLASS = 0x6170_7273  # "aprs": (this class, hashtext(temporary name)) held while a restore runs
# seconds a failed restore keeps trying to drop its half-restored database while the server is unreachable
RESTORE_DROP_WAIT = 10.0
# advisory lock (int4, int4) space: (this class, backup id) is held while a backup runs
LOCK_CLASS = 0x6170_6275  # "apbu"
_CHUNK = 1 << 20
# seconds between two looks at a running child (cancellation, deadline, the metadata connection)
_POLL_SECONDS = 0.1
# seconds between two statements on the metadata connection while pg_dump / pg_restore run: an idle
# connection can be dropped by a proxy or firewall, and with it the advisory lock that marks the backup live
TOUCH_INTERVAL = 60.0
# TCP keepalives of the metadata connection (unless the DSN sets its own)
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "60",
    "keepalives_interval": "10",
    "keepalives_count": "6",
}

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
    directory = get("backups.directory")
    if not directory or not directory.startswith("/") or "\x00" in directory:
        # set_setting refuses these since 0.4.0; a value set before is refused here (never the runner's cwd)
        raise BackupFailed(
            f"backups.directory is {directory!r}; it must be an absolute path",
            hint="autopilot settings backups.directory /var/backups/autopilot",
        )
    return Settings(
        directory=Path(directory),
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
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BackupFailed(
            f"cannot run {path}: {exc.strerror or exc}",
            hint="Check that the runner's OS user may execute it, or set AUTOPILOT_PG_BINDIR.",
        ) from exc
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


# -- children: a process group of their own, watched while they run, killed when the backup stops ------

_registry_lock = threading.Lock()
_children: set[subprocess.Popen] = set()
_private_paths: set[Path] = set()  # passfile directories, .partial archives: removed at interpreter exit


class BackupCancelled(BackupFailed):
    """The runner cancelled the job (cancelled, timed out, or no longer this runner's), or it passed its
    deadline: the children were killed and nothing was kept."""


class Interrupted(KeyboardInterrupt):
    """A stop signal other than SIGINT (SIGTERM) turned into an interruption, so the backup cleans up."""


def _no_poll() -> None:
    return None


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL a child's whole process group (pg_dump --jobs has workers), unless it was already reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


# prctl(PR_SET_PDEATHSIG) (Linux): loaded here, in the parent, so that the child only calls it
_PR_SET_PDEATHSIG = 1
_prctl = None
with contextlib.suppress(OSError, AttributeError):
    _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _dies_with_parent(then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started it ends (the whole runner killed
    with SIGKILL included, which no atexit or finally survives); a child whose parent is already gone
    kills itself. ``then`` runs after (the child_setup test hook)."""
    parent = os.getpid()

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl
                os.kill(os.getpid(), signal.SIGKILL)
        if then is not None:
            then()

    return setup


@contextlib.contextmanager
def _child(argv: list[str], **kwargs) -> Iterator[subprocess.Popen]:
    """A child process in a session (and process group) of its own: a terminal's Ctrl-C or a service
    manager's stop signal reaches this process, which decides. An exception in the body kills it; it is
    always reaped, and killed at interpreter exit if it still runs then, and by the kernel when this process
    dies (parent-death signal)."""
    kwargs["preexec_fn"] = _dies_with_parent(kwargs.get("preexec_fn"))
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    with _registry_lock:
        _children.add(proc)
    try:
        yield proc
    except BaseException:
        _kill(proc)
        raise
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # EOF for the child, whatever it wrote meanwhile
                proc.stdin.close()
        proc.wait()
        with _registry_lock:
            _children.discard(proc)


def _wait(proc: subprocess.Popen, poll: Callable[[], None]) -> int:
    """Wait for a child, calling ``poll`` (which raises to stop) every _POLL_SECONDS."""
    while True:
        try:
            return proc.wait(timeout=_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            poll()


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    """A short child (--version, --list), in a process group of its own too."""
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        start_new_session=True,
        preexec_fn=_dies_with_parent(),
    )


def _register_private(*paths: Path) -> None:
    with _registry_lock:
        _private_paths.update(paths)


def _unregister_private(*paths: Path) -> None:
    with _registry_lock:
        _private_paths.difference_update(paths)


@atexit.register
def _at_exit() -> None:
    """The interpreter is exiting while a backup thread may still wait for its children (the runner left a
    job running past its grace period; daemon threads are frozen, their ``finally`` never runs): kill the
    children and remove the passfiles and partial archives now. The row stays ``running`` with its lock gone;
    the next backup marks it failed."""
    with _registry_lock:
        children, paths = list(_children), list(_private_paths)
    for proc in children:
        _kill(proc)
    # the intent records last: a leftover of an archive always has its record beside it
    for path in sorted(paths, key=lambda p: p.name.endswith(INTENT_SUFFIX)):
        with contextlib.suppress(OSError):
            _remove(path)


# -- connection settings for pg_dump / pg_restore, without any secret on the command line -------------

# libpq keywords whose values are secrets: those libpq itself masks ("*"), and the SCRAM keys
_SECRET_KEYWORDS = {"password", "sslpassword", "oauth_client_secret", "scram_client_key", "scram_server_key"}
with contextlib.suppress(Exception):
    _SECRET_KEYWORDS |= {o.keyword.decode() for o in pq.Conninfo.get_defaults() if o.dispchar == b"*"}
_SERVICE = "autopilot-backup"


@contextlib.contextmanager
def libpq_target(dsn: str | None, dbname: str) -> Iterator[tuple[str, dict[str, str], tuple[str, ...]]]:
    """(conninfo without any secret, environment for the child, the secrets to scrub from messages).

    A child's command line can be read by every user of the host (ps, /proc), so no secret goes there: a
    password from the DSN is written to a passfile (PGPASSFILE), other secret keywords (sslpassword, which
    has no environment variable) to a service file (PGSERVICEFILE, service=autopilot-backup), both 0600 in a
    private temporary directory removed afterwards (and at interpreter exit); ``options``, which can carry
    anything, goes through PGOPTIONS. Passwords from PGPASSWORD or ~/.pgpass reach the child as usual."""
    params = conninfo_to_dict(resolve_dsn(dsn))
    params["dbname"] = dbname
    password = params.pop("password", None)
    others = {k: params.pop(k) for k in sorted(params) if k in _SECRET_KEYWORDS}
    params.setdefault("application_name", "autopilot-backup")
    env = dict(os.environ)
    if options := params.pop("options", None):
        env["PGOPTIONS"] = options  # the DSN's options win over the environment's, as in libpq
    secrets = tuple(v for v in (password, *others.values()) if v)
    if others:
        if "service" in params or "PGSERVICE" in env:
            names = ", ".join(others)
            raise BackupFailed(
                f"the DSN has {names} and names a service: {names} cannot reach pg_dump without showing on "
                "its command line",
                hint=f"Put {names} in the service's entry of pg_service.conf instead of the DSN.",
            )
        bad = [k for k, v in others.items() if "\n" in v or v != v.strip()]
        if bad:
            raise BackupFailed(
                f"{', '.join(bad)} of the DSN has a line break or surrounding spaces: it cannot be passed to "
                "pg_dump in a service file, and it is never put on a command line"
            )
    if not secrets:
        yield make_conninfo("", **params), env, ()
        return
    if password:
        params.pop("passfile", None)  # a passfile in the DSN would win over ours
        env.pop("PGPASSWORD", None)  # PGPASSWORD would win over the passfile
    private, lock_fd = _private_directory()
    try:
        if password:
            passfile = private / "pgpass"
            escaped = password.replace("\\", "\\\\").replace(":", "\\:")
            _write_private(passfile, f"*:*:*:*:{escaped}\n")
            env["PGPASSFILE"] = str(passfile)
        if others:
            servicefile = private / "pg_service.conf"
            _write_private(servicefile, f"[{_SERVICE}]\n" + "".join(f"{k}={v}\n" for k, v in others.items()))
            env["PGSERVICEFILE"] = str(servicefile)
            params["service"] = _SERVICE
        yield make_conninfo("", **params), env, secrets
    finally:
        shutil.rmtree(private, ignore_errors=True)
        _unregister_private(private)
        os.close(lock_fd)


def private_root() -> Path:
    """The per-user directory (0700, owned by this OS user) the passfiles and service files live in:
    AUTOPILOT_PRIVATE_DIR, else ``autopilot-<uid>`` in the temporary directory. Each run uses a directory of
    its own in it, locked (flock) for as long as the run lives, so the next run can tell (and remove) what a
    killed one left behind. One that exists with another owner, other rights or as a symbolic link is
    refused: it could be somebody else's trap."""
    root = Path(
        os.environ.get("AUTOPILOT_PRIVATE_DIR") or Path(tempfile.gettempdir()) / f"autopilot-{os.geteuid()}"
    )
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(root, 0o700)
        st = os.lstat(root)
    except OSError as exc:
        raise BackupFailed(
            f"cannot use the private directory {root} for the password file: {exc.strerror or exc}",
            hint="Set AUTOPILOT_PRIVATE_DIR to a directory only this OS user can use.",
        ) from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or stat.S_IMODE(st.st_mode) & 0o077:
        raise BackupFailed(
            f"the private directory {root} for the password file is not a directory of this OS user's own "
            f"with mode 0700 (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})",
            hint="Remove it (it is recreated), or set AUTOPILOT_PRIVATE_DIR to a directory only this OS "
            "user can use.",
        )
    return root


_LOCK_NAME = ".lock"
_UNLOCKED_GRACE = 60.0  # seconds: a run directory not yet locked is new, not stale


def sweep_private(root: Path | None = None) -> list[Path]:
    """Remove the run directories of ``root`` whose run is gone (its lock is free): the passfiles of a
    runner killed outright (SIGKILL, a crash), whose ``finally`` never ran. The directories removed."""
    root = root or private_root()
    removed = []
    for entry in root.iterdir():
        if not entry.name.startswith("run-"):
            continue
        try:
            fd = os.open(entry / _LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            with contextlib.suppress(OSError):
                if time.time() - os.lstat(entry).st_mtime > _UNLOCKED_GRACE:
                    shutil.rmtree(entry)
                    removed.append(entry)
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live run
        try:
            shutil.rmtree(entry, ignore_errors=True)
            if not os.path.lexists(entry):
                removed.append(entry)
        finally:
            os.close(fd)
    return removed


def _private_directory() -> tuple[Path, int]:
    """A new run directory in private_root() (0700), locked until the returned descriptor is closed;
    stale ones of killed runs are removed first."""
    root = private_root()
    with contextlib.suppress(OSError):
        sweep_private(root)
    private = Path(tempfile.mkdtemp(prefix="run-", dir=root))  # 0700
    _register_private(private)
    fd = os.open(private / _LOCK_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return private, fd


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


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
    files_removed: bool  # the archive was there and was deleted now
    missing: bool = False  # the archive was already gone (the record is pruned all the same)


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
    prune_errors: list[str] = field(default_factory=list)  # retention could not delete these (still verified)
    # verified rows retention does not trust (see check_backup): not counted, not deleted, reported
    untrusted: list[str] = field(default_factory=list)


@dataclass
class BackupResult:
    kind: str
    directory: Path
    backups: list[DatabaseBackup] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # database -> error
    abandoned: list[int] = field(default_factory=list)  # rows of killed runs cleaned up
    skipped: list[str] = field(default_factory=list)  # already verified by an earlier attempt of the job
    # leftovers of killed runs not removed (could not be, or not the runner's); verified rows not trusted
    warnings: list[str] = field(default_factory=list)

    @property
    def pruned(self) -> list[Pruned]:
        return [p for b in self.backups for p in b.pruned]

    @property
    def prune_errors(self) -> list[str]:
        return [e for b in self.backups for e in b.prune_errors]

    def summary(self) -> str:
        """One line for a log (problems first: a log may cut it short)."""
        parts = [f"retention: {e}" for e in self.prune_errors] + list(self.warnings)
        if self.failures:
            parts.append("failed: " + "; ".join(f"{d}: {e}" for d, e in self.failures.items()))
        done = ", ".join(f"#{b.id} {b.database} ({b.size_bytes} bytes)" for b in self.backups)
        parts.append(f"{self.kind} backup verified: {done}" if done else f"{self.kind} backup: nothing taken")
        if self.skipped:
            parts.append("verified by an earlier attempt of this job: " + ", ".join(self.skipped))
        if self.pruned:
            parts.append("pruned " + ", ".join(f"#{p.id}" for p in self.pruned))
        if self.abandoned:
            parts.append("cleaned up abandoned " + ", ".join(f"#{i}" for i in self.abandoned))
        return "; ".join(parts)


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


# -- which rows of backup_metadata to trust ------------------------------------------------------------
#
# The runner's database role can write backup_metadata, so a row proves nothing by itself. The files the
# runner made do: a row is the runner's own backup only when its file is in the backup directory (resolved:
# no symbolic link or `..` leads out of it), named exactly as the runner names that row's archive, with the
# runner's manifest beside it naming the same backup, sha256, size and times, and its times not in the future
# (a verified backup); or with the runner's intent record beside it (the leftovers of a backup that never
# finished). Nothing is ever deleted, counted toward retention, shown as fresh or restored on
# the word of a row alone.

_ROW_COLUMNS = (
    "id, kind, database_name, status, file_path, sha256, size_bytes, started_at, finished_at, verified_at, "
    "details"
)


@dataclass
class BackupRow:
    id: int
    kind: str
    database: str
    status: str
    file_path: str | None
    sha256: str | None
    size_bytes: int | None
    started_at: datetime | None
    finished_at: datetime | None
    verified_at: datetime | None
    details: dict


def _backup_rows(conn: psycopg.Connection, where: str, params: list) -> list[BackupRow]:
    return [
        BackupRow(*row[:-1], row[-1] or {})
        for row in conn.execute(
            f"SELECT {_ROW_COLUMNS} FROM autopilot.backup_metadata WHERE {where}",
            params,
        ).fetchall()
    ]


def _resolved(directory: Path) -> Path:
    return Path(os.path.realpath(directory))


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
    if full:
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


# -- verification ----------------------------------------------------------------------------------


@dataclass
class Verification:
    sha256: str
    size_bytes: int
    files: dict[str, str] | None  # directory format: sha256 of every file, by relative path
    seconds: float
    message: str


def _scrub(text: str, secrets: tuple[str, ...] | list[str] | None) -> str:
    for secret in secrets or ():
        if secret:
            text = text.replace(secret, "********")
    return text


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


def directory_digest(files: dict[str, str]) -> str:
    """The sha256 of a directory archive: of the sha256sum-style listing of its files, sorted by name."""
    listing = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest()


def _hash_file(path: Path, poll: Callable[[], None] = _no_poll) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            poll()
            h.update(chunk)
    return h.hexdigest()


def hash_archive(path: Path, poll: Callable[[], None] = _no_poll) -> tuple[str, int, dict[str, str] | None]:
    """(sha256, size, per-file digests of a directory archive) without any verification."""
    if path.is_dir():
        files = {
            str(p.relative_to(path)): _hash_file(p, poll) for p in sorted(path.rglob("*")) if p.is_file()
        }
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return directory_digest(files), size, files
    return _hash_file(path, poll), path.stat().st_size, None


@contextlib.contextmanager
def _pg_restore_reading_stdin(pg_restore: Path, errors: IO[bytes]) -> Iterator[subprocess.Popen]:
    """``pg_restore --format=custom --file=/dev/null`` reading a custom archive from its stdin (a child as
    _child makes them), through a bigger pipe than the default: fewer wake-ups, and the writer's hashing
    overlaps pg_restore's work."""
    with _child(
        [str(pg_restore), "--format=custom", "--file=/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    ) as proc:
        with contextlib.suppress(OSError):
            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
        yield proc


def verify_archive(path: Path, pg_restore: Path, poll: Callable[[], None] = _no_poll) -> Verification:
    """Read the whole archive back: pg_restore decompresses every data block to /dev/null (a truncated or
    corrupt archive fails), while the same bytes are hashed. ``poll`` is called while it runs (it raises to
    stop; pg_restore is then killed). Raises BackupFailed."""
    started = time.monotonic()
    try:
        with tempfile.TemporaryFile() as errors:
            if path.is_dir():
                # pg_restore reads the files itself; hash them meanwhile (another process, another core)
                with _child(
                    [str(pg_restore), "--format=directory", "--file=/dev/null", str(path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                ) as proc:
                    digest, size, files = hash_archive(path, poll)
                    code = _wait(proc, poll)
            else:
                files = None
                h = hashlib.sha256()
                size = 0
                # one read of the file: hashed, and streamed into pg_restore, which reads it sequentially. On
                # any error pg_restore is killed (it would wait for the end of its input forever)
                with _pg_restore_reading_stdin(pg_restore, errors) as proc:
                    feeding = True
                    with open(path, "rb") as f:
                        while chunk := f.read(_CHUNK):
                            poll()
                            h.update(chunk)
                            size += len(chunk)
                            if feeding:
                                try:
                                    proc.stdin.write(chunk)
                                except BrokenPipeError:
                                    feeding = False  # pg_restore stopped; its exit code says why
                    with contextlib.suppress(OSError):
                        proc.stdin.close()
                    code = _wait(proc, poll)
                digest = h.hexdigest()
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
    except OSError as exc:
        raise BackupFailed(
            f"verification failed: cannot read {path} back: {exc.strerror or exc}",
            hint="The archive was not kept. Check the disk (and the kernel log for I/O errors).",
        ) from exc
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


def _dump(
    argv: list[str],
    env: dict[str, str],
    partial: Path,
    fmt: str,
    pg_restore: Path,
    poll: Callable[[], None] = _no_poll,
) -> _Dump:
    """Run pg_dump; for the custom format, read the archive back *while* it is written.

    pg_dump writes a custom archive sequentially (header, table of contents, then every data block) and
    at the end rewrites only the table of contents in place, to fill in the data offsets. So the file is
    tailed from disk into ``pg_restore --file=/dev/null`` (which reads a pipe sequentially and needs no
    offsets) on another core while pg_dump is still compressing: every data block is read back exactly as
    it stays in the file. ``_confirm_streamed`` then checks the final file (size, sha256, its rewritten
    table of contents); anything unexpected falls back to a full read-back of the final file.

    ``poll`` is called all along (it raises to stop the backup: pg_dump and pg_restore are then killed)."""
    with tempfile.TemporaryFile() as dump_errors:
        with _child(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=dump_errors,
            env=env,
            umask=0o077,
            preexec_fn=child_setup,
        ) as proc:
            streamed = None
            after = 0.0
            if fmt == "custom":
                streamed, after = _tail_into_pg_restore(proc, partial, pg_restore, poll)
            code = _wait(proc, poll)
        dump_errors.seek(0)
        stderr = dump_errors.read().decode(errors="replace")
    return _Dump(code, stderr, streamed if code == 0 else None, after)


def _tail_into_pg_restore(
    proc: subprocess.Popen, partial: Path, pg_restore: Path, poll: Callable[[], None] = _no_poll
) -> tuple[int | None, float]:
    """(bytes read back, seconds after pg_dump's exit), or (None, ...) when the read-back did not pass."""
    with tempfile.TemporaryFile() as errors:
        size, feeding, dump_exited_at = 0, True, None
        with _pg_restore_reading_stdin(pg_restore, errors) as restore:
            with contextlib.suppress(OSError):
                # pg_dump (and the server behind it) first: on a busy machine the read-back yields and
                # catches up at the end rather than slowing the dump
                os.setpriority(os.PRIO_PROCESS, restore.pid, 10)
            f = None
            while f is None:  # pg_dump creates the file first thing
                try:
                    f = open(partial, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    if proc.poll() is not None:
                        break
                    poll()
                    time.sleep(0.005)
            if f is not None:
                with f:
                    while True:
                        poll()
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
            if dump_exited_at is None:
                _kill(restore)  # pg_dump failed before writing anything
            with contextlib.suppress(OSError):
                restore.stdin.close()
            code = _wait(restore, poll)
        errors.seek(0)
        failed = code != 0 or errors.read().strip() or not feeding or dump_exited_at is None
    after = time.monotonic() - dump_exited_at if dump_exited_at is not None else 0.0
    return (None if failed else size), after


def _confirm_streamed(
    archive: Path,
    pg_restore: Path,
    streamed_bytes: int,
    after_dump: float,
    poll: Callable[[], None] = _no_poll,
) -> Verification:
    """The final file is what was read back (same size), its rewritten table of contents reads, and its
    sha256 is taken; otherwise a full read-back of the final file decides."""
    started = time.monotonic()
    try:
        digest, size, _ = hash_archive(archive, poll)
        listing = _run([str(pg_restore), "--list", str(archive)])
    except OSError as exc:
        raise BackupFailed(
            f"verification failed: cannot read {archive} back: {exc.strerror or exc}",
            hint="The archive was not kept. Check the disk (and the kernel log for I/O errors).",
        ) from exc
    if size != streamed_bytes or listing.returncode != 0 or listing.stderr.strip():
        return verify_archive(archive, pg_restore, poll)
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


def _metadata_connection(dsn: str | None) -> psycopg.Connection:
    """The connection that records the backups and holds their advisory locks, with TCP keepalives (unless
    the DSN sets its own): it sits idle for as long as pg_dump runs, and a connection dropped silently
    would take the lock that marks the backup live with it."""
    params = conninfo_to_dict(resolve_dsn(dsn))
    return connect(dsn, autocommit=True, **{k: v for k, v in KEEPALIVES.items() if k not in params})


class _Watch:
    """Called while pg_dump and pg_restore run (and between databases): raises to stop the backup when the
    job was cancelled or passed its deadline, and touches the metadata connection every TOUCH_INTERVAL
    seconds (raising when it is gone: the advisory lock went with it)."""

    def __init__(
        self, conn: psycopg.Connection, cancelled: threading.Event | None, deadline: float | None
    ) -> None:
        self.conn = conn
        self.cancelled = cancelled
        self.deadline = deadline
        self.what = "backup"
        self.touched = time.monotonic()

    def __call__(self) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise BackupCancelled(
                f"{self.what} stopped: the runner cancelled the job (cancelled, timed out, or no longer "
                "this runner's); pg_dump was killed and nothing was kept"
            )
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise BackupCancelled(
                f"{self.what} stopped: the job passed its deadline (the backup worker's timeout); "
                "pg_dump was killed and nothing was kept",
                hint="A database this big backs up faster in the directory format with parallel jobs "
                "(backups.format directory, backups.parallel_jobs).",
            )
        if now - self.touched >= TOUCH_INTERVAL:
            self.touched = now
            try:
                self.conn.execute("SELECT 'autopilot backup running'")
            except psycopg.Error as exc:
                raise BackupFailed(
                    f"{self.what} stopped: lost the connection to the database that records it "
                    f"({_first_line(str(exc))}); its lock went with it, so pg_dump was killed and nothing "
                    "was kept",
                    hint="Check the network between the runner and the server (a proxy or firewall that "
                    "drops idle connections?). The job is retried.",
                ) from exc


def _clean_abandoned(
    conn: psycopg.Connection, identity: dict, directory: Path
) -> tuple[list[int], list[str]]:
    """Rows this database recorded that were left ``running``/``succeeded`` by a runner that died (their
    advisory lock is free): mark them failed and remove their files -- only files the runner made: in
    ``directory``, named as the runner names that row's files, with the runner's intent record
    beside them naming that backup (see own_archive). Anything else is left on disk and reported. Rows
    recorded elsewhere (inherited by a restored copy) are left alone: their files belong to the original.
    (cleaned ids, problems): a row whose leftovers cannot be removed is left as it is, to be tried again."""
    cleaned, problems = [], []
    rows = _backup_rows(
        conn,
        "status IN ('running', 'succeeded') AND details -> 'recorded_in' = %s ORDER BY id",
        [Jsonb(identity)],
    )
    for row in rows:
        backup_id = row.id
        got = conn.execute(
            "SELECT pg_catalog.pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)]
        ).fetchone()[0]
        if not got:
            continue  # still running
        try:
            note = ""
            archive, problem = own_archive(row, directory)
            if problem:
                named = Path(row.file_path) if row.file_path else None
                if named is not None and any(os.path.lexists(p) for p in _leftovers(named)):
                    note = f"; its files were left on disk: {problem}"
                    problems.append(
                        f"abandoned backup #{backup_id}: not removing {row.file_path} (and the files beside "
                        f"it): {problem}; only the runner's own files in the backup directory are deleted"
                    )
            else:
                present = [p for p in _leftovers(archive) if os.path.lexists(p)]
                # the intent record, not the manifest: a manifest is written only for a verified backup, so
                # a row someone turned back to running never gets a verified backup deleted
                record = _read_record(intent_path(archive))
                if present and not _record_names(record, row, archive, identity):
                    note = "; its files were left on disk: no intent record of the runner names them"
                    problems.append(
                        f"abandoned backup #{backup_id}: not removing {archive} (and the files beside it): "
                        "no intent record of the runner names them"
                    )
                elif present:
                    try:
                        for leftover in present:
                            _remove(leftover)
                    except OSError as exc:
                        problems.append(
                            f"abandoned backup #{backup_id}: cannot remove {exc.filename or archive}: "
                            f"{exc.strerror or exc}; left as it is, the next backup tries again"
                        )
                        continue
            conn.execute(
                "UPDATE autopilot.backup_metadata SET status = 'failed', "
                "finished_at = coalesce(finished_at, now()), error = %s "
                "WHERE id = %s AND status IN ('running', 'succeeded')",
                [
                    "abandoned: the backup process stopped before finishing (runner killed or crashed)"
                    + note,
                    backup_id,
                ],
            )
            cleaned.append(backup_id)
        finally:
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
    return cleaned, problems


def prune(
    conn: psycopg.Connection, kind: str, database: str, keep: int, identity: dict, directory: Path
) -> tuple[list[Pruned], list[str], list[str]]:
    """Delete the verified backups of (kind, database) beyond the newest ``keep`` verified ones:
    (pruned, errors, untrusted). Only backups check_backup trusts count and are deleted (their files are in
    ``directory``, named as the runner names them, with their manifest; their times not in the future); the
    others are reported in ``untrusted`` and left as they are, so a forged row can never push a real backup
    out. A record whose archive and manifest are both gone does not count, and becomes ``pruned`` once
    ``keep`` newer backups count. A record
    becomes ``pruned`` only once its files are gone; one whose files cannot be deleted stays ``verified``
    and is reported in ``errors`` (the next backup tries again)."""
    pruned, errors, untrusted = [], [], []
    now = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]
    rows = _backup_rows(
        conn,
        "kind = %s AND database_name = %s AND status = 'verified' ORDER BY finished_at DESC, id DESC",
        [kind, database],
    )
    counted = 0
    for row in rows:
        if not _ours(row.details, identity):
            continue  # recorded by another autopilot database (inherited by a restored copy): not ours
        archive, problem = own_archive(row, directory)
        gone = archive is not None and not any(os.path.lexists(p) for p in (archive, manifest_path(archive)))
        if gone and counted < keep:
            continue  # files gone (deleted by hand, an unmounted disk?): pruned once older than the kept ones
        if not gone:
            problem = check_backup(row, directory, now, identity=identity)
            if problem:
                untrusted.append(
                    f"{kind} backup #{row.id} of {database} is not trusted ({problem}): it does not count "
                    "toward retention and is left as it is"
                )
                continue
            counted += 1
            if counted <= keep:
                continue
        removed = False
        if not gone:
            try:
                removed = _remove(archive)
                _remove(manifest_path(archive))  # last: a manifest without its archive is obviously dangling
            except OSError as exc:
                errors.append(
                    f"cannot delete {kind} backup #{row.id} of {database} "
                    f"({exc.filename or archive}): {exc.strerror or exc}; it stays verified and the next "
                    "backup tries again"
                )
                continue
        changed = conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'pruned', "
            "details = details || pg_catalog.jsonb_build_object('pruned_at', pg_catalog.now()) "
            "WHERE id = %s AND status = 'verified'",
            [row.id],
        ).rowcount
        if changed:
            pruned.append(Pruned(row.id, database, row.file_path, removed, gone))
    return pruned, errors, untrusted


def run_backup(
    dsn: str | None,
    kind: str = "manual",
    *,
    directory: str | None = None,
    job_id: int | None = None,
    cancelled: threading.Event | None = None,
    deadline: float | None = None,
) -> BackupResult:
    """Back up every database of ``backups.databases`` (default: the DSN's); see the module docstring.

    ``job_id``: the runner job this is an attempt of. It is recorded with each backup, and an attempt backs
    up only the databases that have no verified backup from this job yet (a retry after one database failed
    does not take, and prune for, the others again). ``cancelled`` (set: stop) and ``deadline`` (a
    ``time.monotonic()`` value) are watched while pg_dump and the verification run: either kills them and
    raises BackupCancelled.

    Raises BackupFailed when any database failed (the others are still backed up; ``exc.result``)."""
    if kind not in KINDS:
        raise AutopilotError(f"unknown backup kind {kind!r}; one of {', '.join(KINDS)}")
    try:
        conn = _metadata_connection(dsn)
    except AutopilotError as exc:
        raise BackupFailed(f"backup not started: {exc.message}", hint=exc.hint) from exc
    try:
        with conn:
            return _run_backup(conn, dsn, kind, directory, job_id, _Watch(conn, cancelled, deadline))
    except psycopg.Error as exc:  # e.g. the server went away mid-run: still a BackupFailed for the runner
        raise BackupFailed(f"backup failed: {translate(exc).message}") from exc
    except OSError as exc:  # the file system refused something outside any one database's backup
        raise BackupFailed(f"backup failed: {exc}") from exc


def _verified_by_job(conn: psycopg.Connection, kind: str, job_id: int, identity: dict) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT database_name FROM autopilot.backup_metadata "
            "WHERE kind = %s AND details -> 'job_id' = to_jsonb(%s::bigint) AND verified_at IS NOT NULL "
            "AND status IN ('verified', 'pruned') AND details -> 'recorded_in' = %s",
            [kind, job_id, Jsonb(identity)],
        ).fetchall()
    }


def _record_failed(
    conn: psycopg.Connection,
    kind: str,
    databases: list[str],
    message: str,
    details: dict,
) -> None:
    """A failed row for each database a backup could not even start for (`autopilot status` shows it)."""
    with contextlib.suppress(psycopg.Error):
        for database in databases:
            conn.execute(
                "INSERT INTO autopilot.backup_metadata (kind, database_name, status, finished_at, error, "
                "details) VALUES (%s, %s, 'failed', clock_timestamp(), %s, %s)",
                [kind, database, message, Jsonb(details)],
            )


def _run_backup(
    conn: psycopg.Connection,
    dsn: str | None,
    kind: str,
    directory: str | None,
    job_id: int | None,
    watch: _Watch,
) -> BackupResult:
    if installer.installed(conn) is None:
        raise BackupFailed(
            f'autopilot is not installed in database "{conn.info.dbname}": nowhere to record backups',
            hint="Run `autopilot install`, or point --dsn at the database autopilot is installed in.",
        )
    settings = read_settings(conn)
    target = Path(directory) if directory else settings.directory
    target = target.absolute()
    result = BackupResult(kind, target)
    identity = _identity(conn)
    databases = list(settings.databases)
    if job_id is not None:
        done = _verified_by_job(conn, kind, job_id, identity)
        result.skipped = [d for d in databases if d in done]
        databases = [d for d in databases if d not in done]
        if not databases:
            return result
    base = {"format": settings.format, "recorded_in": identity}
    if job_id is not None:
        base["job_id"] = job_id
    try:
        server_major = conn.info.server_version // 10000
        bindir = pg_bindir(server_major)
        pg_dump, pg_restore = bindir / "pg_dump", bindir / "pg_restore"
        dump_version = program_version(pg_dump)
        check_pg_dump_version(dump_version, conn.info.server_version, str(pg_dump))
        _prepare_directory(target)
    except BackupFailed as exc:
        _record_failed(conn, kind, databases, exc.message, base)
        raise
    target = result.directory = _resolved(target)
    result.abandoned, result.warnings = _clean_abandoned(conn, identity, target)
    with contextlib.suppress(OSError, BackupFailed):
        sweep_private()  # the passfiles of a run killed outright
    with contextlib.suppress(psycopg.Error):
        _dropped, problems = drop_half_restored(conn)
        result.warnings += problems
    common = {
        "server_version": conn.execute("SHOW server_version").fetchone()[0],
        "pg_dump_version": dump_version,
        "pg_dump": str(pg_dump),
        "autopilot_version": installer.installed(conn).version,
        "pg_autopilot_version": __version__,
    }
    last_hint = None
    stopped = False
    for n, database in enumerate(databases):
        watch.what = f'backup of database "{database}"'
        try:
            watch()  # cancelled or past the deadline: start no other database
            result.backups.append(
                _backup_one(
                    conn,
                    dsn,
                    database,
                    kind,
                    target,
                    settings,
                    {**base, **common},
                    pg_dump,
                    pg_restore,
                    watch,
                )
            )
            result.warnings += result.backups[-1].untrusted
        except BackupFailed as exc:
            result.failures[database] = exc.message
            last_hint = exc.hint
            stopped = isinstance(exc, BackupCancelled)
            if stopped or conn.broken:
                for rest in databases[n + 1 :]:
                    result.failures[rest] = "not started: " + (
                        "the backup was stopped"
                        if stopped
                        else "the connection recording the backups was lost"
                    )
                break
    if result.failures:
        if len(result.failures) == 1 and len(settings.databases) == 1:
            message = next(iter(result.failures.values()))
        else:
            message = "backup failed for " + "; ".join(f"{d}: {e}" for d, e in result.failures.items())
        failure = (BackupCancelled if stopped else BackupFailed)(message, hint=last_hint)
        failure.result = result
        raise failure
    return result


_MARK_FAILED = (
    "UPDATE autopilot.backup_metadata SET status = 'failed', finished_at = clock_timestamp(), error = %s "
    "WHERE id = %s AND status IN ('running', 'succeeded')"
)


def _mark_failed(conn: psycopg.Connection, dsn: str | None, backup_id: int, message: str) -> None:
    """Record the failure, unless someone else already did (the row is no longer running/succeeded). When
    the connection is gone, a new one records it."""
    try:
        conn.execute(_MARK_FAILED, [message, backup_id])
        return
    except psycopg.Error:
        if not conn.broken:
            return
    with contextlib.suppress(psycopg.Error, AutopilotError), _metadata_connection(dsn) as other:
        other.execute(_MARK_FAILED, [message, backup_id])


def _changed_underneath(
    conn: psycopg.Connection, backup_id: int, database: str, expected: str
) -> BackupFailed:
    row = conn.execute(
        "SELECT status, error FROM autopilot.backup_metadata WHERE id = %s", [backup_id]
    ).fetchone()
    now = (row[0] + (f" ({row[1]})" if row[1] else "")) if row else "deleted"
    return BackupFailed(
        f'backup #{backup_id} of database "{database}" was changed by someone else while it ran: it is '
        f"{now}, not {expected}; its files were removed",
        hint="Another runner took it for abandoned: the connection that holds a backup's advisory lock must "
        "keep its session (not a pooler in transaction mode). The job is retried.",
    )


def _backup_one(
    conn: psycopg.Connection,
    dsn: str | None,
    database: str,
    kind: str,
    directory: Path,
    settings: Settings,
    details: dict,
    pg_dump: Path,
    pg_restore: Path,
    watch: _Watch,
) -> DatabaseBackup:
    fmt = settings.format
    identity = details["recorded_in"]
    backup_id = None
    try:
        # one transaction: the row is locked before anyone can see it, so a concurrent cleanup of abandoned
        # backups never takes it for one
        with conn.transaction():
            backup_id, started_at = conn.execute(
                "INSERT INTO autopilot.backup_metadata (kind, database_name, status, details) "
                "VALUES (%s, %s, 'running', %s) RETURNING id, started_at",
                [kind, database, Jsonb(details)],
            ).fetchone()
            conn.execute("SELECT pg_catalog.pg_advisory_lock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])
            archive = directory / archive_name(database, kind, started_at, backup_id, fmt)
            conn.execute(
                "UPDATE autopilot.backup_metadata SET file_path = %s WHERE id = %s", [str(archive), backup_id]
            )
    except psycopg.Error as exc:
        if backup_id is not None:
            with contextlib.suppress(psycopg.Error):
                conn.execute(
                    "SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)]
                )
        raise BackupFailed(f'backup of database "{database}" not started: {translate(exc).message}') from exc
    partial, _, manifest, manifest_partial, intent_partial, intent = _leftovers(archive)
    _register_private(
        partial, manifest_partial, intent_partial, intent
    )  # removed at interpreter exit if still there
    secrets: tuple[str, ...] = ()
    try:
        # the runner's record of the files it is about to make: the cleanup of an abandoned backup deletes
        # only files a record of the runner names (a row alone, which the runner's role can write, is not
        # enough)
        _write_manifest(
            intent,
            {
                "intent_version": 1,
                "backup_id": backup_id,
                "database": database,
                "kind": kind,
                "format": fmt,
                "file": archive.name,
                "started_at": started_at.isoformat(),
                "recorded_in": identity,
                "pid": os.getpid(),
            },
        )
        with libpq_target(dsn, database) as (conninfo, env, secrets):
            argv = pg_dump_argv(
                pg_dump, conninfo, partial, fmt, settings.lock_wait_timeout, settings.parallel_jobs
            )
            t0 = time.monotonic()
            dump = _dump(argv, env, partial, fmt, pg_restore, watch)
            dump_seconds = time.monotonic() - t0
        stderr = _scrub(dump.stderr, secrets)
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
        if not conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'succeeded', finished_at = %s, "
            "details = details || %s WHERE id = %s AND status = 'running'",
            [finished_at, Jsonb({"dump_seconds": round(dump_seconds, 3)}), backup_id],
        ).rowcount:
            raise _changed_underneath(conn, backup_id, database, "running")

        if dump.streamed_bytes is not None:
            verification = _confirm_streamed(
                archive, pg_restore, dump.streamed_bytes, dump.after_dump_seconds, watch
            )
        else:
            verification = verify_archive(archive, pg_restore, watch)
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
            **{k: v for k, v in details.items() if k not in ("pg_dump", "recorded_in", "format")},
        }
        if verification.files is not None:
            body["files"] = verification.files
        _write_manifest(manifest, body)
        if not conn.execute(
            "UPDATE autopilot.backup_metadata SET status = 'verified', size_bytes = %s, sha256 = %s, "
            "verified_at = %s, verification = %s, details = details || %s "
            "WHERE id = %s AND status = 'succeeded'",
            [
                verification.size_bytes,
                verification.sha256,
                verified_at,
                verification.message,
                Jsonb({"verify_seconds": round(verification.seconds, 3), "manifest": str(manifest)}),
                backup_id,
            ],
        ).rowcount:
            raise _changed_underneath(conn, backup_id, database, "succeeded")
        _remove(intent)
        _fsync_path(directory)
    except BaseException as exc:
        left = []
        for leftover in _leftovers(archive):
            try:
                _remove(leftover)
            except OSError as err:
                left.append(f"{err.filename or leftover} ({err.strerror or err})")
        if isinstance(exc, KeyboardInterrupt):
            message = (
                f'backup of database "{database}" interrupted ({exc or "SIGINT"}): pg_dump was stopped, '
                "nothing was kept"
            )
        elif isinstance(exc, AutopilotError):
            message = exc.message
        else:
            message = f"{type(exc).__name__}: {exc}"
        if left:
            message += "; and could not remove " + ", ".join(left)
        message = _scrub(message, secrets)
        _mark_failed(conn, dsn, backup_id, message)
        if isinstance(exc, BackupFailed):
            exc.message = message
            exc.args = (message,)
            raise
        if isinstance(exc, OSError | AutopilotError | psycopg.Error):
            raise BackupFailed(f'backup of database "{database}" failed: {message}') from exc
        raise
    finally:
        _unregister_private(partial, manifest_partial, intent_partial, intent)
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", [LOCK_CLASS, _lock_key(backup_id)])

    untrusted: list[str] = []
    try:
        pruned, prune_errors, untrusted = prune(
            conn, kind, database, settings.keep[kind], identity, directory
        )
    except psycopg.Error as exc:  # the backup itself is verified: report, do not fail it
        pruned, prune_errors = (
            [],
            [f"retention of {kind} backups of {database} not applied: {translate(exc).message}"],
        )
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
        prune_errors,
        untrusted,
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
    skipped: list[str] = field(default_factory=list)  # newer verified rows not trusted, so not chosen
    excluded: list[str] = field(default_factory=list)  # archive entries not restored (pg_cron's own)
    dropped: list[str] = field(default_factory=list)  # half-restored databases of earlier restores, dropped
    warnings: list[str] = field(default_factory=list)


def _restoring_prefix(conn: psycopg.Connection) -> str:
    """The name a restore gives its new database until pg_restore has finished: per autopilot database
    (its oid), so that one autopilot database never takes another's running restore for a dead one."""
    oid = conn.execute(
        "SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()"
    ).fetchone()[0]
    return f"{RESTORING_PREFIX}{oid}_"


def half_restored(conn: psycopg.Connection) -> list[dict]:
    """The databases restores from this autopilot database are restoring into, or left half-restored: name,
    what it was for (its comment), whether a restore still runs into it (its lock is held), whether this
    role may drop it."""
    rows = conn.execute(
        "SELECT d.datname::text, pg_catalog.shobj_description(d.oid, 'pg_database'), "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_locks AS l WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT o.oid FROM pg_catalog.pg_database AS o "
        "WHERE o.datname = pg_catalog.current_database()) "
        "AND l.classid = %s::oid AND l.objid = pg_catalog.hashtext(d.datname::text)::oid "
        "AND l.objsubid = 2), "
        "pg_catalog.pg_has_role(d.datdba, 'MEMBER') "
        "FROM pg_catalog.pg_database AS d WHERE pg_catalog.starts_with(d.datname::text, %s) ORDER BY 1",
        [RESTORE_LOCK_CLASS, _restoring_prefix(conn)],
    ).fetchall()
    return [{"database": r[0], "about": r[1], "restoring": r[2], "owned": r[3]} for r in rows]


def drop_half_restored(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """Drop the databases earlier restores from this autopilot database left half-restored (their restore is
    gone: its lock is free, e.g. after a server restart or a SIGKILL), where this role may: (dropped,
    problems). Called by every restore and backup."""
    dropped, problems = [], []
    for entry in half_restored(conn):
        name = entry["database"]
        if entry["restoring"] or not entry["owned"]:
            continue
        if not conn.execute(
            "SELECT pg_catalog.pg_try_advisory_lock(%s, pg_catalog.hashtext(%s))", [RESTORE_LOCK_CLASS, name]
        ).fetchone()[0]:
            continue
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            dropped.append(name)
        except psycopg.Error as exc:
            problems.append(f'cannot drop the half-restored database "{name}": {translate(exc).message}')
        finally:
            conn.execute(
                "SELECT pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))",
                [RESTORE_LOCK_CLASS, name],
            )
    return dropped, problems


# pg_cron's own objects in a `pg_restore --list`: the extension (it can only be created in the database
# cron.database_name names, so restoring it into a copy fails), its comment, and everything in schema cron
# (its jobs and their history, the sequences): the copy gets no pg_cron schedules
_PG_CRON_EXTENSION = re.compile(r"^\d+; \d+ \d+ EXTENSION - pg_cron ")
_PG_CRON_ENTRY = re.compile(
    r"^\d+; \d+ \d+ (?:EXTENSION - pg_cron |COMMENT - EXTENSION pg_cron |SCHEMA - cron |ACL - SCHEMA cron "
    r"|[A-Z][A-Z ]*? cron )"
)


def restore_list(pg_restore: Path, archive: Path) -> tuple[str | None, list[str]]:
    """(a ``--use-list`` listing without pg_cron's objects, the entries left out), or (None, []) when the
    archive holds no pg_cron."""
    listing = _run([str(pg_restore), "--list", str(archive)])
    text = listing.stdout.decode(errors="replace")
    if listing.returncode != 0:
        raise RestoreFailed(
            f"cannot list {archive}: {_first_line(listing.stderr.decode(errors='replace'))}",
        )
    lines = text.splitlines(keepends=True)
    if not any(_PG_CRON_EXTENSION.match(line) for line in lines):
        return None, []
    excluded = [line.strip() for line in lines if _PG_CRON_ENTRY.match(line)]
    kept = "".join(";" + line if _PG_CRON_ENTRY.match(line) else line for line in lines)
    return kept, excluded


def _drop_restoring(conn: psycopg.Connection, dsn: str | None, name: str) -> tuple[bool, str | None]:
    """Drop the database a failed restore was restoring into, through a new connection when ``conn`` is gone,
    retrying for RESTORE_DROP_WAIT seconds while the server cannot be reached (it restarts): (dropped, why
    not)."""
    deadline = time.monotonic() + RESTORE_DROP_WAIT
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    while True:
        try:
            if not conn.closed and not conn.broken:
                conn.execute(drop)
            else:
                with connect(dsn, autocommit=True) as other:
                    other.execute(drop)
            return True, None
        except (psycopg.Error, AutopilotError) as exc:
            reason = exc.message if isinstance(exc, AutopilotError) else translate(exc).message
            unreachable = isinstance(exc, ConnectionFailed | psycopg.OperationalError) or conn.broken
            if not unreachable or time.monotonic() >= deadline:
                return False, _first_line(reason)
        time.sleep(0.5)


def restore_backup(
    dsn: str | None,
    backup_id: int | None,
    into: str,
    *,
    database: str | None = None,
    jobs: int = 1,
    directory: str | Path | None = None,
) -> RestoreResult:
    """Restore a verified backup (default: the latest verified one that can be trusted, of ``database`` when
    given) into the NEW database ``into``, after checking that the backup is the runner's (check_backup: in
    ``directory``, default backups.directory, named as the runner names it, its manifest, no future times)
    and its sha256. An existing database is refused. pg_cron's own objects are not restored (see
    restore_list).

    pg_restore restores into a database of a temporary name (RESTORING_PREFIX...), renamed to ``into`` only
    once it has succeeded: ``into`` never exists half-restored. A failed or interrupted restore drops the
    temporary database at once, or -- when the server cannot be reached (a restart) -- the next restore or
    backup drops it; `autopilot status` shows it until then."""
    with connect(dsn, autocommit=True) as conn:
        if installer.installed(conn) is None:
            raise RestoreFailed(f'autopilot is not installed in database "{conn.info.dbname}"')
        dropped, warnings = drop_half_restored(conn)
        with contextlib.suppress(OSError, BackupFailed):
            sweep_private()  # the passfiles of a run killed outright
        exists = conn.execute("SELECT 1 FROM pg_catalog.pg_database WHERE datname = %s", [into]).fetchone()
        if exists:
            raise RestoreFailed(
                f'database "{into}" already exists: restore only into a new database',
                hint="Choose another --into name (nothing was changed).",
            )
        if directory is None:
            directory = conn.execute("SELECT autopilot.get_setting('backups.directory')").fetchone()[0]
        where = Path(directory)
        now = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()[0]
        skipped: list[str] = []
        if backup_id is None:
            chosen = None
            for row in _backup_rows(
                conn,
                "status = 'verified' AND (%s::text IS NULL OR database_name = %s) "
                "ORDER BY finished_at DESC, id DESC",
                [database, database],
            ):
                problem = check_backup(row, where, now)
                if problem is None:
                    chosen = row
                    break
                skipped.append(
                    f"backup #{row.id} of {row.database} not chosen: it is not trusted ({problem})"
                )
            if chosen is None:
                raise RestoreFailed(
                    "no verified backup to restore"
                    + (f' of database "{database}"' if database else "")
                    + (f" that can be trusted; {'; '.join(skipped[:3])}" if skipped else ""),
                    hint="Take one with `autopilot runner backup`"
                    + (" (or pass --directory: where the backups are)." if skipped else "."),
                )
        else:
            found = _backup_rows(conn, "id = %s", [backup_id])
            if not found:
                raise RestoreFailed(f"no backup #{backup_id} in autopilot.backup_metadata")
            chosen = found[0]
            if chosen.status != "verified":
                raise RestoreFailed(
                    f"backup #{chosen.id} is {chosen.status}, not verified: it cannot be restored"
                )
        problem = check_backup(chosen, where, now, full=True)
        if problem:
            raise RestoreFailed(
                f"backup #{chosen.id} cannot be restored: {problem}",
                hint="Nothing was changed. A backup is restored only from the backup directory "
                "(--directory), as the runner wrote it; run the restore as an OS user that can read it.",
            )
        archive, _ = own_archive(chosen, where)
        bindir = pg_bindir(conn.info.server_version // 10000, "pg_restore")
        listing, excluded = restore_list(bindir / "pg_restore", archive)
        restoring = _restoring_prefix(conn) + secrets_mod.token_hex(8)
        conn.execute(
            "SELECT pg_catalog.pg_advisory_lock(%s, pg_catalog.hashtext(%s))", [RESTORE_LOCK_CLASS, restoring]
        )
        started = time.monotonic()
        created = False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(restoring)))
            created = True
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(restoring),
                    sql.Literal(f'autopilot: restoring backup #{chosen.id} into "{into}"'),
                )
            )
            with contextlib.ExitStack() as stack:
                conninfo, env, secrets = stack.enter_context(libpq_target(dsn, restoring))
                argv = [
                    str(bindir / "pg_restore"),
                    "--exit-on-error",
                    "--no-password",
                    f"--dbname={conninfo}",
                ]
                if jobs > 1:
                    argv.append(f"--jobs={jobs}")
                if listing is not None:
                    listfile = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".list"))
                    listfile.write(listing)
                    listfile.flush()
                    argv.append(f"--use-list={listfile.name}")
                argv.append(str(archive))
                with tempfile.TemporaryFile() as errors:
                    with _child(
                        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, env=env
                    ) as proc:
                        code = proc.wait()
                    errors.seek(0)
                    stderr = _scrub(errors.read().decode(errors="replace"), secrets)
            if code != 0:
                raise RestoreFailed(
                    f'restoring backup #{chosen.id} into "{into}" failed: '
                    f"{_first_line(stderr) or f'pg_restore exited with code {code}'}"
                )
            _rename_restored(conn, restoring, into)
            created = False
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("COMMENT ON DATABASE {} IS NULL").format(sql.Identifier(into)))
        except BaseException as exc:
            if not created:
                raise
            gone, why = _drop_restoring(conn, dsn, restoring)
            if gone:
                outcome = f'the new database was dropped again (nothing of "{into}" is left)'
            else:
                outcome = (
                    f'the half-restored database "{restoring}" could NOT be dropped now ({why}): the '
                    "next `autopilot runner restore` or backup drops it, and `autopilot status` shows it "
                    "until then"
                )
            if isinstance(exc, RestoreFailed):
                exc.hint = outcome[0].upper() + outcome[1:] + "."
                raise
            if isinstance(exc, KeyboardInterrupt):
                what = f"interrupted ({exc or 'SIGINT'})"
            elif isinstance(exc, psycopg.Error):
                what = f"failed: {translate(exc).message}"
            else:
                what = f"failed: {exc}"
            raise RestoreFailed(
                f'restoring backup #{chosen.id} into "{into}" {what}',
                hint=outcome[0].upper() + outcome[1:] + ".",
            ) from exc
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute(
                    "SELECT pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))",
                    [RESTORE_LOCK_CLASS, restoring],
                )
        return RestoreResult(
            chosen.id,
            chosen.database,
            into,
            archive,
            chosen.sha256,
            time.monotonic() - started,
            skipped,
            excluded,
            dropped,
            warnings,
        )


def _rename_restored(conn: psycopg.Connection, restoring: str, into: str) -> None:
    """ALTER DATABASE ... RENAME, waiting (a few seconds) for pg_restore's sessions to be gone."""
    deadline = time.monotonic() + 10
    while True:
        try:
            conn.execute(
                sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(restoring), sql.Identifier(into)
                )
            )
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
        except psycopg.errors.DuplicateDatabase as exc:
            raise RestoreFailed(
                f'database "{into}" was created while the backup was restored: restore only into a new '
                "database"
            ) from exc


# -- status ----------------------------------------------------------------------------------------


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
    databases = []
    for database in settings.databases:
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
        databases.append(
            {
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
        )
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
