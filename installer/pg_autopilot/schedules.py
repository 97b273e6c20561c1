"""Keeping pg_cron in step with the catalog, wherever pg_cron lives.

When pg_cron is installed in the application database, ``autopilot.sync_schedules()`` does it
all in SQL. When it lives in another database (``cron.database_name``), pg_cron's functions
can only be called there: the plan comes from ``autopilot.plan_cron_sync()`` in the application
database, and is carried out in the cron database with ``cron.schedule_in_database()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .db import other_database
from .errors import AutopilotError

CRON_SYNC_LOCK = 0x6175_7470_6372_6F6E  # "autpcron"

_CURRENT_JOBS = """
    SELECT coalesce(jsonb_agg(to_jsonb(j)), '[]')
    FROM cron.job AS j
    WHERE starts_with(j.jobname, 'autopilot:')
"""


# without USAGE on schema cron, to_regclass('cron.job') fails: the catalogs answer for any role
_CRON_CREATED = "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')"


@dataclass
class CronLocation:
    """Where pg_cron is, seen from the application database."""

    database: str | None  # cron.database_name, None when pg_cron is not loaded
    app_database: str
    created: bool  # CREATE EXTENSION pg_cron was run in that database
    hidden: bool = False  # this role may not read cron.database_name
    unseen: str | None = None  # why this role cannot see autopilot's pg_cron jobs, though they may exist

    @property
    def local(self) -> bool:
        return self.database == self.app_database

    @property
    def explanation(self) -> str | None:
        if self.unseen:
            return self.unseen
        if self.hidden:
            return (
                "this role may not read cron.database_name, so pg_cron's state is not shown "
                "(grant it pg_read_all_settings to see it)"
            )
        if self.database is None:
            return "pg_cron is not loaded on this server (shared_preload_libraries): nothing is scheduled"
        if not self.created:
            return f'pg_cron is loaded but not created in database "{self.database}": nothing is scheduled'
        return None


def locate(
    conn: psycopg.Connection, dsn: str | None, cron_conn: psycopg.Connection | None = None
) -> CronLocation:
    """Where pg_cron lives, seen from ``conn``; ``cron_conn``: a connection to pg_cron's database the caller
    already holds (else one is opened when pg_cron is in another database)."""
    app_db = conn.execute("SELECT current_database()").fetchone()[0]
    try:
        # pg_cron's settings are superuser-only: a plain role needs pg_read_all_settings
        with conn.transaction():
            cron_db = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        return CronLocation(None, app_db, False, hidden=True)
    if cron_db is None:
        return CronLocation(None, app_db, False)
    if cron_db == app_db:
        created = conn.execute(_CRON_CREATED).fetchone()[0]
        return CronLocation(cron_db, app_db, created)
    if cron_conn is not None and cron_conn.info.dbname == cron_db:
        return CronLocation(cron_db, app_db, cron_conn.execute(_CRON_CREATED).fetchone()[0])
    with other_database(dsn, cron_db, autocommit=True) as cconn:
        created = cconn.execute(_CRON_CREATED).fetchone()[0]
    return CronLocation(cron_db, app_db, created)


# pg_cron's functions autopilot calls (sync_schedules() and the cross-database sync alike); pg_cron
# grants the first two to superusers only
CRON_FUNCTIONS = {
    "schedule_in_database": "cron.schedule_in_database(text, text, text, text, text, boolean)",
    "alter_job": "cron.alter_job(bigint, text, text, text, text, boolean)",
    "unschedule": "cron.unschedule(bigint)",
}

_CRON_RIGHTS = """
    SELECT pg_catalog.has_schema_privilege('cron', 'USAGE') AS usage,
           coalesce(pg_catalog.array_agg(p.proname::text ORDER BY p.proname)
                    FILTER (WHERE NOT pg_catalog.has_function_privilege(p.oid, 'EXECUTE')), '{}') AS denied
    FROM pg_catalog.pg_proc AS p
    JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
    WHERE n.nspname = 'cron'
      AND pg_catalog.format('cron.%%s(%%s)', p.proname, pg_catalog.oidvectortypes(p.proargtypes)) = ANY(%s)
