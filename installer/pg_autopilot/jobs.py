"""Running a catalog job now, from the command line."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .errors import InvalidInput, translate

# index-reindex's statements (REINDEX / DROP INDEX CONCURRENTLY) cannot run in a function: under
# pg_cron the job hands them one at a time to a pg_cron statement job; run from here, this
# session runs them itself, at top level.
INDEX_REINDEX = "index-reindex"


class JobRefused(InvalidInput):
    """The job cannot be run this way."""


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
        if job["only_when_armed"]:
            raise JobRefused(
                f"{name} only runs the statement another job arms for it",
                hint="Run `autopilot run index-reindex`: it plans and runs the index statements itself.",
            )
        before = cur.execute("SELECT coalesce(max(id), 0) AS id FROM autopilot.job_runs").fetchone()["id"]
        if name == INDEX_REINDEX:
            _run_index_maintenance(conn)
        elif job["kind"] == "statement":
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
    # this session's run: a concurrent run of the same job (skipped, or the one that made this
    # one skip) is in the ledger too, with a higher id
    return cur.execute(
        "SELECT *, finished_at - started_at AS duration FROM autopilot.job_runs "
        "WHERE job_name = %s AND id > %s AND backend_pid = pg_catalog.pg_backend_pid() "
        "ORDER BY id DESC LIMIT 1",
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


def _run_index_maintenance(conn: psycopg.Connection) -> None:
    """Plan an index-reindex cycle (unless one is open) and run its pending statements at top level."""
    with conn.cursor(row_factory=dict_row) as cur:
        run_id = cur.execute("SELECT autopilot._run_start(%s, true, true) AS id", [INDEX_REINDEX]).fetchone()[
            "id"
        ]
        if run_id is None:
            return  # skipped, and recorded as such
        done = failed = 0
        try:
            planned = cur.execute("SELECT autopilot.plan_index_maintenance() AS n").fetchone()["n"]
            while item := cur.execute(
                "SELECT id, statement FROM autopilot.index_maintenance WHERE state = 'pending' "
                "ORDER BY id LIMIT 1"
            ).fetchone():
                try:
                    cur.execute(item["statement"])
                except psycopg.Error as exc:
                    failed += 1
                    message = exc.diag.message_primary or str(exc)
                    cur.execute(
                        "SELECT autopilot.finish_index_maintenance_item(%s, false, %s)", [item["id"], message]
                    )
                else:
                    done += 1
                    cur.execute(
                        "SELECT autopilot.finish_index_maintenance_item(%s, true, 'ran at top level')",
                        [item["id"]],
                    )
            cur.execute(
                "SELECT autopilot._run_finish(%s, %s, %s, %s, NULL, %s)",
                [
                    run_id,
                    "failed" if failed else "succeeded",
                    done,
                    f"planned {planned} index statements; ran {done + failed}: {done} done, {failed} failed"
                    if done + failed
                    else "no index needs a rebuild",
                    Jsonb({"planned": planned, "done": done, "failed": failed}),
                ],
            )
        except psycopg.Error as exc:
            cur.execute(
                "SELECT autopilot._run_finish(%s, 'failed', %s, %s, %s)",
                [run_id, done, exc.diag.message_primary or str(exc), exc.diag.sqlstate],
            )
        finally:
            cur.execute("SELECT pg_catalog.pg_advisory_unlock(autopilot._job_lock_key(%s))", [INDEX_REINDEX])
