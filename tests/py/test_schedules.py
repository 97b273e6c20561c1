"""pg_cron in step with the catalog, across databases, and on a server without pg_cron."""

from __future__ import annotations

import json
from contextlib import contextmanager

import psycopg
import pytest
from helpers import all_cron_jobs, cron_jobs, dict_rows, flat

from pg_autopilot import installer, schedules


def expected_cron_rows(db) -> dict[str, dict]:
    """What cron.job must hold for this database: a row for every catalog job with a schedule."""
    with db.connect() as conn:
        rows = dict_rows(
            conn,
            "SELECT c.name, c.kind, c.target, to_jsonb(d) AS d "
            "FROM autopilot.job_catalog AS c JOIN autopilot.job_definitions AS d USING (name) "
            "WHERE d.schedule IS NOT NULL",
        )
    expected = {}
    for r in rows:
        d = r["d"]
        command = (
            r["target"] if r["kind"] == "statement" else f"CALL autopilot.run_scheduled_job('{r['name']}')"
        )
        if d.get("armed_at") is None:  # a job that armed itself runs what it armed
            assert d["cron_command"] == command, r["name"]
        # active: enabled and runnable here (and, for a job run only when armed, armed)
        active = d.get("active", d["enabled"] and d["unavailable_reason"] is None)
        if d["unavailable_reason"] is not None or not d["enabled"]:
            assert active is False, r["name"]
        expected[f"autopilot:{db.name}:{r['name']}"] = {
            "jobname": f"autopilot:{db.name}:{r['name']}",
            "schedule": d["schedule"],
            "command": d["cron_command"],
            "database": db.name,
            "username": "postgres",
            "active": active,
        }
    return expected


def without_ids(rows: dict[str, dict]) -> dict[str, dict]:
    return {k: {c: v for c, v in row.items() if c != "jobid"} for k, row in rows.items()}


@contextmanager
def users_own_cron_job(cron_conn: psycopg.Connection, name: str = "nightly-report"):
    """A pg_cron job of the DBA's own, in the cron database; removed afterwards whatever happens."""
    jobid = cron_conn.execute("SELECT cron.schedule(%s, '0 2 * * *', 'SELECT 1')", [name]).fetchone()[0]
    try:
        yield jobid
    finally:
        cron_conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s", [name])


def user_job(cron_conn: psycopg.Connection, jobid: int) -> dict | None:
    rows = dict_rows(
        cron_conn,
        "SELECT jobid, jobname, schedule, command, database, username, active, nodename, nodeport "
        "FROM cron.job WHERE jobid = %s",
        [jobid],
    )
    return rows[0] if rows else None


# -- sync across databases --------------------------------------------------------------------------


def test_sync_registers_exactly_the_catalog(installed_db, autopilot, cron_conn):
    db = installed_db
    others_before = [j for j in all_cron_jobs(cron_conn) if j["database"] != db.name]

    result = autopilot("sync", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    expected = expected_cron_rows(db)
    assert (
        f'pg_cron synced (registered from database "{cron_conn.info.dbname}"): {len(expected)} scheduled'
        in flat(result.stdout)
    )

    actual = cron_jobs(cron_conn, db.name)
    assert without_ids(actual) == expected
    # the statement job runs its statement at top level; the others CALL the procedure
    assert actual[f"autopilot:{db.name}:vacuum-analyze"]["command"].startswith("VACUUM (ANALYZE) autopilot.")
    # jobs whose function is not in this version are registered, inactive
    with db.connect() as conn:
        unavailable = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM autopilot.job_definitions "
                "WHERE unavailable_reason IS NOT NULL AND schedule IS NOT NULL"
            )
        ]
    assert unavailable, "0.1.0 has catalog jobs whose functions come later"
    for name in unavailable:
        assert actual[f"autopilot:{db.name}:{name}"]["active"] is False, name
    # cron-history-cleanup runs here too (its run enqueues the runner's worker, which prunes pg_cron's
    # history in pg_cron's database); index-reindex-step needs pg_cron in this database: never armed here
    assert actual[f"autopilot:{db.name}:cron-history-cleanup"]["active"] is True
    assert actual[f"autopilot:{db.name}:index-reindex-step"]["active"] is False
    # startup-only runner jobs are not pg_cron's business
    assert f"autopilot:{db.name}:rag-setup" not in actual
    # and no other database's jobs were touched
    assert [j for j in all_cron_jobs(cron_conn) if j["database"] != db.name] == others_before

    # a second sync changes nothing
    again = autopilot("sync", "--dsn", db.dsn)
    assert again.exit_code == 0, again.output
    assert "pg_cron already matches the catalog" in again.stdout
    assert cron_jobs(cron_conn, db.name) == actual
    with db.connect() as conn:
        assert schedules.sync(conn, db.dsn).changes == []
    assert cron_jobs(cron_conn, db.name) == actual


