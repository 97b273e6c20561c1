"""Connection settings for pg_dump / pg_restore, without any secret on the command line: the passfile and
service file in a private run directory."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..db import resolve_dsn
from ..errors import BackupFailed
from .processes import _register_private, _unregister_private

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
