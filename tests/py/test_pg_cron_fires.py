"""pg_cron really fires the jobs registered from the cron database into the application database.

pg_cron 1.4 has no seconds schedules: the jobs are set to every minute and the test waits for the
next minute to begin (under about 70 s). Both jobs are watched at once, so the wait is paid once; in
the same minute, pg_cron's runs cancel a run held up past its job's timeout.
"""

from __future__ import annotations

import json
import threading
import time

import psycopg
import pytest
from helpers import cron_jobs, dict_rows

TIMEOUT = 100  # seconds: the next minute boundary, pg_cron noticing the change, and the runs themselves


@pytest.mark.slow
def test_pg_cron_fires_function_and_statement_jobs(synced_db, autopilot, cron_conn):
    db = synced_db
    for job in ("table-statistics", "vacuum-analyze"):
        result = autopilot("schedule", job, "* * * * *", "--dsn", db.dsn)
        assert result.exit_code == 0, result.output
    jobs = cron_jobs(cron_conn, db.name)
    stats_job = jobs[f"autopilot:{db.name}:table-statistics"]
    vacuum_job = jobs[f"autopilot:{db.name}:vacuum-analyze"]
    assert (stats_job["schedule"], stats_job["active"]) == ("* * * * *", True)
    assert (vacuum_job["schedule"], vacuum_job["active"]) == ("* * * * *", True)

    def ledger_run():
        with db.connect() as conn:
            rows = dict_rows(
                conn,
                "SELECT * FROM autopilot.job_runs WHERE job_name = 'table-statistics' "
                "AND trigger = 'pg_cron' AND status = 'succeeded' ORDER BY id LIMIT 1",
            )
        return rows[0] if rows else None

    def cron_run(jobid: int):
        rows = dict_rows(
            cron_conn,
            "SELECT * FROM cron.job_run_details WHERE jobid = %s AND status = 'succeeded' "
            "ORDER BY runid LIMIT 1",
            [jobid],
        )
        return rows[0] if rows else None

    # meanwhile a run of pattern-learning, a bare CALL as pg_cron makes it, waits for a row another
    # session holds, past its job's timeout: the next run pg_cron starts cancels it
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_job_timeout('pattern-learning', '2 seconds')")
        conn.execute(
            "INSERT INTO autopilot.learning_watermarks (name) VALUES ('pattern-learning') "
            "ON CONFLICT DO NOTHING"
        )
    blocker = db.connect(autocommit=False)
    blocker.execute("SELECT FROM autopilot.learning_watermarks WHERE name = 'pattern-learning' FOR UPDATE")
    held: dict = {}

    def held_run() -> None:
        try:
            with db.connect() as conn:
                conn.execute("CALL autopilot.run_scheduled_job('pattern-learning')")
        except psycopg.Error as exc:
            held["error"] = exc

    holder = threading.Thread(target=held_run)
    holder.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        stats_run = vacuum_run = None
        while time.monotonic() < deadline and not (stats_run and vacuum_run):
            time.sleep(1)
            stats_run = stats_run or ledger_run()
            vacuum_run = vacuum_run or cron_run(vacuum_job["jobid"])
        if not (stats_run and vacuum_run):
            history = dict_rows(
                cron_conn,
                "SELECT jobid, status, return_message, start_time FROM cron.job_run_details "
                "WHERE jobid = ANY(%s) ORDER BY runid",
                [[stats_job["jobid"], vacuum_job["jobid"]]],
            )
            with db.connect() as conn:
                ledger = dict_rows(conn, "SELECT job_name, trigger, status, message FROM autopilot.job_runs")
            pytest.fail(
                f"pg_cron did not run both jobs in {TIMEOUT} s; pg_cron history: {history}; ledger: {ledger}"
            )
        holder.join(90)  # a tick within 2 s of its start leaves it for the next one
    finally:
        blocker.rollback()
        blocker.close()
        holder.join(30)
    assert isinstance(held.get("error"), psycopg.errors.QueryCanceled), held
    assert str(held["error"]).startswith("autopilot job pattern-learning timed out after"), held
    with db.connect() as conn:
        statuses = [
            row[0]
            for row in conn.execute(
                "SELECT status FROM autopilot.job_runs WHERE job_name = 'pattern-learning' ORDER BY id"
            )
        ]
    assert "timed_out" in statuses, statuses

    # table-statistics: the CALL ran the function in the test database and wrote the ledger
    assert stats_run["side"] == "database"
    assert f"analyzed database {db.name}" in stats_run["message"]
    assert cron_run(stats_job["jobid"])["command"] == "CALL autopilot.run_scheduled_job('table-statistics')"
    # vacuum-analyze: pg_cron ran the VACUUM at top level, in the test database
    assert vacuum_run["database"] == db.name
    assert vacuum_run["return_message"] == "VACUUM"
    assert db.scalar(
        "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables "
        "WHERE schemaname = 'autopilot' AND relname = 'jobs'"
    )

    # stop the minute-by-minute runs, and let a run already started finish, so status reads a settled history
    for job in ("table-statistics", "vacuum-analyze"):
        assert autopilot("schedule", job, "--disable", "--dsn", db.dsn).exit_code == 0
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline
        and cron_conn.execute(
            "SELECT count(*) FROM cron.job_run_details "
            "WHERE jobid = ANY(%s) AND status IN ('starting', 'running')",
            [[stats_job["jobid"], vacuum_job["jobid"]]],
        ).fetchone()[0]
    ):
        time.sleep(0.5)

    # status reads the statement job's last run from pg_cron's history (it is not in the ledger)
    result = autopilot("status", "--json", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    report = {j["name"]: j for j in json.loads(result.stdout)["jobs"]}
    vacuum = report["vacuum-analyze"]
    assert vacuum["last_status"] == "succeeded"
    assert vacuum["last_run_at"] is not None
    assert vacuum["last_message"] == "pg_cron: VACUUM"
    assert vacuum["last_success_at"] is not None
    assert vacuum["pg_cron"] == f"#{vacuum_job['jobid']} inactive"
    stats = report["table-statistics"]
    assert stats["last_status"] == "succeeded"
    assert stats["last_run_at"] is not None
    assert stats["last_message"].startswith(("analyzed database", "pg_cron: CALL"))
