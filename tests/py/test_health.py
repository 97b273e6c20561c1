"""autopilot.health through the real CLI: `autopilot check` (monitoring-plugin exit codes, --json) and
`autopilot status` (shows the problems, exits 2 on a critical one), with pg_cron in another database."""

from __future__ import annotations

import json
import re

import psycopg
import pytest
from helpers import run_subprocess
from readme_roles import readme_roles


def _lines(result) -> list[str]:
    return result.stdout.rstrip("\n").split("\n")


def test_check_ok_warning_critical_through_the_real_cli(synced_db, cron_conn):
    db = synced_db
    env = {"AUTOPILOT_DSN": db.dsn}

    ok = run_subprocess("check", env=env)
    assert (ok.returncode, _lines(ok)) == (0, ["AUTOPILOT OK - no problems"]), ok.stderr
    quiet = run_subprocess("check", "--json", env=env)
    assert json.loads(quiet.stdout) == {
        "status": "OK",
        "exit_code": 0,
        "summary": "AUTOPILOT OK - no problems",
        "problems": [],
    }

    # a warning only: a runner job discarded an hour ago
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.jobs (worker, queue, state, discarded_at) "
            "VALUES ('code-ingest', 'default', 'discarded', now() - interval '1 hour')"
        )
    warned = run_subprocess("check", env=env)
    assert warned.returncode == 1, warned.stdout
    assert _lines(warned)[0] == "AUTOPILOT WARNING - 1 warning: jobs discarded in queue default"
    assert _lines(warned)[1].startswith(
        "WARNING jobs_discarded default: 1 job(s) of queue default were discarded"
    )
    assert run_subprocess("status", env=env).returncode == 0, "status fails on critical problems only"

    # critical: table-statistics (daily) last succeeded three days ago; pg_cron lost pattern-learning's job
    # (pg_cron lives in another database: its checks come from there)
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.job_runs "
            "(job_name, side, trigger, status, started_at, finished_at, message) "
            "VALUES ('table-statistics', 'database', 'pg_cron', 'succeeded', now() - interval '3 days', "
            "now() - interval '3 days', 'ok')"
        )
    cron_conn.execute(
        "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s AND database = %s",
        [f"autopilot:{db.name}:pattern-learning", db.name],
    )
    critical = run_subprocess("check", env=env)
    assert critical.returncode == 2, critical.stdout
    lines = _lines(critical)
    # critical first; the fake three-day-old run also makes the jobs pg_cron never ran since then warnings
    assert re.fullmatch(
        r"AUTOPILOT CRITICAL - 2 critical, \d+ warning: pg_cron job pattern-learning missing, "
        r"job table-statistics overdue, .*",
        lines[0],
    ), lines[0]
    assert lines[1].startswith(
        f"CRITICAL cron_missing pattern-learning: pg_cron has no job autopilot:{db.name}:pattern-learning"
    )
    assert "autopilot sync" in lines[1]
    assert lines[2].startswith(
        "CRITICAL job_overdue table-statistics: job table-statistics has not succeeded since"
    )
    assert "autopilot run table-statistics" in lines[2]
    assert all(line.startswith("WARNING ") for line in lines[3:])
    never_run = f"WARNING cron_never_run vacuum-analyze: pg_cron job autopilot:{db.name}:vacuum-analyze"
    assert never_run in critical.stdout
    assert "WARNING jobs_discarded default" in critical.stdout

    document = json.loads(run_subprocess("check", "--json", env=env).stdout)
    assert (document["status"], document["exit_code"], document["summary"]) == ("CRITICAL", 2, lines[0])
    assert len(document["problems"]) == len(lines) - 1
    assert [(p["severity"], p["check_name"], p["subject"]) for p in document["problems"][:2]] == [
        ("critical", "cron_missing", "pattern-learning"),
        ("critical", "job_overdue", "table-statistics"),
    ]
    assert {p["check_name"] for p in document["problems"][2:]} == {"cron_never_run", "jobs_discarded"}
    assert document["problems"][1]["since"] is not None

    # status: the same problems, OVERDUE from SQL, and a non-zero exit
    status = run_subprocess("status", env=env)
    assert status.returncode == 2, status.stderr
    assert "health (autopilot.health)" in status.stdout
    assert "CRITICAL cron_missing pattern-learning" in status.stdout
    report = run_subprocess("status", "--json", env=env)
    assert report.returncode == 2
    parsed = json.loads(report.stdout)
    assert {j["name"]: j["overdue"] for j in parsed["jobs"]}["table-statistics"] is True
    assert [p["check_name"] for p in parsed["problems"][:2]] == ["cron_missing", "job_overdue"]

    # what the DBA is told to do fixes it
    assert run_subprocess("sync", env=env).returncode == 0
    assert run_subprocess("run", "table-statistics", env=env).returncode == 0
    assert run_subprocess("check", env=env).returncode == 1


