"""The `autopilot` command against a real server: through click's CliRunner and as a real process."""

from __future__ import annotations

import json
import re

import pytest
from helpers import assert_status_exit, cron_jobs, dict_rows, flat, run_subprocess
from psycopg import sql
from snapshot import schema_snapshot, snapshot_diff

from pg_autopilot.sqlfiles import bundle

VERSION = bundle().default_version


def scheduled_count(db) -> int:
    return db.scalar("SELECT count(*) FROM autopilot.job_catalog WHERE schedule IS NOT NULL")


def last_run(db, job: str) -> dict:
    with db.connect() as conn:
        rows = dict_rows(conn, "SELECT * FROM autopilot.job_runs WHERE job_name = %s ORDER BY id DESC", [job])
    assert rows, f"no ledger run of {job}"
    return rows[0]


# -- install ----------------------------------------------------------------------------------------


def test_install_extension_mode(db, autopilot, cron_conn):
    result = autopilot("install", "--mode", "extension", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"installed autopilot {VERSION} (extension mode)" in result.stdout
    assert db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'autopilot'") == VERSION
    assert db.scalar("SELECT autopilot.version()") == VERSION
    # the schedules were registered from the cron database
    n = scheduled_count(db)
    assert "pg_cron synced (registered from database" in flat(result.stdout)
    assert f"{n} scheduled" in result.stdout
    assert len(cron_jobs(cron_conn, db.name)) == n


def test_install_schema_mode(db, autopilot, cron_conn):
    result = autopilot("install", "--mode", "schema", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"installed autopilot {VERSION} (schema mode)" in result.stdout
    assert db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'autopilot'") == 0
    assert db.scalar("SELECT autopilot.version()") == VERSION
    assert len(cron_jobs(cron_conn, db.name)) == scheduled_count(db)


def test_install_no_sync_registers_nothing(db, autopilot, cron_conn):
    result = autopilot("install", "--no-sync", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "installed autopilot" in result.stdout
    assert cron_jobs(cron_conn, db.name) == {}


@pytest.mark.parametrize("mode", ["extension", "schema"])
def test_install_twice_is_harmless(db, autopilot, cron_conn, mode):
    first = autopilot("install", "--mode", mode, "--dsn", db.dsn)
    assert first.exit_code == 0, first.output
    with db.connect() as conn:
        before = schema_snapshot(conn)
    cron_before = cron_jobs(cron_conn, db.name)

    second = autopilot("install", "--mode", mode, "--dsn", db.dsn)
    assert second.exit_code == 0, second.output
    assert f"autopilot {VERSION} is already installed" in second.stdout
    assert "pg_cron already matches the catalog" in second.stdout
    # auto mode on an installed database is just as harmless
    third = autopilot("install", "--dsn", db.dsn)
    assert third.exit_code == 0, third.output
    assert "already installed" in third.stdout

    with db.connect() as conn:
        assert snapshot_diff(before, schema_snapshot(conn), ("first", "again")) == []
    assert cron_jobs(cron_conn, db.name) == cron_before  # same jobids: nothing re-created
    assert db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'autopilot'") == (
        1 if mode == "extension" else 0
    )
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 1


def test_install_in_the_other_mode_is_refused(installed_db, autopilot):
    other = "schema" if installed_db.mode == "extension" else "extension"
    result = autopilot("install", "--mode", other, "--no-sync", "--dsn", installed_db.dsn)
    assert result.exit_code == 1
    assert f"already installed in {installed_db.mode} mode" in flat(result.stderr)


def test_real_process_install_status_run(db, cron_conn):
    """The console script as a separate process, with the DSN from AUTOPILOT_DSN."""
    env = {"AUTOPILOT_DSN": db.dsn}
    installed = run_subprocess("install", env=env)
    assert installed.returncode == 0, installed.stderr
    assert f"installed autopilot {VERSION}" in installed.stdout

    ran = run_subprocess("run", "table-statistics", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "table-statistics: succeeded" in ran.stdout

    status = run_subprocess("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["database"] == db.name
    jobs = {j["name"]: j for j in report["jobs"]}
    assert jobs["table-statistics"]["last_status"] == "succeeded"
    assert len(cron_jobs(cron_conn, db.name)) == scheduled_count(db)

    version = run_subprocess("--version")
    assert version.returncode == 0 and "autopilot" in version.stdout

    failed = run_subprocess("status", "--dsn", "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=3")
    assert failed.returncode == 1
    assert "cannot connect to the database" in failed.stderr
    assert failed.stdout == ""


# -- status -----------------------------------------------------------------------------------------


def test_status_json(synced_db, autopilot, cron_conn):
    db = synced_db
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.jobs (worker, state, completed_at) "
            "VALUES ('backup', 'completed', now()), ('backup', 'completed', now()), "
            "('backup', 'available', NULL)"
        )
        definitions = {r["name"]: r for r in dict_rows(conn, "SELECT * FROM autopilot.job_definitions")}
    assert autopilot("run", "table-statistics", "--dsn", db.dsn).exit_code == 0

    result = autopilot("status", "--json", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["database"] == db.name
    assert report["version"] == VERSION
    assert report["mode"] == "extension"
    assert report["pg_cron"]["scheduled"] is True
    assert report["pg_cron"]["local"] is False
    assert report["pg_cron"]["message"] is None
    assert report["queue"] == {
        "available": 1,
        "scheduled": 0,
        "waiting": 0,
        "executing": 0,
        "retryable": 0,
        "completed": 2,
        "discarded": 0,
        "cancelled": 0,
    }

    jobs = {j["name"]: j for j in report["jobs"]}
    assert set(jobs) == set(definitions), "every catalog job is reported, and nothing else"
    cron = cron_jobs(cron_conn, db.name)
    for name, job in jobs.items():
        definition = definitions[name]
        assert job["side"] == definition["side"], name
        assert job["kind"] == definition["kind"], name
        assert job["schedule"] == definition["schedule"], name
        # enabled unless shipped disabled (a runner job whose worker does not ship), with its reason
        assert job["enabled"] is (definition["disabled_reason"] is None), name
        assert job["disabled_reason"] == definition["disabled_reason"], name
        assert job["unavailable"] == definition["unavailable_reason"], name
        if definition["schedule"] is None:
            assert job["pg_cron"] == "startup only", name
            assert job["next_run_at"] is None
            continue
        row = cron[f"autopilot:{db.name}:{name}"]
        state = "active" if row["active"] else "inactive"
        assert job["pg_cron"] == f"#{row['jobid']} {state}", name
        assert row["active"] == definition["active"], name
        if row["active"]:
            assert job["next_run_at"] is not None, name
    assert jobs["table-statistics"]["last_status"] == "succeeded"
    assert jobs["table-statistics"]["last_run_at"] is not None
    assert jobs["table-statistics"]["overdue"] is False


def test_status_table(synced_db, autopilot):
    result = autopilot("status", "--dsn", synced_db.dsn)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f"autopilot {VERSION} (extension mode) in database {synced_db.name}" in text
    assert 'pg_cron runs in database "' in text
    for name in ("table-statistics", "vacuum-analyze", "backup-hourly", "rag-setup"):
        assert name in text
    assert "runner queue (autopilot.jobs)" in text


# -- run --------------------------------------------------------------------------------------------


def test_run_table_statistics(installed_db, autopilot):
    result = autopilot("run", "table-statistics", "--dsn", installed_db.dsn)
    assert result.exit_code == 0, result.output
    assert "table-statistics: succeeded" in result.stdout
    run = last_run(installed_db, "table-statistics")
    assert (run["status"], run["trigger"], run["side"]) == ("succeeded", "manual", "database")
    assert run["finished_at"] is not None
    assert f"[ledger run {run['id']}]" in result.stdout
    assert "analyzed database" in run["message"]


def test_run_vacuum_analyze(installed_db, autopilot):
    result = autopilot("run", "vacuum-analyze", "--dsn", installed_db.dsn)
    assert result.exit_code == 0, result.output
    assert "vacuum-analyze: succeeded" in result.stdout
    run = last_run(installed_db, "vacuum-analyze")
    assert run["status"] == "succeeded"
    assert run["trigger"] == "manual"
    assert run["message"] == "VACUUM at top level"
    # the VACUUM really ran (a VACUUM inside a function or transaction would have failed)
    assert installed_db.scalar(
        "SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL FROM pg_stat_user_tables "
        "WHERE schemaname = 'autopilot' AND relname = 'jobs'"
    )
    # the job's session lock was released: another run goes ahead
    again = autopilot("run", "vacuum-analyze", "--dsn", installed_db.dsn)
    assert again.exit_code == 0 and "succeeded" in again.stdout


def test_run_old_job_cleanup(installed_db, autopilot):
    db = installed_db
    with db.connect() as conn:
        conn.execute(
            """
            INSERT INTO autopilot.jobs (worker, state, completed_at, cancelled_at, discarded_at, meta)
            VALUES ('w', 'completed', now() - interval '8 days', NULL, NULL, '{"t": "old completed"}'),
                   ('w', 'completed', now() - interval '1 hour', NULL, NULL, '{"t": "fresh completed"}'),
                   ('w', 'cancelled', NULL, now() - interval '8 days', NULL, '{"t": "old cancelled"}'),
                   ('w', 'discarded', NULL, NULL, now() - interval '10 days', '{"t": "young discarded"}'),
                   ('w', 'discarded', NULL, NULL, now() - interval '40 days', '{"t": "old discarded"}'),
                   ('w', 'available', NULL, NULL, NULL, '{"t": "pending"}')
            """
        )
        conn.execute(
            """
            INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, message)
            VALUES ('table-statistics', 'database', 'manual', 'succeeded',
                    now() - interval '100 days', now() - interval '100 days', 'old run'),
                   ('table-statistics', 'database', 'manual', 'succeeded',
                    now() - interval '1 day', now() - interval '1 day', 'recent run')
            """
        )
    result = autopilot("run", "old-job-cleanup", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "old-job-cleanup: succeeded" in result.stdout
    with db.connect() as conn:
        left = {r[0] for r in conn.execute("SELECT meta ->> 't' FROM autopilot.jobs").fetchall()}
        runs = {r[0] for r in conn.execute("SELECT message FROM autopilot.job_runs").fetchall()}
    assert left == {"fresh completed", "young discarded", "pending"}
    assert "old run" not in runs
    assert "recent run" in runs
    run = last_run(db, "old-job-cleanup")
    assert run["status"] == "succeeded"
    assert run["rows_affected"] == 4  # three old jobs and one old ledger run


def test_run_backup_hourly_twice_dedupes(installed_db, autopilot):
    first = autopilot("run", "backup-hourly", "--dsn", installed_db.dsn)
    assert first.exit_code == 0, first.output
    assert "enqueued job" in first.stdout
    second = autopilot("run", "backup-hourly", "--dsn", installed_db.dsn)
    assert second.exit_code == 0, second.output
    assert "not enqueued again" in second.stdout
    with installed_db.connect() as conn:
        jobs = dict_rows(conn, "SELECT * FROM autopilot.jobs")
        runs = dict_rows(
            conn, "SELECT * FROM autopilot.job_runs WHERE job_name = 'backup-hourly' ORDER BY id"
        )
    assert len(jobs) == 1
    job = jobs[0]
    assert (job["worker"], job["queue"], job["state"]) == ("backup", "backups", "available")
    assert job["args"] == {"kind": "hourly"}
    assert job["unique_key"] == "catalog:backup-hourly"
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert [r["side"] for r in runs] == ["runner", "runner"]
    assert [r["rows_affected"] for r in runs] == [1, 0]


# -- schedule ---------------------------------------------------------------------------------------


def test_schedule_override_disable_enable_reset(synced_db, autopilot, cron_conn):
    db = synced_db
    name, cron_name = "table-statistics", f"autopilot:{db.name}:table-statistics"
    original = cron_jobs(cron_conn, db.name)[cron_name]
    assert (original["schedule"], original["active"]) == ("0 */6 * * *", True)

    def override():
        with db.connect() as conn:
            rows = dict_rows(
                conn, "SELECT schedule, enabled FROM autopilot.job_overrides WHERE job_name = %s", [name]
            )
        return rows[0] if rows else None

    def cron_row():
        row = cron_jobs(cron_conn, db.name)[cron_name]
        assert row["jobid"] == original["jobid"], "the pg_cron job is altered, never re-created"
        assert row["database"] == db.name
        return row["schedule"], row["active"]

    result = autopilot("schedule", name, "*/7 * * * *", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "table-statistics now runs on '*/7 * * * *' (UTC)" in result.stdout
    assert "1 altered" in result.stdout
    assert override() == {"schedule": "*/7 * * * *", "enabled": None}
    assert cron_row() == ("*/7 * * * *", True)

    result = autopilot("schedule", name, "--disable", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "table-statistics is disabled" in result.stdout
    assert override() == {"schedule": "*/7 * * * *", "enabled": False}
    assert cron_row() == ("*/7 * * * *", False)

    result = autopilot("schedule", name, "--enable", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "table-statistics is enabled" in result.stdout
    assert override() == {"schedule": "*/7 * * * *", "enabled": True}
    assert cron_row() == ("*/7 * * * *", True)

    result = autopilot("schedule", name, "--reset", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "back to its catalog schedule '0 */6 * * *', enabled" in result.stdout
    assert override() is None
    assert cron_row() == ("0 */6 * * *", True)

    # the other jobs were never touched
    others = {k: v for k, v in cron_jobs(cron_conn, db.name).items() if k != cron_name}
    assert len(others) == scheduled_count(db) - 1


def test_schedule_needs_cron_or_action(synced_db, autopilot):
    result = autopilot("schedule", "table-statistics", "--dsn", synced_db.dsn)
    assert result.exit_code == 2
    assert "give either a CRON expression or one of --disable, --enable, --reset" in flat(result.stderr)


# -- settings ---------------------------------------------------------------------------------------


def test_settings_set_show_reset(installed_db, autopilot):
    db = installed_db
    result = autopilot("settings", "jobs.completed_retention", "3 days", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "jobs.completed_retention = 3 days" in result.stdout
    assert "(default 7 days)" in result.stdout
    with db.connect() as conn:
        rows = dict_rows(conn, "SELECT name, value, updated_by FROM autopilot.setting_values")
    assert rows == [{"name": "jobs.completed_retention", "value": "3 days", "updated_by": "postgres"}]
    assert db.scalar("SELECT autopilot.get_setting('jobs.completed_retention')") == "3 days"

    listing = autopilot("settings", "--dsn", db.dsn)
    assert listing.exit_code == 0, listing.output
    names = {r[0] for r in _rows(db, "SELECT name FROM autopilot.settings")}
    for name in names:
        assert f"{name} = " in listing.stdout

    reset = autopilot("settings", "jobs.completed_retention", "--reset", "--dsn", db.dsn)
    assert reset.exit_code == 0, reset.output
    assert "jobs.completed_retention = 7 days" in reset.stdout
    assert db.scalar("SELECT count(*) FROM autopilot.setting_values") == 0


def _rows(db, query):
    with db.connect() as conn:
        return conn.execute(query).fetchall()


# -- uninstall --------------------------------------------------------------------------------------


def test_uninstall_removes_pg_cron_jobs_and_keeps_data(synced_db, autopilot, cron_conn):
    db = synced_db
    n = scheduled_count(db)
    assert autopilot("schedule", "vector-stats", "--disable", "--dsn", db.dsn).exit_code == 0
    assert autopilot("run", "backup-hourly", "--dsn", db.dsn).exit_code == 0

    result = autopilot("uninstall", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"removed {n} pg_cron jobs" in result.stdout
    assert "tables and data are kept" in flat(result.stdout)
    assert cron_jobs(cron_conn, db.name) == {}
    # the extension, its overrides, its ledger and its queue are all still there
    assert db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'autopilot'") == VERSION
    assert db.scalar("SELECT enabled FROM autopilot.job_overrides WHERE job_name = 'vector-stats'") is False
    assert db.scalar("SELECT count(*) FROM autopilot.jobs") == 1
    assert db.scalar("SELECT count(*) FROM autopilot.job_runs") == 1

    # nothing scheduled while autopilot is installed: autopilot.health says so, and status fails
    status = autopilot("status", "--json", "--dsn", db.dsn)
    assert status.exit_code == 2, status.output
    report = json.loads(status.stdout)
    jobs = {j["name"]: j for j in report["jobs"]}
    assert jobs["table-statistics"]["pg_cron"] == "missing (run autopilot sync)"
    assert jobs["table-statistics"]["next_run_at"] is None
    assert {c["action"] for c in report["pg_cron"]["out_of_sync"]} == {"schedule"}
    assert len(report["pg_cron"]["out_of_sync"]) == n
    assert "run `autopilot sync` on this database" in report["pg_cron"]["sync_hint"]
    assert ("critical", "cron_missing", "table-statistics") in {
        (p["severity"], p["check_name"], p["subject"]) for p in report["problems"]
    }


def test_uninstall_drop_data_wrong_confirmation_changes_nothing(synced_db, autopilot, cron_conn):
    db = synced_db
    cron_before = cron_jobs(cron_conn, db.name)
    with db.connect() as conn:
        before = schema_snapshot(conn)
    result = autopilot("uninstall", "--drop-data", "--dsn", db.dsn, input="not-the-name\n")
    assert result.exit_code == 1
    assert "Type the database name to confirm" in flat(result.output)
    assert "not confirmed: nothing changed" in result.stderr
    assert cron_jobs(cron_conn, db.name) == cron_before
    with db.connect() as conn:
        assert snapshot_diff(before, schema_snapshot(conn)) == []

    # an empty answer is no confirmation either
    result = autopilot("uninstall", "--drop-data", "--dsn", db.dsn, input="\n")
    assert result.exit_code == 1
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 1


def test_uninstall_drop_data_confirmed_by_name(synced_db, autopilot, cron_conn):
    db = synced_db
    result = autopilot("uninstall", "--drop-data", "--dsn", db.dsn, input=f"{db.name}\n")
    assert result.exit_code == 0, result.output
    assert f"dropped autopilot {VERSION} and its data" in result.stdout
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 0
    assert cron_jobs(cron_conn, db.name) == {}


@pytest.mark.parametrize("mode", ["extension", "schema"])
def test_uninstall_drop_data_yes(new_database, autopilot, cron_conn, mode):
    db = new_database(mode[:3])
    assert autopilot("install", "--mode", mode, "--dsn", db.dsn).exit_code == 0
    assert cron_jobs(cron_conn, db.name) != {}

    result = autopilot("uninstall", "--drop-data", "--yes", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert f"dropped autopilot {VERSION} and its data ({mode} mode)" in result.stdout
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 0
    assert db.scalar("SELECT count(*) FROM pg_extension WHERE extname = 'autopilot'") == 0
    assert cron_jobs(cron_conn, db.name) == {}

    # and it installs again from nothing
    again = autopilot("install", "--mode", mode, "--dsn", db.dsn)
    assert again.exit_code == 0, again.output
    assert "installed autopilot" in again.stdout


# -- upgrade ----------------------------------------------------------------------------------------


def test_upgrade_when_already_newest(installed_db, autopilot):
    with installed_db.connect() as conn:
        before = schema_snapshot(conn)
    result = autopilot("upgrade", "--dsn", installed_db.dsn)
    assert result.exit_code == 0, result.output
    assert f"autopilot {VERSION} is already installed" in result.stdout
    result = autopilot("upgrade", "--to", VERSION, "--dsn", installed_db.dsn)
    assert result.exit_code == 0, result.output
    assert "already installed" in result.stdout
    with installed_db.connect() as conn:
        assert snapshot_diff(before, schema_snapshot(conn)) == []


# -- terminal output: data from the database cannot drive the operator's terminal ------------------

# an OSC that sets the window title, a CSI that clears the screen, the one-byte C1 CSI, DEL, SOH,
# backspace, a carriage return, a line break and a tab (text cannot hold NUL)
HOSTILE = "\x1b]0;title\x07\x1b[2J\x9b31mred\x7f\x01\x08\r\nnext\tcol"
SHOWN = "]0;title[2J31mred next col"  # what is left of it: printable text, line breaks as spaces
CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # every control character but rich's own \n


def assert_terminal_safe(text: str) -> None:
    assert not CONTROLS.search(text), repr(CONTROLS.findall(text))


def test_status_strips_control_characters_from_data(installed_db, autopilot):
    db = installed_db
    with db.connect() as conn:
        # job_runs.message and backup_metadata.error are written by the runner role
        conn.execute(
            "INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, "
            "message) VALUES ('table-statistics', 'database', 'manual', 'failed', "
            "now() - interval '1 minute', now(), %s)",
            [HOSTILE],
        )
        conn.execute(
            "INSERT INTO autopilot.backup_metadata (kind, database_name, status, finished_at, error) "
            "VALUES ('manual', %s, 'failed', now(), %s)",
            [db.name, "pg_dump said " + HOSTILE],
        )
    assert autopilot("sync", "--dsn", db.dsn).exit_code == 0
    result = autopilot("status", "--dsn", db.dsn)
    assert_status_exit(result)
    assert_terminal_safe(result.stdout)
    text = flat(result.stdout)
    assert f"failed {SHOWN}" in text, text
    assert f"pg_dump said {SHOWN}" in text, text

    # --json: the exact message, every control character JSON-escaped
    as_json = autopilot("status", "--json", "--dsn", db.dsn)
    assert_status_exit(as_json)
    assert_terminal_safe(as_json.stdout)
    report = json.loads(as_json.stdout)
    assert {j["name"]: j for j in report["jobs"]}["table-statistics"]["last_message"] == HOSTILE
    assert report["backups"]["databases"][0]["last_failure"] == "pg_dump said " + HOSTILE


def test_settings_run_and_errors_strip_control_characters(installed_db, autopilot):
    db = installed_db
    with db.connect() as conn:
        conn.execute(
            "UPDATE autopilot.settings SET description = %s WHERE name = 'jobs.completed_retention'",
            [HOSTILE],
        )
    listing = autopilot("settings", "jobs.completed_retention", "--dsn", db.dsn)
    assert listing.exit_code == 0, listing.output
    assert_terminal_safe(listing.stdout)
    assert f"— {SHOWN}" in flat(listing.stdout)

    # a job's own message, as `run` prints it: centralcloud-sync names the foreign server it did not find
    with db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('centralcloud.server', %s)", [HOSTILE])
    result = autopilot("run", "centralcloud-sync", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert_terminal_safe(result.stdout)
    assert f'there is no foreign server "{SHOWN}"' in flat(result.stdout)

    # ... and as it reports a failure: postgres_fdw names the server it could not connect to
    with db.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        conn.execute(
            sql.SQL(
                "CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw "
                "OPTIONS (host '127.0.0.1', port '1', dbname 'nowhere', connect_timeout '2')"
            ).format(sql.Identifier(HOSTILE))
        )
        conn.execute(
            sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {}").format(sql.Identifier(HOSTILE))
        )
        conn.execute("SELECT autopilot.set_setting('centralcloud.instance_id', 'cli-test')")
    failed = autopilot("run", "centralcloud-sync", "--dsn", db.dsn)
    assert failed.exit_code == 1, failed.output
    assert_terminal_safe(failed.stderr)
    assert f'could not connect to server "{SHOWN}"' in flat(failed.stderr)

    # a server error whose message carries data: its detail keeps a line of its own, the data is made safe
    refused = autopilot("settings", "jobs.completed_retention", HOSTILE, "--dsn", db.dsn)
    assert refused.exit_code == 1
    assert_terminal_safe(refused.stderr)
    assert "error: invalid value for setting" in refused.stderr
    assert "\n  detail: " in refused.stderr
    assert SHOWN in flat(refused.stderr)
