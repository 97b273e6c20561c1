"""The privilege model: nothing for PUBLIC, and the README's grants give a runner role and a
read-only role what they need, and no more. The grants are read from README.md itself, so the
documentation cannot drift from what works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_grants() -> str:
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)
    grants = [b for b in blocks if "GRANT" in b and "autopilot_runner" in b]
    assert len(grants) == 1, "README.md has one sql block with the grants for autopilot_runner"
    return grants[0]


@pytest.fixture
def roles(installed_db, admin_dsn):
    """Login roles: runner, read-only and application (granted as the README says), and one with nothing."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "runner": f"ap_runner_{suffix}",
        "readonly": f"ap_readonly_{suffix}",
        "app": f"ap_app_{suffix}",
        "instance": f"ap_instance_{suffix}",
        "nobody": f"ap_nobody_{suffix}",
    }
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f"CREATE ROLE {name} LOGIN")
    grants = (
        readme_grants()
        .replace("autopilot_runner", names["runner"])
        .replace("autopilot_readonly", names["readonly"])
        .replace("autopilot_app", names["app"])
        .replace("autopilot_instance", names["instance"])
    )
    with installed_db.connect() as conn:
        conn.execute(grants)
    yield {k: make_conninfo(installed_db.dsn, user=v) for k, v in names.items()}
    with installed_db.connect() as conn:
        for name in names.values():
            conn.execute(f"DROP OWNED BY {name}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")