def test_check_unknown_when_it_cannot_connect_or_autopilot_is_missing(db):
    nowhere = "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=3"
    down = run_subprocess("check", "--dsn", nowhere)
    assert down.returncode == 3
    assert len(_lines(down)) == 1 and down.stdout.startswith("AUTOPILOT UNKNOWN - cannot connect")
    document = json.loads(run_subprocess("check", "--json", "--dsn", nowhere).stdout)
    assert (document["status"], document["exit_code"], document["problems"]) == ("UNKNOWN", 3, [])

    missing = run_subprocess("check", "--dsn", db.dsn)
    assert missing.returncode == 3
    assert _lines(missing) == ["AUTOPILOT UNKNOWN - autopilot is not installed in this database"]


def test_health_in_the_pg_cron_database_shows_autopilot_jobs_to_the_readonly_role(
    cron_db, cron_conn, admin_dsn
):
    """pg_cron local: the view reads cron.job as the owner, so the README's read-only role, to which pg_cron
    itself shows nothing, still gets the pg_cron checks of autopilot's jobs, the same rows as a superuser."""
    cron_db.install("extension", sync=True)
    cron_conn.execute(
        "SELECT cron.alter_job(jobid, active := false) FROM cron.job "
        "WHERE jobname = 'autopilot:' || current_database() || ':vector-stats' "
        "AND database = current_database()"
    )
    query = "SELECT check_name, subject, severity FROM autopilot.health"
    with readme_roles(admin_dsn, cron_db) as dsns, psycopg.connect(dsns["readonly"]) as reader:
        reader.autocommit = True
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT count(*) FROM cron.job")
        rows = reader.execute(query).fetchall()
    assert ("cron_inactive", "vector-stats", "critical") in rows
    assert not [r for r in rows if r[0] == "cron_missing"], rows
    with cron_db.connect() as conn:
        assert conn.execute(query).fetchall() == rows


def test_check_and_status_agree_on_what_sync_would_change(synced_db, cron_conn):
    """pg_cron in another database: a pg_cron job of this database that the catalog does not have and a
    disabled job that pg_cron still runs are out of sync for `check` (a warning) exactly as for `status`
    (exit 1), and `autopilot sync` clears both."""
    db = synced_db
    env = {"AUTOPILOT_DSN": db.dsn}
    stray = f"autopilot:{db.name}:retired-job"
    cron_conn.execute("SELECT cron.schedule_in_database(%s, '0 0 * * *', 'SELECT 1', %s)", [stray, db.name])
    with db.connect() as conn:  # pg_cron lives elsewhere: it keeps running the job until a sync
        conn.execute("SELECT autopilot.set_job_enabled('table-statistics', false)")

    check = run_subprocess("check", "--json", env=env)
    assert check.returncode == 1, check.stdout
    found = {(p["check_name"], p["subject"]) for p in json.loads(check.stdout)["problems"]}
    assert found == {("cron_out_of_sync", stray), ("cron_out_of_sync", "table-statistics")}, found
    status = run_subprocess("status", "--json", env=env)
    assert status.returncode == 1, status.stdout
    assert {(p["check_name"], p["subject"]) for p in json.loads(status.stdout)["problems"]} == found

    assert run_subprocess("sync", env=env).returncode == 0
    assert run_subprocess("check", env=env).returncode == 0
    assert run_subprocess("status", env=env).returncode == 0
    (active,) = cron_conn.execute(
        "SELECT active FROM cron.job WHERE jobname = %s AND database = %s",
        [f"autopilot:{db.name}:table-statistics", db.name],
    ).fetchone()
    assert active is False
    assert cron_conn.execute("SELECT count(*) FROM cron.job WHERE jobname = %s", [stray]).fetchone()[0] == 0
