"""cron-history-cleanup where pg_cron lives in another database: the runner prunes cron.job_run_details.

pg_cron never prunes its history, and autopilot's jobs add some 2,800 rows a day to it. Where pg_cron
is in the application database, pg_cron runs the batched function autopilot._cleanup_cron_history_batch
itself. Where it lives in another database (``cron.database_name``, usually ``postgres``), no SQL run
in the application database can reach its tables (there is no dblink), so that run enqueues the worker
``cron_history_cleanup`` instead (job_catalog.cron_elsewhere_worker), and the runner — the one part of
autopilot that is always running and may connect to any database of the server — does the same walk
there: the same setting (``cron_history.retention``), the same batches (``cleanup.batch_size``), the
same rows (every finished run that ended before the cutoff and that this role may delete: pg_cron's
row security shows a role only the runs of the jobs it scheduled, a superuser all of them), each batch
committed on its own. Its run lands in the ledger as every runner job's does (job_runs, side runner,
named cron-history-cleanup).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from .db import connect
from .errors import AutopilotError

# one batch: a keyset walk in runid order (the table has no other index), the condition re-checked in the
# DELETE; the walk ends at the first run that started after the cutoff (runs start in runid order)
_BATCH = """
    WITH batch AS MATERIALIZED (
        SELECT d.runid, d.start_time FROM cron.job_run_details AS d
        WHERE d.runid > %(after)s
        ORDER BY d.runid
        LIMIT %(limit)s
    ),
    gone AS (
        DELETE FROM cron.job_run_details AS d
        WHERE d.runid = ANY(ARRAY(SELECT b.runid FROM batch AS b))
          AND d.status IN ('succeeded', 'failed')
          AND coalesce(d.end_time, d.start_time) < %(cutoff)s
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM batch) AS walked,
           (SELECT max(b.runid) FROM batch AS b) AS last_runid,
           (SELECT count(*) FROM gone) AS deleted,
           EXISTS (SELECT FROM batch AS b WHERE b.start_time >= %(cutoff)s) AS reached_cutoff
