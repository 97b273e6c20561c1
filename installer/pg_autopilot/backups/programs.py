"""The PostgreSQL client programs: where pg_dump and pg_restore are, their version, pg_dump's command line."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

from ..errors import BackupFailed


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
