"""Retries of database-side jobs (autopilot.set_job_retries), provoked for real: pattern-learning needs a
lock another session holds, and the run's session has a lock_timeout, so each attempt fails with
lock_not_available (55P03), a transient failure; a real deadlock (40P01) is retried too. A permanent
error is not retried.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from helpers import dict_rows, wait_for

JOB = "pattern-learning"


@pytest.fixture
def locked(db):
    """pattern-learning's table locked by another session (the holder, rolled back after)."""
    db.install("extension")
    blocker = db.connect(autocommit=False)
    blocker.execute("LOCK TABLE autopilot.learning_watermarks IN ACCESS EXCLUSIVE MODE")
    yield db, blocker
    blocker.rollback()
    blocker.close()


def attempts(db) -> list[dict]:
    with db.connect() as conn:
        return dict_rows(
            conn,
            "SELECT attempt, status, error_sqlstate, message, details FROM autopilot.job_runs "
            "WHERE job_name = %s ORDER BY id",
            [JOB],
        )


def scheduled_run(db) -> None:
    """The job as pg_cron runs it, in a session with a lock_timeout."""
    with psycopg.connect(db.dsn, autocommit=True, options="-c lock_timeout=300ms") as conn:
        conn.execute("CALL autopilot.run_scheduled_job(%s)", [JOB])


def test_lock_not_available_is_retried_with_backoff_each_attempt_in_the_ledger(locked):
    db, _ = locked
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_retries(%s, 3, '400 ms')", [JOB])
    started = time.monotonic()
    with pytest.raises(psycopg.errors.LockNotAvailable):
        scheduled_run(db)
    took = time.monotonic() - started
    rows = attempts(db)
    assert [(r["attempt"], r["status"], r["error_sqlstate"]) for r in rows] == [
        (1, "failed", "55P03"),
        (2, "failed", "55P03"),
        (3, "failed", "55P03"),
    ], rows
    assert rows[0]["message"].endswith("(attempt 1 of 3, retried after 00:00:00.4)"), rows[0]["message"]
    assert rows[1]["message"].endswith("(attempt 2 of 3, retried after 00:00:00.8)"), rows[1]["message"]
    assert "retried" not in rows[2]["message"]
    # three lock waits of 0.3 s and backoffs of 0.4 s and 0.8 s (noisy machine: only a lower bound)
    assert took >= 2.0, took


def test_a_retry_that_gets_the_lock_succeeds(locked):
    db, blocker = locked
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_retries(%s, 3, '1 second')", [JOB])
    outcome: dict = {}

    def run() -> None:
        try:
            scheduled_run(db)
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(lambda: any(r["status"] == "failed" for r in attempts(db)), "the first attempt to fail")
        blocker.rollback()  # released during the backoff
    finally:
        thread.join(30)
    assert "error" not in outcome, outcome
    rows = attempts(db)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "failed"), (2, "succeeded")], rows


def test_a_permanent_error_is_not_retried(db):
    db.install("extension")
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_retries(%s, 5, '0 seconds')", [JOB])
        # the job's table gone: an undefined object, no transient failure
        conn.execute("ALTER TABLE autopilot.learning_watermarks RENAME TO learning_watermarks_gone")
    with pytest.raises(psycopg.Error) as raised:
        scheduled_run(db)
    state = raised.value.sqlstate
    assert state is not None and state[:2] == "42", state
    rows = attempts(db)
    assert [(r["attempt"], r["status"], r["error_sqlstate"]) for r in rows] == [(1, "failed", state)], rows


def test_no_retry_past_the_timeout(locked):
    """The timeout covers the whole run: a retry whose backoff would end past it is not made."""
    db, _ = locked
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_retries(%s, 10, '1 second')", [JOB])
        conn.execute("SELECT autopilot.set_job_timeout(%s, '2 seconds')", [JOB])
    with pytest.raises(psycopg.errors.LockNotAvailable):
        scheduled_run(db)
    rows = attempts(db)
    # attempt 1 fails after 0.3 s and waits 1 s; attempt 2 fails at ~1.6 s and would wait 2 s
    assert 1 <= len(rows) <= 3, rows
    assert all(r["status"] == "failed" and r["error_sqlstate"] == "55P03" for r in rows), rows
    expected = "not retried: the next attempt would start past the timeout of 00:00:02"
    assert expected in rows[-1]["message"], rows


def test_a_deadlock_is_retried_and_the_retry_succeeds(db):
    """A real deadlock: the run holds pattern-learning's watermark row and waits for learned_patterns,
    which another session holds and then asks for that row. The run (the shorter deadlock_timeout) is
    the victim (40P01), a transient failure: its next attempt runs once the other session is done."""
    db.install("extension")
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_retries(%s, 3, '1 second')", [JOB])
        # the watermark row exists before the run, so both sessions lock the same row
        conn.execute(
            "INSERT INTO autopilot.learning_watermarks (name) VALUES (%s) ON CONFLICT DO NOTHING", [JOB]
        )
    blocker = db.connect(autocommit=False)
    blocker.execute("SET deadlock_timeout = '30s'")  # never the victim
    blocker.execute("LOCK TABLE autopilot.learned_patterns IN ACCESS EXCLUSIVE MODE")
    outcome: dict = {}

    def run() -> None:
        try:
            with psycopg.connect(
                db.dsn, autocommit=True, options="-c deadlock_timeout=1s -c application_name=deadlocked-run"
            ) as conn:
                conn.execute("CALL autopilot.run_scheduled_job(%s)", [JOB])
        except psycopg.Error as exc:
            outcome["error"] = exc

    def run_waits_for_a_lock() -> bool:
        with db.connect() as conn:
            return (
                conn.execute(
                    "SELECT true FROM pg_stat_activity WHERE application_name = 'deadlocked-run' "
                    "AND wait_event_type = 'Lock'"
                ).fetchone()
                is not None
            )

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_for(run_waits_for_a_lock, "the run to wait for learned_patterns")
        # the cycle: the run holds the row and waits for the table the blocker holds
        blocker.execute("SELECT FROM autopilot.learning_watermarks WHERE name = %s FOR UPDATE", [JOB])
        wait_for(lambda: any(r["status"] == "failed" for r in attempts(db)), "the first attempt to fail")
        blocker.rollback()  # released during the backoff
    finally:
        blocker.rollback()
        blocker.close()
        thread.join(30)
    assert "error" not in outcome, outcome
    rows = attempts(db)
    assert [(r["attempt"], r["status"], r["error_sqlstate"]) for r in rows] == [
        (1, "failed", "40P01"),
        (2, "succeeded", None),
    ], rows
    assert "(attempt 1 of 3, retried after 00:00:01)" in rows[0]["message"], rows[0]["message"]