"""


class CronHistoryError(AutopilotError):
    """The runner cannot prune pg_cron's history; the message names the grant or the change that fixes it
    (the runner records a worker's failure by its message, so the fix is in it, not only in the hint)."""


@dataclass
class Pruned:
    database: str  # pg_cron's database
    retention: str
    deleted: int
    batches: int
    complete: bool  # False: stopped early (the job cancelled, or its deadline near)
    recorded: int = 0  # statement jobs' runs recorded in the ledger first

    def line(self) -> str:
        batches = f"{self.batches} batch" + ("" if self.batches == 1 else "es")
        text = (
            f"deleted {self.deleted} cron.job_run_details rows that ended more than {self.retention} ago "
            f'in database "{self.database}" ({batches})'
        )
        text += f"; {self.recorded} statement job runs recorded in the ledger first"
        return text if self.complete else text + "; stopped early, the next run goes on"


def cron_database(conn: psycopg.Connection) -> str:
    """The database pg_cron lives in (``cron.database_name``), read as this role may."""
    role = conn.execute("SELECT pg_catalog.quote_ident(current_user)").fetchone()[0]
    try:
        with conn.transaction():
            name = conn.execute("SELECT pg_catalog.current_setting('cron.database_name', true)").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege as exc:
        grant = f"GRANT pg_read_all_settings TO {role};"
        raise CronHistoryError(
            f"role {role} may not read the setting cron.database_name, so it cannot find pg_cron's history "
            f"to prune: as a superuser, {grant}",
            hint=grant,
            sqlstate="42501",
        ) from exc
    if name is None:
        raise CronHistoryError(
            "pg_cron is not loaded on this server (shared_preload_libraries): there is no history to prune",
            hint="Disable the job (autopilot schedule cron-history-cleanup --disable), or load pg_cron.",
        )
    return name


def _check_rights(cconn: psycopg.Connection, database: str, app_database: str) -> None:
    """Before deleting anything: pg_cron created there, USAGE on schema cron, SELECT and DELETE on
    cron.job_run_details, and — row security — a role that sees autopilot's pg_cron jobs of this database."""
    role, created = cconn.execute(
        "SELECT pg_catalog.quote_ident(current_user), "
        "EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')"
    ).fetchone()
    where = f'in database "{database}"'
    if not created:
        raise CronHistoryError(
            f'pg_cron is loaded but not created in database "{database}": there is no history to prune',
            hint=f"CREATE EXTENSION pg_cron; {where}",
        )
    if not cconn.execute("SELECT pg_catalog.has_schema_privilege('cron', 'USAGE')").fetchone()[0]:
        grant = f"GRANT USAGE ON SCHEMA cron TO {role};"
        raise CronHistoryError(
            f"role {role} may not use schema cron {where}, so it cannot prune pg_cron's history: "
            f"as a superuser, {where}: {grant}",
            hint=f"{where}: {grant}",
            sqlstate="42501",
        )
    missing = [
        privilege
        for privilege in ("SELECT", "DELETE")
        if not cconn.execute(
            "SELECT pg_catalog.has_table_privilege('cron.job_run_details', %s)", [privilege]
        ).fetchone()[0]
    ]
    if missing:
        grant = f"GRANT {', '.join(missing)} ON cron.job_run_details TO {role};"
        raise CronHistoryError(
            f"role {role} lacks {' and '.join(missing)} on cron.job_run_details {where}, so it cannot prune "
            f"pg_cron's history: as a superuser, {where}: {grant}",
            hint=f"{where}: {grant}",
            sqlstate="42501",
        )
    sees_all, jobs = cconn.execute(
        """
        SELECT (SELECT r.rolsuper OR r.rolbypassrls FROM pg_catalog.pg_roles AS r
                WHERE r.rolname = current_user),
               (SELECT count(*) FROM cron.job AS j
                WHERE j.database = %s AND pg_catalog.starts_with(j.jobname, 'autopilot:'))
        """,
        [app_database],
    ).fetchone()
    if not sees_all and jobs == 0:
        raise CronHistoryError(
            f'role {role} sees none of the pg_cron jobs of database "{app_database}" {where}: pg_cron\'s row '
            "security lets a role read and delete only the history of the jobs it scheduled, so this runner "
            "would prune nothing of autopilot's. Run the runner as the role that runs `autopilot sync` "
            "(cron.job.username of autopilot's jobs) or as a superuser, or disable the job "
            "(autopilot schedule cron-history-cleanup --disable) and prune pg_cron's history yourself",
            hint="Run the runner as the role that owns autopilot's pg_cron jobs.",
            sqlstate="42501",
        )


def prune(
    dsn: str,
    *,
    cancelled: threading.Event | None = None,
    deadline: float | None = None,
    progress: Callable[..., None] | None = None,
) -> Pruned:
    """Delete, in pg_cron's database, the cron.job_run_details rows older than ``cron_history.retention``
    that this role may delete, batch by batch (each committed), as autopilot._cleanup_cron_history_batch
    does where pg_cron is local. ``dsn`` is the application database's; pg_cron's database is reached
    with the same settings. Stops early, with what it committed, when ``cancelled`` is set or the
    monotonic ``deadline`` is less than a minute away."""
    with connect(dsn, autocommit=True) as conn:
        return _prune(conn, dsn, cancelled, deadline, progress)


def _prune(
    conn: psycopg.Connection,
    dsn: str,
    cancelled: threading.Event | None,
    deadline: float | None,
    progress: Callable[..., None] | None,
) -> Pruned:
    app_database, role, retention, cutoff, limit = conn.execute(
        "SELECT current_database(), pg_catalog.quote_ident(current_user), "
        "autopilot.get_setting('cron_history.retention'), "
        "now() - autopilot.get_setting('cron_history.retention')::interval, "
        "autopilot.get_setting('cleanup.batch_size')::integer"
    ).fetchone()
    database = cron_database(conn)
    try:
        cconn = connect(dsn, dbname=database, autocommit=True)
    except AutopilotError as exc:
        # a refused connection carries no SQLSTATE: the server's message says why
        if exc.sqlstate != "42501" and "permission denied for database" not in exc.message:
            raise
        grant = f'GRANT CONNECT ON DATABASE "{database}" TO {role};'
        raise CronHistoryError(
            f'role {role} may not connect to pg_cron\'s database "{database}": as a superuser, {grant}',
            hint=grant,
            sqlstate="42501",
        ) from exc
    with cconn:
        _check_rights(cconn, database, app_database)
        recorded = record_statement_runs(conn, cconn)
        pruned = _walk(cconn, database, retention, cutoff, limit, cancelled, deadline, progress)
    pruned.recorded = recorded
    return pruned


# the finished runs of the application database's statement jobs, with their pg_cron job names
_STATEMENT_RUNS = """
    SELECT coalesce(jsonb_agg(jsonb_build_object(
        'runid', d.runid, 'jobname', j.jobname, 'job_pid', d.job_pid, 'status', d.status,
        'return_message', d.return_message, 'start_time', d.start_time, 'end_time', d.end_time
    )), '[]')
    FROM cron.job_run_details AS d
    JOIN cron.job AS j ON j.jobid = d.jobid
    WHERE j.database = %s AND j.jobname = ANY(%s) AND d.status IN ('succeeded', 'failed')
"""


def record_statement_runs(conn: psycopg.Connection, cconn: psycopg.Connection) -> int:
    """pg_cron runs a statement job's statement itself (VACUUM cannot run in a function), so nothing
    of autopilot records it: read its finished runs in pg_cron's database (``cconn``) and record each
    once in the ledger of the application database (``conn``, autopilot._record_cron_runs). Before
    pruning, so that no run leaves pg_cron's history unrecorded. Returns how many were new."""
    database, names = conn.execute(
        "SELECT current_database(), coalesce(array_agg(cron_jobname), '{}') FROM autopilot.job_definitions"
        " WHERE kind = 'statement'"
    ).fetchone()
    runs = cconn.execute(_STATEMENT_RUNS, [database, names]).fetchone()[0]
    return conn.execute("SELECT autopilot._record_cron_runs(%s)", [Jsonb(runs)]).fetchone()[0]


def _walk(
    cconn: psycopg.Connection,
    database: str,
    retention: str,
    cutoff: datetime,
    limit: int,
    cancelled: threading.Event | None,
    deadline: float | None,
    progress: Callable[..., None] | None,
) -> Pruned:
    after, deleted, batches = 0, 0, 0
    while True:
        if (cancelled is not None and cancelled.is_set()) or (
            deadline is not None and time.monotonic() > deadline - 60
        ):
            return Pruned(database, retention, deleted, batches, complete=False)
        walked, last_runid, gone, reached_cutoff = cconn.execute(
            _BATCH, {"after": after, "limit": limit, "cutoff": cutoff}
        ).fetchone()
        batches += 1
        deleted += gone
        if progress is not None:
            progress(deleted=deleted, batches=batches)
        if walked < limit or reached_cutoff:
            return Pruned(database, retention, deleted, batches, complete=True)
        after = last_runid