def test_sync_repairs_drift(synced_db, cron_conn):
    """A job changed or removed by hand in cron.job is put back; a stray autopilot:* job is removed."""
    db = synced_db
    expected = expected_cron_rows(db)
    jobs = cron_jobs(cron_conn, db.name)
    name = f"autopilot:{db.name}:"
    vector_stats = jobs[f"{name}vector-stats"]["jobid"]
    cron_conn.execute("SELECT cron.alter_job(%s, schedule => '1 1 1 1 1')", [vector_stats])
    cron_conn.execute("SELECT cron.unschedule(%s::bigint)", [jobs[f"{name}backup-daily"]["jobid"]])
    cron_conn.execute(
        "SELECT cron.schedule_in_database('autopilot:retired-job', '0 0 * * *', 'SELECT 1', %s)", [db.name]
    )
    with db.connect() as conn:
        changes = schedules.sync(conn, db.dsn).changes
    assert sorted((c["action"], c["jobname"]) for c in changes) == [
        ("alter", f"autopilot:{db.name}:vector-stats"),
        ("schedule", f"autopilot:{db.name}:backup-daily"),
        ("unschedule", "autopilot:retired-job"),
    ]
    assert without_ids(cron_jobs(cron_conn, db.name)) == expected


def test_users_own_pg_cron_job_is_never_touched(synced_db, autopilot, cron_conn):
    db = synced_db
    with users_own_cron_job(cron_conn) as jobid:
        original = user_job(cron_conn, jobid)
        steps = [
            ("sync",),
            ("schedule", "table-statistics", "*/7 * * * *"),
            ("schedule", "table-statistics", "--disable"),
            ("schedule", "table-statistics", "--reset"),
            ("uninstall",),
            ("install",),
            ("uninstall", "--drop-data", "--yes"),
        ]
        for step in steps:
            result = autopilot(*step, "--dsn", db.dsn)
            assert result.exit_code == 0, (step, result.output)
            assert user_job(cron_conn, jobid) == original, step
        assert cron_jobs(cron_conn, db.name) == {}


