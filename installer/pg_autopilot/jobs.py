"""Running a catalog job now, from the command line."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from .errors import translate


def run_now(conn: psycopg.Connection, name: str) -> dict:
    """Run a job now and return its ledger row. ``conn`` must be in autocommit mode.

    Function, batched and runner jobs go through ``CALL autopilot.run_scheduled_job``, which
    commits between batches as a scheduled run does. A statement job (VACUUM) cannot run in a
    function or a transaction: its statement runs here, at top level, between a ledger start
    and finish under the job's lock.
    """
    assert conn.autocommit, "run_now needs an autocommit connection"
    with conn.cursor(row_factory=dict_row) as cur:
        job = cur.execute("SELECT * FROM autopilot._catalog_job(%s)", [name]).fetchone()
        if job["unavailable_reason"]:
            # raises the job's reason as an error, recording nothing
            cur.execute("SELECT autopilot._run_job_step(%s, NULL)", [name])
        before = cur.execute("SELECT coalesce(max(id), 0) AS id FROM autopilot.job_runs").fetchone()["id"]
        if job["kind"] == "statement":
            _run_statement(conn, job)
        else:
            try:
                cur.execute("CALL autopilot.run_scheduled_job(%s, p_manual => true)", [name])
            except psycopg.Error as exc:
                run = _run_after(cur, name, before)
                if run is None:  # failed before the run started: not the job's own failure
                    raise translate(exc) from exc
        run = _run_after(cur, name, before)
    return run


def _run_after(cur: psycopg.Cursor, name: str, before: int) -> dict | None:
    return cur.execute(
        "SELECT *, finished_at - started_at AS duration FROM autopilot.job_runs "
        "WHERE job_name = %s AND id > %s ORDER BY id DESC LIMIT 1",
        [name, before],
    ).fetchone()


def _run_statement(conn: psycopg.Connection, job: dict) -> None:
    with conn.cursor() as cur:
        run_id = cur.execute("SELECT autopilot._run_start(%s, true, true)", [job["name"]]).fetchone()[0]
        if run_id is None:
            return  # skipped, and recorded as such
        try:
            cur.execute(job["target"])
        except psycopg.Error as exc:
            cur.execute(
                "SELECT autopilot._run_finish(%s, 'failed', NULL, %s, %s)",
                [run_id, exc.diag.message_primary or str(exc), exc.diag.sqlstate],
            )
        else:
            cur.execute(
                "SELECT autopilot._run_finish(%s, 'succeeded', NULL, %s)",
                [run_id, f"{cur.statusmessage} at top level"],
            )
        finally:
            cur.execute("SELECT pg_catalog.pg_advisory_unlock(autopilot._job_lock_key(%s))", [job["name"]])
