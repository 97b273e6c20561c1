"""Two runs of one job at once: the second skips and says so. A run cut short is marked abandoned."""

from __future__ import annotations

import subprocess
import threading

import psycopg
import pytest
from helpers import autopilot_argv, dict_rows, wait_for

SKIPPED = "skipped: another run of {} is still in progress"


def runs(db, job: str) -> list[dict]:
    with db.connect() as conn:
        return dict_rows(conn, "SELECT * FROM autopilot.job_runs WHERE job_name = %s ORDER BY id", [job])


def hold_job_lock(conn: psycopg.Connection, job: str) -> None:
    conn.execute("SELECT pg_advisory_lock(autopilot._job_lock_key(%s))", [job])


@pytest.mark.parametrize("job", ["table-statistics", "old-job-cleanup", "vacuum-analyze", "backup-hourly"])
def test_second_run_skips_while_the_lock_is_held(installed_db, autopilot, job):
    db = installed_db
    with db.connect() as holder:
        hold_job_lock(holder, job)

        # the CLI: every kind of job (function, batched, statement, enqueue) skips, and says so
        result = autopilot("run", job, "--dsn", db.dsn)
        assert result.exit_code == 0, result.output
        assert f"{job}: skipped" in result.stdout
        assert SKIPPED.format(job) in result.stdout

        if job != "vacuum-analyze":  # a statement job cannot run inside a function
            with db.connect() as conn:
                notices: list[str] = []
                conn.add_notice_handler(lambda d: notices.append(d.message_primary))
                run = dict_rows(conn, "SELECT * FROM autopilot.run_job(%s)", [job])[0]
                # what pg_cron runs
                conn.execute("CALL autopilot.run_scheduled_job(%s)", [job])
            assert run["status"] == "skipped"
            assert run["message"] == SKIPPED.format(job)
            assert run["finished_at"] is not None
            assert any("skipped: another run is still in progress" in n for n in notices), notices

    ledger = runs(db, job)
    assert {r["status"] for r in ledger} == {"skipped"}
    assert len(ledger) == (1 if job == "vacuum-analyze" else 3)
    assert db.scalar("SELECT count(*) FROM autopilot.jobs") == 0, "a skipped enqueue enqueues nothing"

    # the lock is free again: the next run goes ahead
    result = autopilot("run", job, "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"{job}: succeeded" in result.stdout


def test_a_skipped_run_leaves_the_running_one_alone(installed_db):
    """A run in progress (its ledger row 'running', its lock held) is neither skipped nor abandoned."""
    db = installed_db
    with db.connect() as holder:
        running_id = holder.execute("SELECT autopilot._run_start('table-statistics', true, true)").fetchone()[
            0
        ]
        with db.connect() as conn:
            run = dict_rows(conn, "SELECT * FROM autopilot.run_job('table-statistics')")[0]
        assert run["status"] == "skipped"
        assert db.scalar("SELECT status FROM autopilot.job_runs WHERE id = %s", [running_id]) == "running"


@pytest.fixture
def blocked_cleanup(installed_db):
    """old-job-cleanup with one old finished job whose row another session holds locked: a run of the
    job blocks in its first batch (its DELETE waits for the row lock) until the lock is released."""
    db = installed_db
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.jobs (worker, state, completed_at) "
            "VALUES ('w', 'completed', now() - interval '30 days')"
        )
    locker = db.connect(autocommit=False)
    locker.execute("SELECT id FROM autopilot.jobs FOR UPDATE").fetchall()
    try:
        yield locker
    finally:
        locker.rollback()
        locker.close()


def waiting_run(db) -> dict | None:
    """The old-job-cleanup run in progress, once its backend waits for the row lock."""
    with db.connect() as conn:
        rows = dict_rows(
            conn,
            "SELECT r.id, r.backend_pid FROM autopilot.job_runs AS r "
            "JOIN pg_stat_activity AS a ON a.pid = r.backend_pid "
            "WHERE r.job_name = 'old-job-cleanup' AND r.status = 'running' AND a.wait_event_type = 'Lock'",
        )
    return rows[0] if rows else None


