"""The backups.* settings of the autopilot database, read and checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg

from ..errors import BackupFailed

KINDS = ("hourly", "daily", "manual")
FORMATS = ("custom", "directory")


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
