"""No role becomes superuser through autopilot: nothing autopilot runs with more privilege than the
caller resolves a name through a schema another role can write.

The attack (tests/py/shadows.py): the database's owner plants, in ``public``, a shadow of every
built-in function, aggregate, operator and type name, and makes ``public`` come first in the
database's search_path. Then every path that runs as a superuser here — install and upgrade (both
modes), every catalog job through pg_cron and through ``run_job`` / ``autopilot run``, the runner
draining jobs, a backup with pruning, a restore, status — must run without any shadow running.
A shadow that runs counts itself in a sequence no rollback undoes, tries ``ALTER ROLE <owner>
SUPERUSER`` and raises.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import shadows
from helpers import dict_rows, wait_for
from psycopg import sql

from pg_autopilot import installer
from pg_autopilot.db import connect
from pg_autopilot.sqlfiles import bundle

SHADOW_SQLSTATE = "P0099"


class Attacked:
    """A database owned by an unprivileged role that planted shadows everywhere."""

    def __init__(self, database, attacker: str, planted: int):
        self.database = database
        self.dsn = database.dsn
        self.name = database.name
        self.attacker = attacker
        self.planted = planted

    def safe(self) -> psycopg.Connection:
        """The test's own connection, pinned, so that its checks run no shadow."""
        return psycopg.connect(self.dsn, autocommit=True, options="-c search_path=pg_catalog,pg_temp")

    def exposed(self) -> psycopg.Connection:
        """A superuser session as pg_cron or a DBA's psql opens it: the database's search_path."""
        return psycopg.connect(self.dsn, autocommit=True)

    def assert_no_shadow_ran(self) -> None:
        with self.safe() as conn:
            count, log = shadows.hits(conn)
            superuser = conn.execute(
                "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = %s", [self.attacker]
            ).fetchone()[0]
        assert (count, log) == (0, []), f"shadows ran: {count} times; logged: {log}"
        assert not superuser, f"{self.attacker} became superuser"


@pytest.fixture
def attacked(new_database, admin_dsn: str) -> Iterator[Attacked]:
    attacker = f"ap_attacker_{uuid.uuid4().hex[:8]}"
    database = new_database("atk")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(attacker)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database.name), sql.Identifier(attacker)
            )
        )
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        planted = shadows.plant(conn, database.name, attacker)
    assert planted > 10_000, f"only {planted} shadows could be planted"
    yield Attacked(database, attacker, planted)
    with psycopg.connect(database.dsn, autocommit=True, options="-c search_path=pg_catalog") as conn:
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(sql.Identifier(attacker)))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(attacker)))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(attacker)))


def test_the_planted_shadows_do_run_in_an_exposed_session(attacked: Attacked):
    """The attack is real: a superuser session with the database's search_path runs them."""
    with attacked.exposed() as conn:
        for query in ("SELECT format('%s', 1)", "SELECT 1 + 1", "SELECT 'x'::text", "SELECT now()"):
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(query)
            assert caught.value.diag.sqlstate == SHADOW_SQLSTATE, query
    with attacked.safe() as conn:
        count, _ = shadows.hits(conn)
        assert count >= 4
        conn.execute("SELECT pg_catalog.setval('public._shadow_hits', 1, false)")
    attacked.assert_no_shadow_ran()  # and none of them made the attacker superuser


def _earliest() -> str:
    return sorted(bundle().versions, key=lambda v: tuple(int(p) for p in v.split(".")))[0]