def test_concurrent_runs_for_real(installed_db, blocked_cleanup, autopilot):
    """Two `autopilot run` at once: the first (a separate process) is mid-way, the second skips."""
    db = installed_db
    first = subprocess.Popen(
        [*autopilot_argv(), "run", "old-job-cleanup", "--dsn", db.dsn],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = wait_for(lambda: waiting_run(db), "the first run to block mid-way")

        second = autopilot("run", "old-job-cleanup", "--dsn", db.dsn)
        assert second.exit_code == 0, second.output
        assert "old-job-cleanup: skipped" in second.stdout
        assert SKIPPED.format("old-job-cleanup") in second.stdout

        blocked_cleanup.rollback()  # the first run may go on
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, err
    assert "old-job-cleanup: succeeded" in out
    assert "Traceback" not in err

    ledger = {r["id"]: r for r in runs(db, "old-job-cleanup")}
    assert ledger[running["id"]]["status"] == "succeeded"
    assert ledger[running["id"]]["rows_affected"] == 1
    assert sorted(r["status"] for r in ledger.values()) == ["skipped", "succeeded"]
    assert db.scalar("SELECT count(*) FROM autopilot.jobs") == 0


def test_killed_procedure_run_is_marked_abandoned(installed_db, blocked_cleanup, admin_dsn, autopilot):
    """pg_cron's CALL killed mid-way (pg_terminate_backend): the next run marks it abandoned."""
    db = installed_db
    outcome: dict[str, BaseException | None] = {}

    def scheduled_run() -> None:
        try:
            with psycopg.connect(db.dsn, autocommit=True, application_name="pg_cron") as conn:
                conn.execute("CALL autopilot.run_scheduled_job('old-job-cleanup')")
            outcome["error"] = None
        except psycopg.Error as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=scheduled_run, daemon=True)
    thread.start()
    running = wait_for(lambda: waiting_run(db), "the scheduled run to block mid-way")
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", [running["backend_pid"]]).fetchone()[0]
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert isinstance(outcome["error"], psycopg.OperationalError), outcome
    blocked_cleanup.rollback()

    # the ledger still says running: nobody was left to finish it
    (cut_short,) = runs(db, "old-job-cleanup")
    assert (cut_short["id"], cut_short["status"], cut_short["trigger"]) == (
        running["id"],
        "running",
        "pg_cron",
    )
    assert cut_short["finished_at"] is None

    result = autopilot("run", "old-job-cleanup", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "old-job-cleanup: succeeded" in result.stdout

    before, after = runs(db, "old-job-cleanup")
    assert before["id"] == running["id"]
    assert before["status"] == "abandoned"
    assert before["message"] == "the session running it ended before the run finished"
    assert before["finished_at"] is not None and before["finished_at"] >= before["started_at"]
    assert (after["status"], after["trigger"], after["rows_affected"]) == ("succeeded", "manual", 1)
    assert db.scalar("SELECT count(*) FROM autopilot.jobs") == 0


def test_abandoned_run_found_by_run_job(installed_db, admin_dsn):
    """autopilot.run_job() (in SQL) finds an abandoned run too, and the status command reports it."""
    db = installed_db
    victim = db.connect()
    run_id = victim.execute("SELECT autopilot._run_start('table-statistics', false, true)").fetchone()[0]
    pid = victim.info.backend_pid
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
    victim.close()
    with db.connect() as conn:
        run = dict_rows(conn, "SELECT * FROM autopilot.run_job('table-statistics')")[0]
    assert run["status"] == "succeeded"
    assert db.scalar("SELECT status FROM autopilot.job_runs WHERE id = %s", [run_id]) == "abandoned"