"""


def check_can_schedule(
    conn: psycopg.Connection, dsn: str | None, functions: tuple[str, ...] = tuple(CRON_FUNCTIONS)
) -> CronLocation:
    """Before ``install``, ``sync`` or ``upgrade`` writes anything: may this role register autopilot's
    jobs with pg_cron? Read cron.database_name (superuser or pg_read_all_settings), USAGE on schema
    cron and EXECUTE on the pg_cron functions sync calls, in the database pg_cron lives in. Raises an
    AutopilotError whose hint names every missing grant and the statements that give it; a server
    without pg_cron passes (there is nothing to schedule, and sync says so). ``uninstall`` needs only
    ``unschedule``."""
    with conn.transaction():
        role, ident = conn.execute("SELECT current_user, pg_catalog.quote_ident(current_user)").fetchone()
        location = locate(conn, dsn)
    if location.hidden:
        raise AutopilotError(
            f'role "{role}" may not read the setting cron.database_name, so it cannot find pg_cron to '
            "schedule autopilot's jobs: nothing changed",
            hint=f"As a superuser (or your managed service's admin role) grant it: "
            f"GRANT pg_read_all_settings TO {ident}; then run this again (pg_cron's own grants are "
            "checked next).",
        )
    if location.explanation:
        return location
    signatures = [CRON_FUNCTIONS[name] for name in functions]
    if location.local:
        with conn.transaction():
            usage, denied = conn.execute(_CRON_RIGHTS, [signatures]).fetchone()
    else:
        with other_database(dsn, location.database, autocommit=True) as cconn:
            usage, denied = cconn.execute(_CRON_RIGHTS, [signatures]).fetchone()
    missing = [] if usage else [f"GRANT USAGE ON SCHEMA cron TO {ident};"]
    missing += [f"GRANT EXECUTE ON FUNCTION {CRON_FUNCTIONS[name]} TO {ident};" for name in denied]
    if missing:
        what = ["USAGE on schema cron"] if not usage else []
        what += [f"EXECUTE on {CRON_FUNCTIONS[name]}" for name in denied]
        raise AutopilotError(
            f'role "{role}" may not schedule jobs with pg_cron (database "{location.database}"): it lacks '
            + ", ".join(what)
            + ": nothing changed",
            hint="As a superuser (or your managed service's admin role), "
            + f'in database "{location.database}": '
            + " ".join(missing),
        )
    return location


@dataclass
class SyncResult:
    location: CronLocation
    changes: list[dict] = field(default_factory=list)

    @property
    def message(self) -> str:
        if self.location.explanation:
            return self.location.explanation
        where = "" if self.location.local else f' (registered from database "{self.location.database}")'
        if not self.changes:
            return f"pg_cron already matches the catalog{where}"
        counts: dict[str, int] = {}
        for change in self.changes:
            counts[change["action"]] = counts.get(change["action"], 0) + 1
        done = {"schedule": "scheduled", "alter": "altered", "rename": "renamed", "unschedule": "unscheduled"}
        summary = ", ".join(f"{n} {done.get(action, action)}" for action, n in sorted(counts.items()))
        return f"pg_cron synced{where}: {summary}"


def sync(conn: psycopg.Connection, dsn: str | None, *, remove_all: bool = False) -> SyncResult:
    """Make cron.job match the catalog for this database; with remove_all, unschedule every autopilot job."""
    location = locate(conn, dsn)
    if location.explanation:
        return SyncResult(location)
    if location.local:
        return SyncResult(location, _apply_local(conn, remove_all))
    with other_database(dsn, location.database, autocommit=False) as cconn:
        return SyncResult(location, _apply_remote(conn, cconn, location, remove_all))


def _plan(conn: psycopg.Connection, current: list, database: str, username: str, remove_all: bool):
    if remove_all:
        return [
            {"action": "unschedule", **job}
            for job in current
            if job["database"] == database and job["jobname"].startswith("autopilot:")
        ]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT * FROM autopilot.plan_cron_sync(%s, %s, %s)", [Jsonb(current), database, username]
        )
        plan = cur.fetchall()
    conflicts = [p for p in plan if p["action"] == "conflict"]
    if conflicts:
        raise AutopilotError(
            "pg_cron jobs of this role already belong to another database: "
            + ", ".join(p["jobname"] for p in conflicts),
            hint="pg_cron job names are unique per role, and autopilot:<database>:<job> collides only when "
            "two long database names shorten alike: uninstall autopilot from the other database, "
            "or install this one as another role.",
        )
    return plan


def _apply_local(conn: psycopg.Connection, remove_all: bool) -> list[dict]:
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if not remove_all:
            return cur.execute("SELECT * FROM autopilot.sync_schedules()").fetchall()
        cur.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", [CRON_SYNC_LOCK])
        current = conn.execute(_CURRENT_JOBS).fetchone()[0]
        plan = _plan(conn, current, conn.info.dbname, "", True)
        for step in plan:
            cur.execute("SELECT cron.unschedule(%s::bigint)", [step["jobid"]])
        return plan


def _apply_remote(
    conn: psycopg.Connection, cconn: psycopg.Connection, location: CronLocation, remove_all: bool
) -> list[dict]:
    with cconn.transaction():
        cconn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", [CRON_SYNC_LOCK])
        current = cconn.execute(_CURRENT_JOBS).fetchone()[0]
        username = cconn.execute("SELECT current_user").fetchone()[0]
        plan = _plan(conn, current, location.app_database, username, remove_all)
        for step in plan:
            if step["action"] == "schedule":
                cconn.execute(
                    "SELECT cron.schedule_in_database(%s, %s, %s, %s, NULL, %s)",
                    [
                        step["jobname"],
                        step["schedule"],
                        step["command"],
                        location.app_database,
                        step["active"],
                    ],
                )
            elif step["action"] == "alter":
                cconn.execute(
                    "SELECT cron.alter_job(%s, %s, %s, %s, NULL, %s)",
                    [step["jobid"], step["schedule"], step["command"], location.app_database, step["active"]],
                )
            elif step["action"] == "rename":
                _rename_remote(cconn, step, location.app_database)
            elif step["action"] == "unschedule":
                cconn.execute("SELECT cron.unschedule(%s::bigint)", [step["jobid"]])
    return plan


def _rename_remote(cconn: psycopg.Connection, step: dict, app_database: str) -> None:
    """A job still under its pre-0.4.0 name ``autopilot:<job>``: renamed in place (it keeps its jobid
    and its pg_cron history) by a role that may update cron.job, else unscheduled and scheduled again."""
    values = [step["schedule"], step["command"], app_database, step["active"]]
    if cconn.execute("SELECT pg_catalog.has_table_privilege('cron.job', 'UPDATE')").fetchone()[0]:
        cconn.execute("UPDATE cron.job SET jobname = %s WHERE jobid = %s", [step["jobname"], step["jobid"]])
        cconn.execute("SELECT cron.alter_job(%s, %s, %s, %s, NULL, %s)", [step["jobid"], *values])
    else:
        cconn.execute("SELECT cron.unschedule(%s::bigint)", [step["jobid"]])
        cconn.execute(
            "SELECT cron.schedule_in_database(%s, %s, %s, %s, NULL, %s)", [step["jobname"], *values]
        )


def cron_jobs(
    conn: psycopg.Connection,
    dsn: str | None,
    location: CronLocation,
    cron_conn: psycopg.Connection | None = None,
) -> dict[str, dict]:
    """pg_cron's view of this database's autopilot jobs: the cron.job row, and the last cron run.

    cron.job_run_details has no index but its primary key (runid), and pg_cron never prunes it: a
    newest-first walk per job reads the whole table for every job that never ran (7 s at 1M rows).
    So one scan finds each job's last and last successful runid, and those rows are read by key."""
    if location.explanation:
        return {}
    query = """
        WITH jobs AS (
            SELECT j.jobid, j.jobname, j.schedule, j.command, j.database, j.username, j.active
            FROM cron.job AS j
            WHERE starts_with(j.jobname, 'autopilot:') AND j.database = %s
        ),
        latest AS (
            SELECT d.jobid, max(d.runid) AS runid,
                   max(d.runid) FILTER (WHERE d.status = 'succeeded') AS ok_runid
            FROM cron.job_run_details AS d
            WHERE d.jobid IN (SELECT jobid FROM jobs)
            GROUP BY d.jobid
        )
        SELECT jobs.*,
               last.status AS last_status, last.start_time AS last_start,
               last.end_time AS last_end, last.return_message AS last_message,
               last_ok.end_time AS last_success
        FROM jobs
        LEFT JOIN latest ON latest.jobid = jobs.jobid
        LEFT JOIN cron.job_run_details AS last ON last.runid = latest.runid
        LEFT JOIN cron.job_run_details AS last_ok ON last_ok.runid = latest.ok_runid
    """
    if location.local:
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(query, [location.app_database]).fetchall()
    elif cron_conn is not None and cron_conn.info.dbname == location.database:
        rows = cron_conn.cursor(row_factory=dict_row).execute(query, [location.app_database]).fetchall()
    else:
        with other_database(dsn, location.database, autocommit=True) as cconn:
            rows = cconn.cursor(row_factory=dict_row).execute(query, [location.app_database]).fetchall()
    return {r["jobname"]: r for r in rows}