@pytest.mark.parametrize("mode", ["extension", "schema"])
def test_install_upgrade_run_job_and_status_run_no_shadow(attacked: Attacked, autopilot, mode: str):
    # install the first release, upgrade through every script, then the CLI's own install (a no-op)
    with connect(attacked.dsn) as conn:
        installer.install(conn, mode=mode, version=_earliest())
    for args in (["upgrade"], ["install", "--mode", mode], ["sync"]):
        result = autopilot(*args, "--dsn", attacked.dsn)
        assert result.exit_code == 0, result.output
    attacked.assert_no_shadow_ran()

    # every catalog job that can run in a function, from an exposed superuser session
    with attacked.safe() as conn:
        jobs = dict_rows(
            conn, "SELECT name, kind, unavailable_reason FROM autopilot.job_definitions ORDER BY name"
        )
    ran = []
    with attacked.exposed() as conn:
        for job in jobs:
            if job["kind"] == "statement" or job["unavailable_reason"]:
                continue
            row = conn.execute("SELECT (autopilot.run_job(%s)).*", [job["name"]]).fetchone()
            assert row is not None
            ran.append(job["name"])
        # the queue's functions, as the runner calls them
        job_id = conn.execute("SELECT autopilot.enqueue('cache_cleanup', '{}', 'attack-test')").fetchone()[0]
        claimed = conn.execute(
            "SELECT id, attempt FROM autopilot.claim('attack-test', 'attack-test', 5)"
        ).fetchall()
        assert [c[0] for c in claimed] == [job_id]
        conn.execute("SELECT autopilot.heartbeat(ARRAY[%s]::bigint[], ARRAY[%s]::integer[], 'attack-test')",
                     [job_id, claimed[0][1]])  # fmt: skip
        conn.execute("SELECT autopilot.complete(%s, %s)", [job_id, claimed[0][1]])
        conn.execute("SELECT autopilot.rescue_orphaned_jobs()")
    assert len(ran) >= 15, ran
    with attacked.safe() as conn:
        messages = [r[0] or "" for r in conn.execute("SELECT message FROM autopilot.job_runs")]
    assert not [m for m in messages if "shadow" in m], messages

    # statement jobs, at top level, through the CLI; then status and settings
    for args in (
        ["run", "vacuum-analyze"],
        ["run", "table-statistics"],
        ["run", "old-job-cleanup"],
        ["status"],
        ["status", "--json"],
        ["settings"],
        ["settings", "jobs.rescue_after", "5 minutes"],
        ["schedule", "metrics-refresh", "*/15 * * * *"],
    ):
        result = autopilot(*args, "--dsn", attacked.dsn)
        assert result.exit_code == 0, (args, result.output)
        assert "shadow" not in result.output, (args, result.output)
    attacked.assert_no_shadow_ran()


