"""The rows of autopilot.backup_metadata: reading them, which autopilot database recorded them, the
advisory lock of a running backup, and the connection that records them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.conninfo import conninfo_to_dict

from ..db import connect, resolve_dsn

# advisory lock (int4, int4) space: (this class, backup id) is held while a backup runs
LOCK_CLASS = 0x6170_6275  # "apbu"
# TCP keepalives of the metadata connection (unless the DSN sets its own)
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "60",
    "keepalives_interval": "10",
    "keepalives_count": "6",
}


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