def denied(dsn: str, query: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(query)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def test_public_gets_nothing(roles):
    assert denied(roles["nobody"], "SELECT count(*) FROM autopilot.jobs")
    assert denied(roles["nobody"], "SELECT autopilot.version()")
    assert denied(roles["nobody"], "SELECT * FROM autopilot.run_job('table-statistics')")


def test_runner_role_can_work_the_queue_and_no_more(roles):
    runner = roles["runner"]
    with psycopg.connect(runner, autocommit=True) as conn:
        job_id = conn.execute(
            "INSERT INTO autopilot.jobs (worker, args) VALUES ('backup', '{}') RETURNING id"
        ).fetchone()[0]
        conn.execute("UPDATE autopilot.jobs SET state = 'executing', attempt = 1 WHERE id = %s", [job_id])
        conn.execute(
            "INSERT INTO autopilot.job_runs (job_name, side, trigger, status, finished_at) "
            "VALUES ('backup-hourly', 'runner', 'runner', 'succeeded', clock_timestamp())"
        )
        assert (
            conn.execute("SELECT autopilot.get_setting('jobs.completed_retention')").fetchone()[0] == "7 days"
        )
        assert conn.execute("SELECT count(*) FROM autopilot.job_definitions").fetchone()[0] > 20
        # the queue functions the runner calls, with the triggers behind them
        queue = "privileges-test"
        conn.execute("SELECT autopilot.enqueue('noop', p_queue => %s)", [queue])
        conn.execute(
            "SELECT autopilot.enqueue_many("
            "jsonb_build_array(jsonb_build_object('worker', 'noop', 'queue', %s::text)))",
            [queue],
        )
        claimed = conn.execute("SELECT id, attempt FROM autopilot.claim(%s, 'n1', 10)", [queue]).fetchall()
        assert len(claimed) == 2
        (first, first_attempt), (second, second_attempt) = claimed
        assert conn.execute(
            "SELECT autopilot.heartbeat(%s, %s, 'n1')", [[first, second], [first_attempt, second_attempt]]
        ).fetchall()
        assert (
            conn.execute("SELECT autopilot.complete_many(%s, %s)", [[first], [first_attempt]]).fetchone()[0]
            == 1
        )
        assert conn.execute("SELECT autopilot.fail(%s, %s, 'x')", [second, second_attempt]).fetchone()[0]
    assert denied(runner, "DELETE FROM autopilot.jobs")
    assert denied(runner, "SELECT autopilot.cancel(1)")
    assert denied(runner, "SELECT autopilot.rescue_orphaned_jobs()")
    assert denied(runner, "SELECT autopilot.set_setting('jobs.completed_retention', '1 day')")
    assert denied(runner, "SELECT * FROM autopilot.run_job('table-statistics')")
    assert denied(runner, "UPDATE autopilot.job_catalog SET schedule = '* * * * *'")


def test_instance_role_can_push_patterns_and_no_more(roles):
    """The role instances connect to the central database as (their postgres_fdw user mapping's)."""
    instance = roles["instance"]
    with psycopg.connect(instance, autocommit=True) as conn:
        assert conn.execute("SELECT protocol FROM autopilot.centralcloud_info").fetchone()[0] == 1
        # what postgres_fdw sends for a push: a plain multi-row INSERT of the pushed columns
        conn.execute(
            "INSERT INTO autopilot.central_pattern_inbox (instance_id, pattern_type, pattern_key, "
            "occurrences, successes, failures, mean_score, score_count, first_seen_at, last_seen_at, "
            "codebases) VALUES "
            "('i1', 'style', 'k', 2, 1, 0, NULL, 0, now(), now(), '{}'), "
            "('i1', 'style', 'k2', 1, 1, 0, 0.5, 1, now(), now(), '{api}')"
        )
    assert denied(instance, "SELECT count(*) FROM autopilot.central_pattern_inbox")
    assert denied(instance, "DELETE FROM autopilot.central_pattern_inbox")
    assert denied(instance, "SELECT count(*) FROM autopilot.global_patterns")
    assert denied(instance, "SELECT * FROM autopilot.merge_central_patterns()")
    assert denied(instance, "SELECT count(*) FROM autopilot.learned_patterns")


def test_application_role_can_write_tasks(roles, installed_db):
    with installed_db.connect() as conn:
        agent = conn.execute(
            "INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at) "
            "VALUES ('app-agent', '{python}', 2, now()) RETURNING id"
        ).fetchone()[0]
    with psycopg.connect(roles["app"], autocommit=True) as conn:
        task = conn.execute(
            "INSERT INTO autopilot.tasks (title, required_skills) VALUES ('t', '{python}') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "UPDATE autopilot.tasks SET status = 'assigned', agent_id = %s, assigned_at = now() "
            "WHERE id = %s",
            [agent, task],
        )
        conn.execute(
            "UPDATE autopilot.tasks SET status = 'succeeded', started_at = now(), finished_at = now() "
            "WHERE id = %s",
            [task],
        )
    assert denied(roles["app"], "DELETE FROM autopilot.agents")
    assert denied(roles["app"], "SELECT * FROM autopilot.assign_pending_tasks()")


def test_readonly_role_reads_everything_and_changes_nothing(roles, installed_db):
    readonly = roles["readonly"]
    with psycopg.connect(readonly, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM autopilot.job_status").fetchone()[0] > 20
        assert conn.execute("SELECT count(*) FROM autopilot.settings").fetchone()[0] > 5
    assert denied(readonly, "INSERT INTO autopilot.jobs (worker) VALUES ('backup')")
    assert denied(readonly, "SELECT autopilot.set_job_enabled('table-statistics', false)")

    status = status_json(readonly)
    assert {job["name"] for job in status["jobs"]} >= {"vacuum-analyze", "backup-hourly"}


@pytest.mark.pg_cron
def test_readonly_role_is_told_why_remote_pg_cron_is_not_shown(roles, installed_db, cron_database):
    # autopilot._health_cron_jobs() names pg_cron's database; pg_cron shows the role none of its jobs there
    status = status_json(roles["readonly"])
    assert status["pg_cron"]["database"] == cron_database
    assert "sees only the pg_cron jobs it scheduled" in status["pg_cron"]["message"]


def status_json(dsn: str) -> dict:
    """`autopilot status --json` as that role, in a process of its own."""
    result = subprocess.run(
        [sys.executable, "-m", "pg_autopilot.cli", "status", "--json"],
        env=dict(os.environ, AUTOPILOT_DSN=dsn),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)