def test_backup_prune_restore_and_the_runner_run_no_shadow(
    attacked: Attacked, autopilot, tmp_path, admin_dsn
):
    result = autopilot("install", "--dsn", attacked.dsn)
    assert result.exit_code == 0, result.output
    directory = tmp_path / "backups"
    for name, value in (("backups.directory", str(directory)), ("backups.manual_keep", "1")):
        assert autopilot("settings", name, value, "--dsn", attacked.dsn).exit_code == 0

    # two backups: the second prunes the first
    for _ in range(2):
        result = autopilot("runner", "backup", "--dsn", attacked.dsn)
        assert result.exit_code == 0, result.output
    with attacked.safe() as conn:
        statuses = [r[0] for r in conn.execute("SELECT status FROM autopilot.backup_metadata ORDER BY id")]
    assert statuses == ["pruned", "verified"], statuses

    copy = f"{attacked.name}_copy"
    try:
        result = autopilot("runner", "restore", "--into", copy, "--dsn", attacked.dsn)
        assert result.exit_code == 0, result.output
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(copy)))

    # the runner drains jobs through its pool, heartbeats, listens, records completions
    with attacked.safe() as conn:
        ids = [
            conn.execute("SELECT autopilot.enqueue('cache_cleanup')").fetchone()[0],
            conn.execute(
                "SELECT autopilot.enqueue('backup', '{\"kind\": \"hourly\"}', 'backups')"
            ).fetchone()[0],
        ]
    runner = subprocess.Popen(
        [sys.executable, "-m", "pg_autopilot.cli", "runner", "start", "--dsn", attacked.dsn,
         "--queues", "default,backups", "--poll-interval", "0.2", "--no-startup-jobs"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def finished():
            with attacked.safe() as conn:
                states = conn.execute("SELECT state FROM autopilot.jobs WHERE id = ANY(%s)", [ids]).fetchall()
            return all(s[0] in ("completed", "discarded") for s in states) and states

        wait_for(finished, "the runner to finish both jobs", timeout=60)
    finally:
        runner.send_signal(signal.SIGTERM)
        _, stderr = runner.communicate(timeout=30)
    with attacked.safe() as conn:
        states = [r[0] for r in conn.execute("SELECT state FROM autopilot.jobs WHERE id = ANY(%s)", [ids])]
    assert states == ["completed", "completed"], stderr
    assert "shadow" not in stderr

    result = autopilot("status", "--dsn", attacked.dsn)
    assert result.exit_code == 0, result.output
    attacked.assert_no_shadow_ran()


@pytest.mark.slow
def test_every_catalog_job_fired_by_pg_cron_runs_no_shadow(attacked: Attacked, autopilot, cron_conn):
    result = autopilot("install", "--dsn", attacked.dsn)
    assert result.exit_code == 0, result.output
    with attacked.safe() as conn:
        conn.execute(
            "SELECT autopilot.set_job_schedule(name, '* * * * *') FROM autopilot.job_definitions "
            "WHERE unavailable_reason IS NULL AND name <> 'index-reindex-step'"
        )
    result = autopilot("sync", "--dsn", attacked.dsn)
    assert result.exit_code == 0, result.output
    jobs = {
        r["jobname"]: r
        for r in dict_rows(
            cron_conn,
            "SELECT jobid, jobname, username FROM cron.job WHERE database = %s AND active",
            [attacked.name],
        )
    }
    assert len(jobs) >= 18, sorted(jobs)
    assert {j["username"] for j in jobs.values()} == {"postgres"}  # a superuser runs them
    started = time.time()

    def all_ran():
        rows = dict_rows(
            cron_conn,
            "SELECT DISTINCT ON (jobid) jobid, status, return_message FROM cron.job_run_details "
            "WHERE jobid = ANY(%s) AND status IN ('succeeded', 'failed') ORDER BY jobid, runid",
            [[j["jobid"] for j in jobs.values()]],
        )
        return rows if len(rows) == len(jobs) else None

    runs = wait_for(all_ran, "pg_cron to run every job once", timeout=150)
    with attacked.safe() as conn:
        conn.execute("SELECT autopilot.set_job_enabled(name, false) FROM autopilot.job_definitions")
    autopilot("sync", "--dsn", attacked.dsn)

    names = {j["jobid"]: name for name, j in jobs.items()}
    shadowed = [
        (names[r["jobid"]], r["return_message"]) for r in runs if "shadow" in (r["return_message"] or "")
    ]
    assert not shadowed, shadowed
    with attacked.safe() as conn:
        ledger = dict_rows(
            conn,
            "SELECT job_name, status, message FROM autopilot.job_runs WHERE trigger = 'pg_cron' "
            "AND started_at >= to_timestamp(%s)",
            [started - 60],
        )
    assert {r["job_name"] for r in ledger} >= {"pattern-learning", "task-assignment", "old-job-cleanup"}
    assert not [r for r in ledger if "shadow" in (r["message"] or "")], ledger
    attacked.assert_no_shadow_ran()


def test_pg_temp_objects_of_a_caller_are_not_used(attacked: Attacked, admin_dsn: str):
    """A role that calls autopilot's functions from a session of its own, with temporary tables and
    types named like autopilot's and pg_catalog's first in its path, changes nothing they do."""
    role = attacked.attacker
    with connect(attacked.dsn, autocommit=True) as conn:
        installer.install(conn, mode="extension")
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA autopilot TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL(
                "GRANT EXECUTE ON FUNCTION "
                "autopilot.enqueue(text, jsonb, text, integer, timestamptz, integer, text, jsonb, bigint[]), "
                "autopilot.get_setting(text), autopilot.is_valid_cron(text), "
                "autopilot.cron_expression_error(text), autopilot._cron_expression_error(text, text), "
                "autopilot._pg_cron_version() TO {}"
            ).format(sql.Identifier(role))
        )
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE ON autopilot.jobs TO {role}; "
                "GRANT SELECT ON autopilot.settings, autopilot.setting_values TO {role}; "
                "GRANT INSERT ON autopilot.performance_metrics_pending TO {role}"
            ).format(role=sql.Identifier(role))
        )
        query = (
            "SELECT relname FROM pg_class WHERE relnamespace = 'autopilot'::regnamespace AND relkind = 'r'"
        )
        tables = [r[0] for r in conn.execute(query)]
    with psycopg.connect(attacked.dsn, user=role, autocommit=True) as conn:
        conn.execute("SET search_path = pg_temp, public, pg_catalog")
        for table in [*tables, "pg_class", "pg_settings", "pg_namespace"]:
            conn.execute(sql.SQL("CREATE TEMPORARY TABLE {} (id bigint)").format(sql.Identifier(table)))
        assert conn.execute("SELECT autopilot.get_setting('jobs.rescue_after')").fetchone()[0] == "2 minutes"
        assert conn.execute("SELECT autopilot.is_valid_cron('*/5 * * * *')").fetchone()[0] is True
        job = conn.execute("SELECT autopilot.enqueue('cache_cleanup')").fetchone()[0]
        assert job is not None
        temp_rows = sum(
            conn.execute(
                sql.SQL("SELECT pg_catalog.count(*) FROM pg_temp.{}").format(sql.Identifier(t))
            ).fetchone()[0]
            for t in tables
        )
        assert temp_rows == 0
    with attacked.safe() as conn:
        assert conn.execute("SELECT count(*) FROM autopilot.jobs WHERE id = %s", [job]).fetchone()[0] == 1
    attacked.assert_no_shadow_ran()
