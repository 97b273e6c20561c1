"""autopilot.health read from Python: the problems behind `autopilot check` and `autopilot status`.

The view covers what this database can see. When pg_cron lives in another database, pg_cron's jobs are
read there (schedules.cron_jobs) and handed to ``autopilot._health``, which returns the same rows with the
pg_cron checks added."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from . import schedules
from .db import other_database
from .errors import AutopilotError

SEVERITIES = ("critical", "warning")
# monitoring-plugin exit codes (Nagios, Icinga)
OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATUS_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}

# a problem in a few words, for the summary line
_SHORT = {
    "job_overdue": "job {} overdue",
    "job_failed": "job {} failed",
    "job_timed_out": "job {} timed out",
    "cron_inactive": "pg_cron job {} inactive",
    "cron_missing": "pg_cron job {} missing",
    "cron_out_of_sync": "pg_cron job {} out of sync",
    "cron_never_run": "pg_cron job {} never run",
    "backup_overdue": "backup of {} overdue",
    "backup_unverified": "backup of {} unverified",
    "backup_missing": "backup file of {} missing",
    "runner_absent": "no runner for {}",
    "queue_stalled": "queue {} stalled",
    "jobs_discarded": "jobs discarded in queue {}",
}


@dataclass(frozen=True)
class Problem:
    severity: str
    check_name: str
    subject: str
    message: str
    since: datetime | None

    @property
    def short(self) -> str:
        return _SHORT.get(self.check_name, self.check_name.replace("_", " ") + " {}").format(self.subject)

    def as_json(self) -> dict:
        return {
            "severity": self.severity,
            "check_name": self.check_name,
            "subject": self.subject,
            "message": self.message,
            "since": self.since.isoformat() if self.since else None,
        }


def available(conn: psycopg.Connection) -> bool:
    """The installed autopilot has autopilot.health (0.4.0 on)."""
    return conn.execute("SELECT to_regclass('autopilot.health') IS NOT NULL").fetchone()[0]


def problems(
    conn: psycopg.Connection,
    dsn: str | None,
    location: schedules.CronLocation | None = None,
    cron: dict[str, dict] | None = None,
) -> list[Problem]:
    """Every problem of autopilot.health, with pg_cron's checks from the pg_cron database when it is another
    one (``location`` and ``cron``: what the caller already read, else read here)."""
    with conn.cursor(row_factory=dict_row) as cur:
        side = cur.execute("SELECT autopilot._health_cron_jobs() AS side").fetchone()["side"]
        if side is not None and "jobs" not in side:
            # pg_cron lives in another database: read its jobs there, check them here
            if location is None or cron is None:
                # one connection to pg_cron's database for both questions (`check` is started often);
                # where it cannot be opened, each question says why as it would alone
                with _connection_or_none(dsn, side["database"]) as cron_conn:
                    location = location or schedules.locate(conn, dsn, cron_conn)
                    if location.explanation is None and cron is None:
                        cron = schedules.cron_jobs(conn, dsn, location, cron_conn)
            if location.explanation is None:
                jobs = [_jsonable(job) for job in (cron or {}).values()]
                side = {"database": side["database"], "jobs": jobs}
            rows = cur.execute(
                "SELECT severity, check_name, subject, message, since FROM autopilot._health(%s)",
                [Jsonb(side)],
            ).fetchall()
        else:
            rows = cur.execute(
                "SELECT severity, check_name, subject, message, since FROM autopilot.health"
            ).fetchall()
    return [Problem(**row) for row in rows]


@contextlib.contextmanager
def _connection_or_none(dsn: str | None, database: str) -> Iterator[psycopg.Connection | None]:
    try:
        conn = other_database(dsn, database, autocommit=True)
    except (AutopilotError, psycopg.Error):
        conn = None
    if conn is None:
        yield None
        return
    with conn:
        yield conn


def _jsonable(job: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in job.items()}


def exit_code(found: list[Problem]) -> int:
    if any(p.severity == "critical" for p in found):
        return CRITICAL
    return WARNING if found else OK


def summary(found: list[Problem], limit: int = 200) -> str:
    """The first line of `autopilot check`: AUTOPILOT <STATUS> - counts: the problems in a few words."""
    code = exit_code(found)
    if not found:
        return "AUTOPILOT OK - no problems"
    counts = ", ".join(
        f"{n} {severity}" for severity in SEVERITIES if (n := sum(p.severity == severity for p in found))
    )
    words = ", ".join(p.short for p in found)
    if len(words) > limit:
        words = words[: limit - 3].rstrip(", ") + "..."
    return f"AUTOPILOT {STATUS_NAMES[code]} - {counts}: {words}"
