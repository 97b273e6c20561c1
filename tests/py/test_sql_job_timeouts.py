"""Timeouts of database-side jobs (autopilot.set_job_timeout): a run past its job's timeout is cancelled
and recorded timed_out, through ``autopilot run`` (the CALL runs under the job's statement_timeout) and
as pg_cron runs it (a bare CALL: the next scheduled run of any job cancels it). The job is held up for
real: pattern-learning waits for a lock another session holds on the table it reads.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import psycopg
import pytest
from helpers import dict_rows, wait_for

JOB = "pattern-learning"


@pytest.fixture
def held_job(db):
    """A database where every run of pattern-learning waits, and the lock holder (released after)."""
    db.install("extension")
    blocker = db.connect(autocommit=False)
    blocker.execute("LOCK TABLE autopilot.learning_watermarks IN ACCESS EXCLUSIVE MODE")
    yield db
    blocker.rollback()
    blocker.close()


def runs(db) -> list[dict]:
    with db.connect() as conn:
        return dict_rows(
            conn,
            "SELECT id, job_name, status, started_at, finished_at, message, error_sqlstate, details "
            "FROM autopilot.job_runs ORDER BY id",
        )


def start_scheduled_run(db) -> tuple[threading.Thread, dict]:
    """A run of JOB as pg_cron makes it (a bare CALL, no statement_timeout), in a thread of its own; the
    dict gets the error it ends with, under "error"."""
    outcome: dict = {}

    def scheduled_run() -> None:
        with db.connect() as conn:
            try:
                conn.execute("CALL autopilot.run_scheduled_job(%s)", [JOB])
            except psycopg.Error as exc:
                outcome["error"] = exc

    thread = threading.Thread(target=scheduled_run)
    thread.start()
    return thread, outcome


def test_autopilot_run_past_the_timeout_is_cancelled_and_recorded_timed_out(held_job, autopilot):
    db = held_job
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_timeout(%s, '2 seconds')", [JOB])
    started = time.monotonic()
    result = autopilot("run", JOB, "--dsn", db.dsn)
    took = time.monotonic() - started
    assert result.exit_code != 0, result.output
    assert "timed_out" in result.output and "SQLSTATE 57014" in result.output, result.output
    assert 2 <= took < 30, took  # cancelled, not left waiting for the lock

    (run,) = runs(db)
    assert run["status"] == "timed_out", run
    assert run["error_sqlstate"] == "57014"
    assert run["message"].startswith("timed out after"), run["message"]
    assert "timeout 00:00:02" in run["message"]
    assert run["finished_at"] - run["started_at"] >= timedelta(seconds=1.9)
    with db.connect() as conn:
        problems = dict_rows(
            conn, "SELECT check_name, subject FROM autopilot.health WHERE subject = %s", [JOB]
        )
        assert {"check_name": "job_timed_out", "subject": JOB} in problems, problems


def test_a_scheduled_run_past_its_timeout_is_cancelled_by_the_next_scheduled_run(held_job):
    db = held_job
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_timeout(%s, '3 seconds')", [JOB])
    thread, outcome = start_scheduled_run(db)
    try:
        time.sleep(1)
        with db.connect() as conn:
            # within its timeout, another job's run leaves it alone
            conn.execute("CALL autopilot.run_scheduled_job('task-assignment')")
            time.sleep(0.5)
            assert thread.is_alive(), outcome
            assert [r["status"] for r in runs(db) if r["job_name"] == JOB] == ["running"]
            time.sleep(2.5)
            # past it: the next scheduled run cancels it
            conn.execute("CALL autopilot.run_scheduled_job('task-assignment')")
        thread.join(20)
        assert not thread.is_alive()
    finally:
        thread.join(30)

    error = outcome["error"]
    assert isinstance(error, psycopg.errors.QueryCanceled), error
    assert str(error).startswith(f"autopilot job {JOB} timed out after"), str(error)
    rows = runs(db)
    (run,) = [r for r in rows if r["job_name"] == JOB]
    assert run["status"] == "timed_out", run
    assert run["details"]["timeout"] == "00:00:03"
    assert [r["status"] for r in rows if r["job_name"] != JOB] == ["succeeded", "succeeded"]


def test_two_runs_that_find_it_past_its_timeout_cancel_it_once(held_job):
    """pg_cron starts several jobs on the same minute, and each looks for runs past their timeout: the
    first marks the run's row and cancels it; the second waits for that mark and sends nothing, so the
    cancelled run records itself timed_out undisturbed."""
    db = held_job
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_timeout(%s, '1 second')", [JOB])
    second: dict = {}

    def second_canceller() -> None:
        with psycopg.connect(db.dsn, autocommit=True, application_name="second-canceller") as conn:
            second["cancelled"] = conn.execute("SELECT autopilot._cancel_timed_out_runs()").fetchone()[0]

    def waits_for_a_lock(name: str) -> bool:
        with db.connect() as conn:
            return (
                conn.execute(
                    "SELECT true FROM pg_stat_activity "
                    "WHERE application_name = %s AND wait_event_type = 'Lock'",
                    [name],
                ).fetchone()
                is not None
            )

    run, outcome = start_scheduled_run(db)
    first = db.connect(autocommit=False)
    other = threading.Thread(target=second_canceller)
    try:
        time.sleep(1.5)
        assert first.execute("SELECT autopilot._cancel_timed_out_runs()").fetchone()[0] == 1
        other.start()
        wait_for(lambda: waits_for_a_lock("second-canceller"), "the second caller to wait for the mark")
        first.commit()
        other.join(20)
        run.join(20)
    finally:
        first.rollback()
        first.close()
        if other.ident is not None:  # started
            other.join(20)
        run.join(20)
    assert second == {"cancelled": 0}, second
    error = outcome["error"]
    assert isinstance(error, psycopg.errors.QueryCanceled), error
    assert str(error).startswith(f"autopilot job {JOB} timed out after"), str(error)
    (row,) = runs(db)
    assert row["status"] == "timed_out", row


def test_a_cancel_before_the_timeout_is_a_failure_not_a_timeout(held_job):
    db = held_job
    thread, outcome = start_scheduled_run(db)
    try:
        time.sleep(1)
        with db.connect() as conn:
            (pid,) = conn.execute(
                "SELECT backend_pid FROM autopilot.job_runs WHERE job_name = %s AND status = 'running'", [JOB]
            ).fetchone()
            assert conn.execute("SELECT pg_cancel_backend(%s)", [pid]).fetchone()[0]
    finally:
        thread.join(20)
    assert isinstance(outcome["error"], psycopg.errors.QueryCanceled)
    (run,) = runs(db)
    assert run["status"] == "failed" and run["error_sqlstate"] == "57014", run


def test_a_dba_sets_the_timeout_and_retries_with_autopilot_schedule(synced_db, autopilot):
    db = synced_db

    def policy() -> tuple:
        with db.connect() as conn:
            return conn.execute(
                "SELECT timeout::text, max_attempts, retry_backoff::text, schedule "
                "FROM autopilot.job_definitions WHERE name = %s",
                [JOB],
            ).fetchone()

    default = policy()
    result = autopilot(
        "schedule",
        JOB,
        "--timeout",
        "90 seconds",
        "--retries",
        "4",
        "--backoff",
        "2 seconds",
        "--dsn",
        db.dsn,
    )
    assert result.exit_code == 0, result.output
    assert f"{JOB} now times out after 00:01:30" in result.output
    assert (
        f"{JOB} now makes up to 4 attempts per run on a transient failure, 00:00:02 before" in result.output
    )
    assert policy() == ("00:01:30", 4, "00:00:02", default[3])

    # bad input: the message and hint of the database, nothing changed (not even the valid part)
    result = autopilot("schedule", JOB, "--timeout", "0", "--retries", "2", "--dsn", db.dsn)
    assert result.exit_code != 0
    assert "it must be positive" in result.output, result.output
    assert policy() == ("00:01:30", 4, "00:00:02", default[3])
    result = autopilot("schedule", "vacuum-analyze", "--retries", "2", "--dsn", db.dsn)
    assert result.exit_code != 0 and "has no retry policy of its own" in result.output, result.output
    result = autopilot("schedule", JOB, "--backoff", "1 second", "--dsn", db.dsn)
    assert result.exit_code == 2 and "--backoff goes with --retries" in result.output, result.output

    # with a new schedule at once, then back to the catalog
    result = autopilot("schedule", JOB, "*/7 * * * *", "--retries", "1", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "(no retry)" in result.output
    assert policy() == ("00:01:30", 1, "00:00:02", "*/7 * * * *")
    result = autopilot("schedule", JOB, "--reset", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert policy() == default