def visible_cron_jobs(conn: psycopg.Connection, dsn: str | None) -> tuple[CronLocation, dict[str, dict]]:
    """Where pg_cron is and ``cron_jobs``, for any role that may read autopilot. pg_cron's row security
    shows a role its own jobs only, and its settings are superuser-only: a role that is neither a
    superuser nor the one that scheduled the jobs (the read-only role) reads them through
    ``autopilot._health_cron_jobs()``, as autopilot.health does, and through nothing else of pg_cron.
    When pg_cron lives in another database that function names it but cannot read it, and the location
    says so (``unseen``) rather than calling the jobs missing."""
    location = locate(conn, dsn)
    sees_all = conn.execute(
        "SELECT rolsuper OR rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = current_user"
    ).fetchone()[0]
    if sees_all or (location.explanation and not location.hidden):
        return location, cron_jobs(conn, dsn, location)
    if not location.hidden and not location.local:
        return _remote_jobs_as_reader(conn, dsn, location)
    readable = conn.execute(
        "SELECT to_regprocedure('autopilot._health_cron_jobs()') IS NOT NULL "
        "AND pg_catalog.has_function_privilege('autopilot._health_cron_jobs()', 'EXECUTE')"
    ).fetchone()[0]
    if not readable:
        return location, cron_jobs(conn, dsn, location)
    side = conn.execute("SELECT autopilot._health_cron_jobs()").fetchone()[0]
    if side is None:  # pg_cron not loaded, or not created in its database
        return location, {}
    if "jobs" not in side:  # in another database: read there, as the role may
        return _remote_jobs_as_reader(conn, dsn, CronLocation(side["database"], location.app_database, True))
    location = CronLocation(side["database"], location.app_database, True)
    jobs = {}
    for job in side["jobs"]:
        for key in ("last_start", "last_end", "last_success"):
            job[key] = datetime.fromisoformat(job[key]) if job.get(key) else None
        jobs[job["jobname"]] = {**job, "database": location.app_database}
    return location, jobs


