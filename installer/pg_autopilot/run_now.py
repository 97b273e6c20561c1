"""Running a catalog job now, from the command line."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .errors import InvalidInput, JobFailed, translate

# index-reindex's statements (REINDEX / DROP INDEX CONCURRENTLY) cannot run in a function: under
# pg_cron the job hands them one at a time to a pg_cron statement job; run from here, this
# session runs them itself, at top level.
INDEX_REINDEX = "index-reindex"
FINISH_ITEM = "SELECT autopilot.finish_index_maintenance_item(%s, %s, %s)"


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
                # a statement_timeout set inside the procedure would not arm the server's timer: the
                # job's timeout is this session's for the CALL (the procedure records timed_out)
                if job["kind"] in ("function", "batched"):
                    cur.execute(
                        "SELECT pg_catalog.set_config('statement_timeout', %s, false)",
                        [str(max(1, int(job["timeout"].total_seconds() * 1000)))],
                    )
                cur.execute("CALL autopilot.run_scheduled_job(%s, p_manual => true)", [name])
            except psycopg.Error as exc:
                run = _run_after(cur, name, before)
                if run is None:  # failed before the run started: not the job's own failure
                    raise translate(exc) from exc
            finally:
                cur.execute("RESET statement_timeout")
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


class _TopLevelRun:
    """A ledger run whose work this session does itself, at top level, under the job's session lock."""

    def __init__(self, cur: psycopg.Cursor, name: str, run_id: int):
        self.cur, self.name, self.id = cur, name, run_id
        self.rows: int | None = None  # what a failure records as rows affected

    def finish(self, status: str, message: str, details: dict | None = None) -> None:
        self.cur.execute(
            "SELECT autopilot._run_finish(%s, %s, %s, %s, NULL, %s)",
            [self.id, status, self.rows, message, Jsonb(details or {})],
        )


@contextmanager
def _top_level_run(conn: psycopg.Connection, name: str) -> Iterator[_TopLevelRun | None]:
    """Open a ledger run of ``name`` under its lock; None when another run holds it (recorded as skipped).
    A database error escaping the block is recorded as the run's failure; the lock is always released."""
    with conn.cursor() as cur:
        run_id = cur.execute("SELECT autopilot._run_start(%s, true, true)", [name]).fetchone()[0]
        if run_id is None:
            yield None
            return
        run = _TopLevelRun(cur, name, run_id)
        try:
            yield run
        except psycopg.Error as exc:
            cur.execute(
                "SELECT autopilot._run_finish(%s, 'failed', %s, %s, %s)",
                [run_id, run.rows, exc.diag.message_primary or str(exc), exc.diag.sqlstate],
            )
        finally:
            cur.execute("SELECT pg_catalog.pg_advisory_unlock(autopilot._job_lock_key(%s))", [name])


def _run_statement(conn: psycopg.Connection, job: dict) -> None:
    with _top_level_run(conn, job["name"]) as run:
        if run is None:
            return
        run.cur.execute(job["target"])
        run.finish("succeeded", f"{run.cur.statusmessage} at top level")


def _run_index_maintenance(conn: psycopg.Connection) -> None:
    """Plan an index-reindex cycle (unless one is open) and run its pending statements at top level."""
    with _top_level_run(conn, INDEX_REINDEX) as run:
        if run is None:
            return
        planned, done, failed = _index_statements(run.cur, run)
        run.finish(
            "failed" if failed else "succeeded",
            _index_summary(planned, done, failed),
            {"planned": planned, "done": done, "failed": failed},
        )


def _index_statements(
    cur: psycopg.Cursor, run: _TopLevelRun | None = None, cancelled: threading.Event | None = None
) -> tuple[int, int, int]:
    """Plan a cycle (unless one is open) and run its pending statements, one by one, at top level, each
    settled in autopilot.index_maintenance. Returns (planned, done, failed)."""
    done = failed = 0
    planned = cur.execute("SELECT autopilot.plan_index_maintenance()").fetchone()[0]
    while (cancelled is None or not cancelled.is_set()) and (
        item := cur.execute(
            "SELECT id, statement FROM autopilot.index_maintenance WHERE state = 'pending' "
            "ORDER BY id LIMIT 1"
        ).fetchone()
    ):
        item_id, statement = item
        try:
            cur.execute(statement)
        except psycopg.Error as exc:
            failed += 1
            message = exc.diag.message_primary or str(exc)
            cur.execute(FINISH_ITEM, [item_id, False, message])
        else:
            done += 1
            cur.execute(FINISH_ITEM, [item_id, True, "ran at top level"])
        if run is not None:
            run.rows = done
    return planned, done, failed


def _index_summary(planned: int, done: int, failed: int) -> str:
    if not done + failed:
        return "no index needs a rebuild"
    return f"planned {planned} index statements; ran {done + failed}: {done} done, {failed} failed"


class IndexStatementsFailed(JobFailed):
    """Some of index-reindex's statements failed (each is settled with its error in index_maintenance)."""


def run_index_reindex_on_runner(conn: psycopg.Connection, cancelled: threading.Event | None = None) -> str:
    """index-reindex on the runner, where pg_cron lives in another database (it cannot arm
    index-reindex-step there): under the job's lock, plan a cycle and run its statements at top level in
    this session (autocommit), as `autopilot run index-reindex` does; the runner records the run. Raises
    IndexStatementsFailed when a statement failed."""
    assert conn.autocommit, "REINDEX CONCURRENTLY runs at top level: an autocommit connection"
    with conn.cursor() as cur:
        key = cur.execute("SELECT autopilot._job_lock_key(%s)", [INDEX_REINDEX]).fetchone()[0]
        if not cur.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
            return f"skipped: another run of {INDEX_REINDEX} is still in progress"
        try:
            planned, done, failed = _index_statements(cur, cancelled=cancelled)
        finally:
            cur.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [key])
    summary = _index_summary(planned, done, failed)
    if failed:
        raise IndexStatementsFailed(summary + " (autopilot.index_maintenance says why)")
    return summary
