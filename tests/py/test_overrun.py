"""A real pg_cron overrun: pg_cron 1.4 queues the ticks that pass while a run is still going and
starts them back to back once it ends, so a job's lock never sees two runs at once. A queued run
that starts more than one interval after its tick is recorded as skipped and does nothing; only the
last one, within an interval of its tick, runs. (The rule itself: tests/sql/catch_up.sql.)
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import dict_rows, wait_for

JOB = "pattern-learning"


@pytest.mark.slow
def test_an_overrun_leads_to_skipped_runs_not_a_pile_up(synced_db, autopilot):
    db = synced_db
    result = autopilot("schedule", JOB, "* * * * *", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output

    def runs() -> list[dict]:
        with db.connect() as conn:
            return dict_rows(
                conn,
                "SELECT id, status, started_at, finished_at, scheduled_for, message FROM autopilot.job_runs "
                "WHERE job_name = %s AND trigger = 'pg_cron' ORDER BY id",
                [JOB],
            )

    # every run of the job waits for this lock while it is held
    blocker = db.connect(autocommit=False)
    try:
        blocker.execute("LOCK TABLE autopilot.learning_watermarks IN ACCESS EXCLUSIVE MODE")
        first = wait_for(lambda: runs(), "pg_cron to start the job", timeout=90)[0]
        tick = first["scheduled_for"]
        assert tick is not None and first["status"] == "running"
        # hold it across the next two ticks: pg_cron queues both
        release_at = tick + timedelta(minutes=2, seconds=5)
        time.sleep(max(0.0, (release_at - datetime.now(UTC)).total_seconds()))
    finally:
        blocker.rollback()
        blocker.close()

    def caught_up() -> list[dict] | None:
        rows = runs()
        return rows if len(rows) >= 3 and all(r["status"] != "running" for r in rows[:3]) else None

    rows = wait_for(caught_up, "the queued runs", timeout=30)
    autopilot("schedule", JOB, "--disable", "--dsn", db.dsn)
    overrun, queued, last = rows[:3]
    assert overrun["status"] == "succeeded"
    assert overrun["finished_at"] - overrun["started_at"] > timedelta(minutes=2)

    # queued for the next tick, it started more than a minute after it: skipped, nothing done
    assert queued["status"] == "skipped", rows
    assert queued["scheduled_for"] == tick + timedelta(minutes=1)
    assert queued["message"].startswith("skipped: caught up after an overrun"), queued["message"]
    assert queued["started_at"] - queued["scheduled_for"] > timedelta(minutes=1)

    # queued for the tick after, within a minute of it: runs
    assert last["status"] == "succeeded", rows
    assert last["scheduled_for"] == tick + timedelta(minutes=2)
    assert last["started_at"] - last["scheduled_for"] < timedelta(minutes=1)

    # nothing else ran for those ticks
    for later in rows[3:]:
        assert later["scheduled_for"] >= tick + timedelta(minutes=3), rows
