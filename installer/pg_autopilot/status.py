"""`autopilot status`: every catalog job, pg_cron's view of it, its last and next run, and the queue."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import psycopg
from croniter import croniter
from psycopg.rows import dict_row

from . import health, installer, schedules
from .backups.status import backup_status
from .errors import NotInstalled
from .queue import QueueClient

QUEUE_STATES = (
    "available",
    "scheduled",
    "waiting",
    "executing",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
)


# pg_cron 1.5+: "N seconds"
_SECONDS = re.compile(r"\s*(\d+)\s*seconds?\s*", re.IGNORECASE)


def next_runs(schedule: str, only_on_dow: int | None, after: datetime, count: int = 1) -> list[datetime]:
    """The next fire times of a schedule (UTC), keeping only the catalog's weekday when set: five
    fields or a macro as croniter reads them, "$" (pg_cron 1.6) as the last day of the month."""
    if seconds := _SECONDS.fullmatch(schedule):
        # pg_cron starts such a job N seconds after its previous start, at no clock tick
        step = timedelta(seconds=int(seconds[1]))
        return [after + step * (i + 1) for i in range(count)]
    fields = schedule.split()
    if len(fields) == 5 and fields[2] == "$":
        schedule = " ".join([*fields[:2], "L", *fields[3:]])
    it = croniter(schedule, after.astimezone(UTC))
    found: list[datetime] = []
    for _ in range(count * 400):
        fire = it.get_next(datetime)
        # croniter's weekday: Monday 0; the catalog's (cron's): Sunday 0
        if only_on_dow is None or (fire.weekday() + 1) % 7 == only_on_dow:
            found.append(fire)
            if len(found) == count:
                break
    return found


def interval_of(schedule: str, only_on_dow: int | None, now: datetime) -> timedelta:
    """The longest gap between consecutive runs over the coming fires: what "on time" means."""
    fires = next_runs(schedule, only_on_dow, now, count=12 if only_on_dow is None else 6)
    gaps = [b - a for a, b in pairwise(fires)]
    return max(gaps) if gaps else timedelta(days=31)


@dataclass
class Status:
    database: str
    version: str
    mode: str
    cron: schedules.CronLocation
    jobs: list[dict]
    queue: dict[str, int]
    now: datetime
    # the last verified backup of every configured database (None before autopilot 0.3.0)
    backups: dict | None = None
    # the runner jobs executing now, with their workers' latest progress reports
    executing: list[dict] = field(default_factory=list)
    # waiting jobs that a discarded or cancelled dependency holds, with that dependency
    held: list[dict] = field(default_factory=list)
    # what `autopilot sync` would change in pg_cron (action, jobname): empty when in step
    out_of_sync: list[dict] = field(default_factory=list)

    @property
    def sync_hint(self) -> str | None:
        """The line that says pg_cron is out of sync with the catalog, and what to run; None when in step."""
        if not self.out_of_sync:
            return None
        n = len(self.out_of_sync)
        also = " (or SELECT * FROM autopilot.sync_schedules(); in this database)" if self.cron.local else ""
        return (
            f"pg_cron is out of sync with the catalog ({n} job{'s' if n != 1 else ''} to change): "
            f"run `autopilot sync` on this database{also}"
        )

    # autopilot.health's problems (None before autopilot 0.4.0, which has no such view)
    problems: list[health.Problem] | None = None

    @property
    def exit_code(self) -> int:
        """2 when autopilot.health has a critical problem, else 1 when pg_cron is out of sync with the
        catalog, else 0 (warnings are shown, not failed on)."""
        if self.problems and health.exit_code(self.problems) == health.CRITICAL:
            return health.CRITICAL
        return 1 if self.out_of_sync else 0

    def as_json(self) -> dict:
        return {
            "database": self.database,
            "version": self.version,
            "mode": self.mode,
            "pg_cron": {
                "database": self.cron.database,
                "local": self.cron.local,
                "scheduled": self.cron.explanation is None,
                "message": self.cron.explanation,
                "out_of_sync": self.out_of_sync,
                "sync_hint": self.sync_hint,
            },
            "jobs": [{k: _jsonable(v) for k, v in job.items()} for job in self.jobs],
            "queue": self.queue,
            "executing": [{k: _jsonable(v) for k, v in job.items()} for job in self.executing],
            "held": self.held,
            "backups": _backups_json(self.backups),
            "problems": None if self.problems is None else [p.as_json() for p in self.problems],
            "generated_at": self.now.isoformat(),
        }


def _backups_json(backups: dict | None) -> dict | None:
    if backups is None:
        return None
    return {
        **{k: _jsonable(v) for k, v in backups.items() if k != "databases"},
        "databases": [{k: _jsonable(v) for k, v in d.items()} for d in backups["databases"]],
    }


def _jsonable(value):
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):  # a backup's problems, a running backup's progress
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def gather(conn: psycopg.Connection, dsn: str | None) -> Status:
    current = installer.installed(conn)
    if current is None:
        raise NotInstalled("autopilot is not installed in this database", hint="Run `autopilot install`.")
    # a few dozen index probes: compiling them (JIT, 0.5 s at 1M ledger rows, where the planner's
    # estimates pass jit_above_cost) costs more than running them
    conn.execute("SELECT pg_catalog.set_config('jit', 'off', false)")
    location, cron = schedules.visible_cron_jobs(conn, dsn)
    with conn.cursor(row_factory=dict_row) as cur:
        now = cur.execute("SELECT now() AS now").fetchone()["now"]
        rows = cur.execute(
            """
            SELECT s.*, first_run.started_at AS first_started_at
            FROM autopilot.job_status AS s
            LEFT JOIN LATERAL (
                SELECT r.started_at FROM autopilot.job_runs AS r
                WHERE r.job_name = s.name ORDER BY r.started_at LIMIT 1
            ) AS first_run ON true
            ORDER BY s.side, s.name
            """
        ).fetchall()
        queue = dict.fromkeys(QUEUE_STATES, 0)
        for r in cur.execute("SELECT state, count(*) AS n FROM autopilot.jobs GROUP BY state").fetchall():
            queue[r["state"]] = r["n"]
    out_of_sync = schedules.pending_changes(conn, location, cron)
    problems = health.problems(conn, dsn, location, cron) if health.available(conn) else None
    overdue = {p.subject for p in problems or [] if p.check_name == "job_overdue"}
    jobs = [_job_view(row, cron.get(row["cron_jobname"]), location, now, overdue) for row in rows]
    backups = backup_status(conn, now)
    queue_client = QueueClient(lambda: contextlib.nullcontext(conn))
    executing = queue_client.executing()
    held = queue_client.held() if queue["waiting"] else []  # no query when nothing waits (nor before 0.4.0)
    return Status(
        conn.info.dbname,
        current.version,
        current.mode,
        location,
        jobs,
        queue,
        now,
        backups,
        executing,
        held,
        out_of_sync,
        problems,
    )


def _job_view(
    row: dict, cron: dict | None, location: schedules.CronLocation, now: datetime, overdue_jobs: set[str]
) -> dict:
    last_at, last_status, last_duration, last_message = (
        row["last_started_at"],
        row["last_status"],
        row["last_duration"],
        row["last_message"],
    )
    last_success = row["last_success_at"]
    # statement jobs (VACUUM) run outside any function: their scheduled runs are in pg_cron's history
    if cron and cron.get("last_start") and (last_at is None or cron["last_start"] > last_at):
        last_at, last_status = cron["last_start"], cron["last_status"]
        last_duration = (cron["last_end"] - cron["last_start"]) if cron["last_end"] else None
        last_message = f"pg_cron: {cron['last_message']}"
    if cron and cron.get("last_success") and (last_success is None or cron["last_success"] > last_success):
        last_success = cron["last_success"]

    scheduled = row["schedule"] is not None
    if not scheduled:
        cron_state = "startup only"
    elif location.unseen:
        cron_state = "not shown"
    elif location.explanation:
        cron_state = "not scheduled"
    elif cron is None:
        cron_state = "missing (run autopilot sync)"
    else:
        cron_state = f"#{cron['jobid']} {'active' if cron['active'] else 'inactive'}"

    runnable = row["enabled"] and row["unavailable_reason"] is None and scheduled
    next_run = None
    # only a job pg_cron will fire has a next run, on the schedule pg_cron has
    if runnable and not location.explanation and cron is not None and cron["active"]:
        next_run = next_runs(cron["schedule"], row["only_on_dow"], now)[0]
    # OVERDUE is autopilot.health's job_overdue (SQL: autopilot._schedule_interval, health.overdue_factor)
    overdue = row["name"] in overdue_jobs
    return {
        "name": row["name"],
        "side": row["side"],
        "kind": row["kind"],
        "schedule": row["schedule"],
        "only_on_dow": row["only_on_dow"],
        "enabled": row["enabled"],
        "unavailable": row["unavailable_reason"],
        # why it ships disabled (0.4.0+), while the DBA has not enabled it
        "disabled_reason": row.get("disabled_reason"),
        "pg_cron": cron_state,
        "last_run_at": last_at,
        "last_status": last_status,
        "last_duration": last_duration,
        "last_message": last_message,
        "last_success_at": last_success,
        "next_run_at": next_run,
        "overdue": overdue,
    }


RUN_OUTCOMES = ("running", "succeeded", "failed", "timed_out", "skipped", "abandoned", "cancelled")


def ledger_job_names(conn: psycopg.Connection) -> list[str]:
    """Every job name in the run ledger (catalog jobs and runner workers enqueued without one): a skip scan
    of job_runs_job_name_started_at_idx, one index probe per name however many runs there are."""
    return [
        name
        for (name,) in conn.execute(
            """
            WITH RECURSIVE names (name) AS (
                (SELECT r.job_name FROM autopilot.job_runs AS r ORDER BY r.job_name LIMIT 1)
                UNION ALL
                SELECT (SELECT r.job_name FROM autopilot.job_runs AS r WHERE r.job_name > n.name
                        ORDER BY r.job_name LIMIT 1)
                FROM names AS n WHERE n.name IS NOT NULL
            )
            SELECT n.name FROM names AS n WHERE n.name IS NOT NULL
            """
        ).fetchall()
    ]


def run_history(
    conn: psycopg.Connection,
    *,
    jobs: list[str],
    outcome: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int = 100,
) -> list[dict]:
    """The ledger's runs of ``jobs``, newest first (by start, then id), in [since, until), of one outcome
    when given; ``before`` (a run's started_at and id) pages on. Each job's runs are read through
    job_runs_job_name_started_at_idx and merged, so a page costs ``limit`` rows per job, not a scan of the
    ledger."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """
            SELECT r.* FROM unnest(%(jobs)s::text[]) AS j (name)
            CROSS JOIN LATERAL (
                SELECT r.id, r.job_name, r.side, r.trigger, r.status, r.started_at, r.finished_at,
                       r.finished_at - r.started_at AS duration, r.rows_affected, r.message, r.error_sqlstate,
                       (r.details ->> 'job_id') AS queue_job_id
                FROM autopilot.job_runs AS r
                WHERE r.job_name = j.name
                  AND (%(outcome)s::text IS NULL OR r.status = %(outcome)s)
                  AND (%(since)s::timestamptz IS NULL OR r.started_at >= %(since)s)
                  AND (%(until)s::timestamptz IS NULL OR r.started_at < %(until)s)
                  AND (%(before_at)s::timestamptz IS NULL
                       OR (r.started_at, r.id) < (%(before_at)s, %(before_id)s))
                ORDER BY r.started_at DESC, r.id DESC
                LIMIT %(limit)s
            ) AS r
            ORDER BY r.started_at DESC, r.id DESC
            LIMIT %(limit)s
            """,
            {
                "jobs": jobs,
                "outcome": outcome,
                "since": since,
                "until": until,
                "before_at": before[0] if before else None,
                "before_id": before[1] if before else None,
                "limit": limit,
            },
        ).fetchall()


def job_attempts(conn: psycopg.Connection, job: dict) -> list[dict]:
    """The ledger's rows of a queued job's attempts (runner side), oldest first: those named after its
    catalog entry or worker, started since it was inserted, whose details name its id."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT r.id, r.status, r.started_at, r.finished_at, r.finished_at - r.started_at AS duration,"
            " r.message, (r.details ->> 'attempt')::integer AS attempt, r.details ->> 'node' AS node"
            " FROM autopilot.job_runs AS r"
            " WHERE r.job_name = %s AND r.started_at >= %s AND r.details ->> 'job_id' = %s::text"
            " ORDER BY r.started_at, r.id",
            [(job.get("meta") or {}).get("catalog") or job["worker"], job["inserted_at"], job["id"]],
        ).fetchall()