def _unseen(database: str, app_database: str) -> CronLocation:
    return CronLocation(
        database,
        app_database,
        True,
        unseen=f'pg_cron lives in database "{database}", where a role sees only the pg_cron jobs it '
        "scheduled: pg_cron's state is shown to the role that ran `autopilot sync` (or a superuser)",
    )


def _remote_jobs_as_reader(
    conn: psycopg.Connection, dsn: str | None, location: CronLocation
) -> tuple[CronLocation, dict[str, dict]]:
    """pg_cron in another database, read by a role that is not a superuser: its own jobs when it is the
    role that schedules them (it may plan the sync); otherwise pg_cron hides them, and says so."""
    schedules_them = conn.execute(
        "SELECT to_regprocedure('autopilot.plan_cron_sync(jsonb, text, text)') IS NOT NULL AND "
        "pg_catalog.has_function_privilege('autopilot.plan_cron_sync(jsonb, text, text)', 'EXECUTE')"
    ).fetchone()[0]
    try:
        jobs = cron_jobs(conn, dsn, location)
    except psycopg.errors.InsufficientPrivilege:  # no USAGE on schema cron there
        return _unseen(location.database, location.app_database), {}
    except AutopilotError as exc:  # may not connect to that database
        if exc.sqlstate != "42501":
            raise
        return _unseen(location.database, location.app_database), {}
    if not jobs and not schedules_them:
        return _unseen(location.database, location.app_database), {}
    return location, jobs