def test_override_survives_resync_and_reinstall(synced_db, autopilot, cron_conn):
    db = synced_db
    assert autopilot("schedule", "table-statistics", "*/7 * * * *", "--dsn", db.dsn).exit_code == 0
    assert autopilot("schedule", "vector-stats", "--disable", "--dsn", db.dsn).exit_code == 0

    def check():
        jobs = cron_jobs(cron_conn, db.name)
        assert (
            jobs[f"autopilot:{db.name}:table-statistics"]["schedule"],
            jobs[f"autopilot:{db.name}:table-statistics"]["active"],
        ) == (
            "*/7 * * * *",
            True,
        )
        stats = jobs[f"autopilot:{db.name}:vector-stats"]
        assert (stats["schedule"], stats["active"]) == (
            "0 4 * * 0",
            False,
        )
        assert without_ids(jobs) == expected_cron_rows(db)

    check()
    assert autopilot("sync", "--dsn", db.dsn).exit_code == 0
    check()

    assert autopilot("uninstall", "--dsn", db.dsn).exit_code == 0
    assert cron_jobs(cron_conn, db.name) == {}
    with db.connect() as conn:
        overrides = dict_rows(
            conn, "SELECT job_name, schedule, enabled FROM autopilot.job_overrides ORDER BY 1"
        )
    assert overrides == [
        {"job_name": "table-statistics", "schedule": "*/7 * * * *", "enabled": None},
        {"job_name": "vector-stats", "schedule": None, "enabled": False},
    ]

    result = autopilot("install", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "already installed" in result.stdout
    check()


# -- pg_cron in the application's own database ------------------------------------------------------


def test_install_into_the_cron_database(cron_db, autopilot, cron_conn):
    with users_own_cron_job(cron_conn, "autopilot-report") as jobid:  # a lookalike name, not autopilot:*
        original = user_job(cron_conn, jobid)
        result = autopilot("install", "--dsn", cron_db.dsn)
        assert result.exit_code == 0, result.output
        expected = expected_cron_rows(cron_db)
        # registered by autopilot.sync_schedules() in the database itself, not "from database ..."
        assert f"pg_cron synced: {len(expected)} scheduled" in result.stdout
        assert "registered from database" not in result.stdout
        assert without_ids(cron_jobs(cron_conn, cron_db.name)) == expected
        # here cron-history-cleanup can run: pg_cron's tables are local
        name = f"autopilot:{cron_db.name}:"
        assert cron_jobs(cron_conn, cron_db.name)[f"{name}cron-history-cleanup"]["active"] is True

        with cron_db.connect() as conn:
            # an override applied in SQL reaches pg_cron at once (no CLI sync involved)
            conn.execute("SELECT autopilot.set_job_schedule('table-statistics', '*/9 * * * *')")
            assert cron_jobs(cron_conn, cron_db.name)[f"{name}table-statistics"]["schedule"] == "*/9 * * * *"
            conn.execute("SELECT autopilot.set_job_enabled('table-statistics', false)")
            assert cron_jobs(cron_conn, cron_db.name)[f"{name}table-statistics"]["active"] is False
            conn.execute("SELECT autopilot.reset_job('table-statistics')")
            assert conn.execute("SELECT count(*) FROM autopilot.sync_schedules()").fetchone()[0] == 0
        assert without_ids(cron_jobs(cron_conn, cron_db.name)) == expected

        status = autopilot("status", "--json", "--dsn", cron_db.dsn)
        assert status.exit_code == 0, status.output
        report = json.loads(status.stdout)
        assert report["pg_cron"] == {
            "database": cron_db.name,
            "local": True,
            "scheduled": True,
            "message": None,
            "out_of_sync": [],
            "sync_hint": None,
        }

        result = autopilot("uninstall", "--dsn", cron_db.dsn)
        assert result.exit_code == 0, result.output
        assert f"removed {len(expected)} pg_cron jobs" in result.stdout
        assert cron_jobs(cron_conn, cron_db.name) == {}
        assert user_job(cron_conn, jobid) == original


def test_alter_extension_update_resyncs_a_local_pg_cron(cron_db, autopilot, cron_conn):
    """pg_cron in the application database: ALTER EXTENSION autopilot UPDATE, in SQL, leaves pg_cron in
    step by itself: the 0.3.0 names renamed in place (same jobids), the rest scheduled, overrides kept."""
    with cron_db.connect() as conn:
        installer.install(conn, mode="extension", version="0.3.0")
        schedules.sync(conn, cron_db.dsn)
        conn.execute("SELECT autopilot.set_job_schedule('table-statistics', '*/9 * * * *')")
    before = cron_jobs(cron_conn, cron_db.name)
    assert before["autopilot:table-statistics"]["schedule"] == "*/9 * * * *"

    with cron_db.connect() as conn:
        conn.execute("ALTER EXTENSION autopilot UPDATE")
    after = cron_jobs(cron_conn, cron_db.name)
    assert without_ids(after) == expected_cron_rows(cron_db)
    name = f"autopilot:{cron_db.name}:"
    renamed = {old: name + old.removeprefix("autopilot:") for old in before}
    kept = {old: after[new]["jobid"] for old, new in renamed.items() if new in after}
    assert len(kept) > 20
    assert kept == {old: before[old]["jobid"] for old in kept}
    assert after[f"{name}table-statistics"]["schedule"] == "*/9 * * * *"

    status = autopilot("status", "--json", "--dsn", cron_db.dsn)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["pg_cron"]["out_of_sync"] == []


# -- one role, many databases -----------------------------------------------------------------------


def test_one_role_runs_autopilot_in_two_databases(synced_db, new_database, autopilot, cron_conn):
    """pg_cron job names carry the database, so a second database of the same role gets jobs of its own;
    its install, upgrade and sync never touch the first database's jobs."""
    first = synced_db
    held = cron_jobs(cron_conn, first.name)
    assert all(name.startswith(f"autopilot:{first.name}:") for name in held)
    second = new_database("second")

    for command in ("install", "upgrade", "sync"):
        result = autopilot(command, "--dsn", second.dsn)
        assert result.exit_code == 0, (command, result.output)
        assert cron_jobs(cron_conn, first.name) == held, command
    assert without_ids(cron_jobs(cron_conn, second.name)) == expected_cron_rows(second)
    assert {j["username"] for j in cron_jobs(cron_conn, second.name).values()} == {"postgres"}

    # an override in the second database reaches its own job only
    assert autopilot("schedule", "table-statistics", "*/9 * * * *", "--dsn", second.dsn).exit_code == 0
    assert cron_jobs(cron_conn, second.name)[f"autopilot:{second.name}:table-statistics"]["schedule"] == (
        "*/9 * * * *"
    )
    assert cron_jobs(cron_conn, first.name) == held
    for db in (first, second):
        status = autopilot("status", "--json", "--dsn", db.dsn)
        assert status.exit_code == 0, status.output
        assert json.loads(status.stdout)["pg_cron"]["out_of_sync"] == []

    # uninstalling the second removes its jobs, and only those
    assert autopilot("uninstall", "--dsn", second.dsn).exit_code == 0
    assert cron_jobs(cron_conn, second.name) == {}
    assert cron_jobs(cron_conn, first.name) == held


def test_cron_database_and_another_database_side_by_side(synced_db, cron_db, autopilot, cron_conn):
    """The local path (autopilot.sync_schedules() in the cron database) leaves the other database's jobs."""
    held = cron_jobs(cron_conn, synced_db.name)
    result = autopilot("install", "--dsn", cron_db.dsn)
    assert result.exit_code == 0, result.output
    assert without_ids(cron_jobs(cron_conn, cron_db.name)) == expected_cron_rows(cron_db)
    assert cron_jobs(cron_conn, synced_db.name) == held


def test_jobs_named_before_0_4_0_are_renamed_in_place(synced_db, autopilot, cron_conn):
    """The 0.3.0 names (autopilot:<job>) are renamed to autopilot:<database>:<job> by the next sync: same
    jobid (so pg_cron's history stays with the job), the override kept; until then status says so."""
    db = synced_db
    assert autopilot("schedule", "vector-stats", "*/7 * * * *", "--dsn", db.dsn).exit_code == 0
    before = cron_jobs(cron_conn, db.name)
    prefix = f"autopilot:{db.name}:"
    cron_conn.execute(
        "UPDATE cron.job SET jobname = 'autopilot:' || substr(jobname, %s) WHERE database = %s "
        "AND starts_with(jobname, %s)",
        [len(prefix) + 1, db.name, prefix],
    )
    status = autopilot("status", "--dsn", db.dsn)
    # out of sync (autopilot.health says the same: warnings, the jobs still run under their old names)
    assert status.exit_code == 1, status.output
    assert "WARNING cron_out_of_sync vector-stats" in status.stdout
    assert "pg_cron is out of sync with the catalog" in flat(status.stdout)
    assert "run `autopilot sync` on this database" in flat(status.stdout)
    report = json.loads(autopilot("status", "--json", "--dsn", db.dsn).stdout)
    assert {c["action"] for c in report["pg_cron"]["out_of_sync"]} == {"rename"}
    # no job shows a next run while pg_cron does not have it under its name
    assert all(j["next_run_at"] is None for j in report["jobs"])

    result = autopilot("sync", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"{len(before)} renamed" in result.stdout
    assert cron_jobs(cron_conn, db.name) == before
    assert before[f"{prefix}vector-stats"]["schedule"] == "*/7 * * * *"
    assert autopilot("status", "--dsn", db.dsn).exit_code == 0


# -- a server without pg_cron -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["extension", "schema"])
def test_server_without_pg_cron(nocron_db, autopilot, mode):
    db = nocron_db
    plainly = "pg_cron is not loaded on this server (shared_preload_libraries): nothing is scheduled"

    result = autopilot("install", "--mode", mode, "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"({mode} mode)" in result.stdout
    assert plainly in flat(result.stdout)

    status = autopilot("status", "--dsn", db.dsn)
    assert status.exit_code == 0, status.output
    assert plainly in flat(status.stdout)

    report = json.loads(autopilot("status", "--json", "--dsn", db.dsn).stdout)
    assert report["pg_cron"] == {
        "database": None,
        "local": False,
        "scheduled": False,
        "message": plainly,
        "out_of_sync": [],
        "sync_hint": None,
    }
    for job in report["jobs"]:
        assert job["pg_cron"] in ("not scheduled", "startup only"), job
        assert job["next_run_at"] is None
        assert job["overdue"] is False

    # everything else still works: overrides are kept for when pg_cron arrives, jobs run by hand
    for step in (("sync",), ("schedule", "table-statistics", "*/7 * * * *"), ("run", "table-statistics")):
        result = autopilot(*step, "--dsn", db.dsn)
        assert result.exit_code == 0, (step, result.output)
    assert db.scalar("SELECT schedule FROM autopilot.job_overrides WHERE job_name = 'table-statistics'") == (
        "*/7 * * * *"
    )
    assert (
        db.scalar("SELECT status FROM autopilot.job_runs WHERE job_name = 'table-statistics'") == "succeeded"
    )
    with db.connect() as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        assert conn.execute("SELECT count(*) FROM autopilot.sync_schedules()").fetchone()[0] == 0
    assert notices == ["pg_cron is not loaded on this server: nothing is scheduled"]

    result = autopilot("uninstall", "--drop-data", "--yes", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert plainly in flat(result.stdout)
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 0