_CRON_ROW = ("jobid", "jobname", "schedule", "command", "database", "username", "active")


def pending_changes(conn: psycopg.Connection, location: CronLocation, cron: dict[str, dict]) -> list[dict]:
    """What ``autopilot sync`` would change in pg_cron (autopilot.plan_cron_sync over the jobs of
    ``cron_jobs``): empty when pg_cron is in step with the catalog, or when it cannot be seen."""
    if location.explanation:
        return []
    # a role not granted plan_cron_sync sees no difference (the README grants it to the read-only role)
    if not conn.execute(
        "SELECT pg_catalog.has_function_privilege('autopilot.plan_cron_sync(jsonb, text, text)', 'EXECUTE')"
    ).fetchone()[0]:
        return []
    # (the jobs autopilot._health_cron_jobs() shows carry no username: all are this database's)
    current = [{k: row.get(k) for k in _CRON_ROW} for row in cron.values()]
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT action, jobname FROM autopilot.plan_cron_sync(%s, %s, current_user) "
            "WHERE action <> 'conflict'",
            [Jsonb(current), location.app_database],
        )
        return cur.fetchall()


def change_schedule(
    conn: psycopg.Connection, job: str, cron: str | None = None, action: str | None = None
) -> str:
    """A DBA's change to one job, in one transaction: a new schedule (``cron``), or ``action``
    ``enable``, ``disable`` or ``reset`` (the catalog's schedule, enabled). Kept in
    autopilot.job_overrides across syncs, upgrades and dump/restore. Returns what was done, in a
    sentence; pg_cron is synced by the caller (``sync``)."""
    if (cron is None) == (action is None):
        raise ValueError("give either a cron expression or an action")
    with conn.transaction():
        if cron is not None:
            value = conn.execute("SELECT autopilot.set_job_schedule(%s, %s)", [job, cron]).fetchone()[0]
            return f"{job} now runs on '{value}' (UTC)"
        if action == "reset":
            value = conn.execute("SELECT autopilot.reset_job(%s)", [job]).fetchone()[0]
            return f"{job} is back to its catalog schedule '{value}', enabled"
        if action not in ("enable", "disable"):
            raise ValueError(f"unknown action {action!r}")
        conn.execute("SELECT autopilot.set_job_enabled(%s, %s)", [job, action == "enable"])
        return f"{job} is {action}d"


def change_run_policy(
    conn: psycopg.Connection,
    job: str,
    timeout: str | None = None,
    retries: int | None = None,
    backoff: str | None = None,
) -> list[str]:
    """A DBA's change to how one function or batched job runs, in one transaction: its ``timeout`` (an
    interval, text) and its retry policy (``retries`` attempts, ``backoff`` before the second; None keeps
    the backoff). Kept in autopilot.job_overrides; reset_job() drops them. Returns what was done."""
    done = []
    with conn.transaction():
        if timeout is not None:
            value = conn.execute(
                "SELECT autopilot.set_job_timeout(%s, %s::interval)::text", [job, timeout]
            ).fetchone()[0]
            done.append(f"{job} now times out after {value}")
        if retries is not None:
            conn.execute("SELECT autopilot.set_job_retries(%s, %s, %s::interval)", [job, retries, backoff])
            attempts, wait = conn.execute(
                "SELECT max_attempts, retry_backoff::text FROM autopilot.job_definitions WHERE name = %s",
                [job],
            ).fetchone()
            done.append(
                f"{job} now makes up to {attempts} attempts per run on a transient failure"
                + (f", {wait} before the second (doubling)" if attempts > 1 else " (no retry)")
            )
    return done
