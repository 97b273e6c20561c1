"""Bad input: a clear message on stderr, a non-zero exit, no traceback, and nothing changed."""

from __future__ import annotations

import pytest
from helpers import cron_jobs, flat, run_subprocess
from snapshot import schema_snapshot, snapshot_diff

from pg_autopilot.sqlfiles import bundle

VERSION = bundle().default_version


def assert_refused(result, *needles: str, exit_code: int = 1) -> None:
    """Exit code, every needle in stderr, nothing but the message (no traceback: the fixture checks)."""
    assert result.exit_code == exit_code, result.output
    message = flat(result.stderr)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def state(db, cron_conn=None) -> dict:
    """Everything a refused command must leave alone: the schema, the user's rows, pg_cron's rows."""
    with db.connect() as conn:
        snapshot = schema_snapshot(conn)
        data = {
            table: conn.execute(
                f"SELECT coalesce(jsonb_agg(t ORDER BY t::text), '[]') FROM autopilot.{table} t"
            ).fetchone()[0]
            for table in ("job_overrides", "setting_values", "job_runs", "jobs")
        }
    for rows in data.values():
        for row in rows:
            row.pop("updated_at", None)
    return {"schema": snapshot, "data": data, "cron": cron_jobs(cron_conn, db.name) if cron_conn else None}


def assert_unchanged(before: dict, after: dict) -> None:
    assert snapshot_diff(before["schema"], after["schema"], ("before", "after")) == []
    assert before["data"] == after["data"]
    assert before["cron"] == after["cron"]


# -- cron expressions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "says"),
    [
        ("61 * * * *", 'minute field "61": 61 is out of range 0-59'),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day of month field"),
        ("* * * 13 *", "month field"),
        ("* * * * 8", "day of week field"),
        ("*/0 * * * *", "the step must be at least 1"),
        ("5-1 * * * *", "runs backwards"),
        ("* * * *", "expected 5 fields"),
        ("2 seconds", "seconds schedules need pg_cron 1.5 or later"),
        ("@reboot", "@reboot runs when pg_cron starts"),
        ("@DAILY", "not a pg_cron macro"),
        ("0 * * * * *", "found 6: pg_cron would ignore everything after the fifth"),
        ("[/x] * * * *", 'minute field "[/x]"'),  # not taken for console markup
    ],
)
def test_invalid_cron_expression(synced_db, autopilot, cron_conn, expression, says):
    db = synced_db
    # an existing override must survive a refused change
    assert autopilot("schedule", "table-statistics", "*/7 * * * *", "--dsn", db.dsn).exit_code == 0
    before = state(db, cron_conn)
    assert before["cron"][f"autopilot:{db.name}:table-statistics"]["schedule"] == "*/7 * * * *"

    result = autopilot("schedule", "table-statistics", expression, "--dsn", db.dsn)
    assert_refused(result, f'invalid cron expression "{expression}"', says, "hint: Five fields, in UTC")
    assert result.stdout == ""
    assert_unchanged(before, state(db, cron_conn))


def test_invalid_cron_expression_first_override(synced_db, autopilot, cron_conn):
    """No override yet: a refused schedule creates none, and pg_cron keeps the catalog's schedule."""
    db = synced_db
    before = state(db, cron_conn)
    result = autopilot("schedule", "table-statistics", "61 * * * *", "--dsn", db.dsn)
    assert_refused(result, "minute field")
    after = state(db, cron_conn)
    assert_unchanged(before, after)
    assert after["data"]["job_overrides"] == []
    assert after["cron"][f"autopilot:{db.name}:table-statistics"]["schedule"] == "0 */6 * * *"


# -- unknown names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("run", "no-such-job"),
        ("schedule", "no-such-job", "*/5 * * * *"),
        ("schedule", "no-such-job", "--disable"),
        ("schedule", "no-such-job", "--enable"),
        ("schedule", "no-such-job", "--reset"),
    ],
    ids=["run", "schedule", "disable", "enable", "reset"],
)
def test_unknown_job(synced_db, autopilot, cron_conn, args):
    before = state(synced_db, cron_conn)
    result = autopilot(*args, "--dsn", synced_db.dsn)
    assert_refused(result, 'unknown autopilot job "no-such-job"', "autopilot.job_catalog lists the jobs")
    assert_unchanged(before, state(synced_db, cron_conn))


def test_job_not_in_this_version(installed_db, autopilot):
    """A catalog job whose function arrives in a later version: refused, and no ledger run recorded."""
    with installed_db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.job_catalog (name, side, kind, schedule, target, description) VALUES"
            " ('future-job', 'database', 'function', '0 4 * * *', 'autopilot.future_job', 'arrives later')"
        )
    name, reason = installed_db.scalar(
        "SELECT array[name, unavailable_reason] FROM autopilot.job_definitions WHERE name = 'future-job'"
    )
    assert "is not part of autopilot" in reason
    before = state(installed_db)
    result = autopilot("run", name, "--dsn", installed_db.dsn)
    assert_refused(result, f"autopilot job {name} cannot run here", reason)
    assert_unchanged(before, state(installed_db))


# -- settings ---------------------------------------------------------------------------------------


def test_negative_retention(installed_db, autopilot):
    db = installed_db
    assert autopilot("settings", "jobs.completed_retention", "3 days", "--dsn", db.dsn).exit_code == 0
    before = state(db)
    # typed as a DBA types it: the value starts with a dash and is not taken for an option
    result = autopilot("settings", "jobs.completed_retention", "-1 day", "--dsn", db.dsn)
    assert_refused(
        result,
        'invalid value for setting "jobs.completed_retention": -1 day is below the minimum 0',
        "of type interval",
    )
    assert result.stdout == ""
    # with `--` as well
    result = autopilot("settings", "--dsn", db.dsn, "--", "jobs.completed_retention", "-1 day")
    assert_refused(result, "-1 day is below the minimum 0")
    assert_unchanged(before, state(db))
    assert db.scalar("SELECT autopilot.get_setting('jobs.completed_retention')") == "3 days"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("jobs.completed_retention", "banana", "'banana' is not a valid interval"),
        ("cleanup.batch_size", "0", "0 is below the minimum 1"),
        ("cleanup.batch_size", "-5", "-5 is below the minimum 1"),
        ("cleanup.batch_size", "12.5", "'12.5' is not a valid integer"),
        ("patterns.keep_confidence", "1.5", "1.5 is above the maximum 1"),
        ("job_runs.retention", "1 hour", "1 hour is below the minimum 1 day"),
        ("no.such_setting", "1", 'unknown autopilot setting "no.such_setting"'),
    ],
)
def test_invalid_setting(installed_db, autopilot, name, value, says):
    before = state(installed_db)
    result = autopilot("settings", name, value, "--dsn", installed_db.dsn)
    assert_refused(result, says)
    assert_unchanged(before, state(installed_db))


def test_unknown_setting_shown_or_reset(installed_db, autopilot):
    before = state(installed_db)
    assert_refused(
        autopilot("settings", "no.such_setting", "--dsn", installed_db.dsn), "unknown autopilot setting"
    )
    assert_refused(
        autopilot("settings", "no.such_setting", "--reset", "--dsn", installed_db.dsn),
        "unknown autopilot setting",
    )
    assert_unchanged(before, state(installed_db))


# -- connections ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("status", "--json"),
        ("install",),
        ("run", "table-statistics"),
        ("uninstall",),
        ("upgrade",),
    ],
    ids=lambda c: " ".join(c),
)
def test_dsn_that_does_not_connect(autopilot, command):
    result = autopilot(*command, "--dsn", "host=127.0.0.1 port=1 dbname=nowhere connect_timeout=3")
    assert_refused(result, "cannot connect to the database", "hint: Check --dsn, AUTOPILOT_DSN")
    assert result.stdout == ""


def test_dsn_that_does_not_connect_real_process():
    result = run_subprocess("install", env={"AUTOPILOT_DSN": "host=127.0.0.1 port=1 connect_timeout=3"})
    assert result.returncode == 1
    assert "error: cannot connect to the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_dsn_to_a_missing_database_or_role(autopilot, admin_dsn):
    from psycopg.conninfo import make_conninfo

    result = autopilot("status", "--dsn", make_conninfo(admin_dsn, dbname="ap_does_not_exist"))
    assert_refused(result, "cannot connect to the database", 'database "ap_does_not_exist" does not exist')
    result = autopilot("status", "--dsn", make_conninfo(admin_dsn, user="ap_no_such_role"))
    assert_refused(result, "cannot connect to the database", 'role "ap_no_such_role" does not exist')


def test_malformed_dsn(autopilot):
    result = autopilot("status", "--dsn", "this is not a dsn")
    assert_refused(result, 'missing "=" after "this" in connection info string')


# -- versions ---------------------------------------------------------------------------------------


def test_install_over_newer_version_schema_mode(new_database, autopilot, cron_conn):
    db = new_database("newer")
    db.install("schema")
    with db.connect() as conn:
        conn.execute(
            "CREATE OR REPLACE FUNCTION autopilot.version() RETURNS text LANGUAGE sql IMMUTABLE "
            "SET search_path = pg_catalog, pg_temp AS $$ SELECT '9.9.9'::text $$"
        )
    before = state(db, cron_conn)
    assert before["cron"] == {}

    for command in (("install",), ("install", "--mode", "schema"), ("upgrade",)):
        result = autopilot(*command, "--dsn", db.dsn)
        assert_refused(
            result, "autopilot 9.9.9 is installed, newer than", f"{VERSION} (this package)", "nothing changed"
        )
        assert result.stdout == ""
        assert_unchanged(before, state(db, cron_conn))  # nothing scheduled either
    assert db.scalar("SELECT autopilot.version()") == "9.9.9"


def test_install_over_newer_version_extension_mode(new_database, autopilot, cron_conn):
    db = new_database("newer")
    db.install("extension")
    with db.connect() as conn:  # as if a newer pg-autopilot had installed it
        conn.execute("UPDATE pg_extension SET extversion = '9.9.9' WHERE extname = 'autopilot'")
    before = state(db, cron_conn)
    result = autopilot("install", "--dsn", db.dsn)
    assert_refused(result, "autopilot 9.9.9 is installed, newer than")
    assert_unchanged(before, state(db, cron_conn))
    assert db.scalar("SELECT extversion FROM pg_extension WHERE extname = 'autopilot'") == "9.9.9"


def test_upgrade_to_unknown_version(installed_db, autopilot, cron_conn):
    before = state(installed_db, cron_conn)
    result = autopilot("upgrade", "--to", "7.7.7", "--dsn", installed_db.dsn)
    assert_refused(
        result, "unknown autopilot version 7.7.7", f"This package carries: {', '.join(bundle().versions)}"
    )
    assert_unchanged(before, state(installed_db, cron_conn))


def test_upgrade_to_older_version(installed_db, autopilot, cron_conn):
    """Downgrades are refused (0.0.1 is not packaged, so the version check speaks first)."""
    before = state(installed_db, cron_conn)
    result = autopilot("upgrade", "--to", "0.0.1", "--dsn", installed_db.dsn)
    assert_refused(result, "unknown autopilot version 0.0.1")
    assert_unchanged(before, state(installed_db, cron_conn))


# -- a database without autopilot -------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("status", "--json"),
        ("run", "table-statistics"),
        ("schedule", "table-statistics", "*/5 * * * *"),
        ("schedule", "table-statistics", "--disable"),
        ("settings",),
        ("settings", "jobs.completed_retention", "3 days"),
        ("sync",),
        ("uninstall",),
        ("uninstall", "--drop-data", "--yes"),
        ("upgrade",),
    ],
    ids=lambda c: " ".join(c),
)
def test_commands_without_autopilot(db, autopilot, cron_conn, command):
    result = autopilot(*command, "--dsn", db.dsn)
    assert_refused(result, "autopilot is not installed in this database")
    assert result.stdout == ""
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 0
    assert cron_jobs(cron_conn, db.name) == {}


def test_foreign_schema_named_autopilot(db, autopilot, cron_conn):
    with db.connect() as conn:
        conn.execute("CREATE SCHEMA autopilot")
        conn.execute("CREATE TABLE autopilot.mine (id int)")
    for command in (("install",), ("status",), ("upgrade",)):
        result = autopilot(*command, "--dsn", db.dsn)
        assert_refused(result, "schema autopilot exists but was not created by autopilot")
    assert db.scalar("SELECT count(*) FROM pg_class WHERE relnamespace = 'autopilot'::regnamespace") == 1
    assert cron_jobs(cron_conn, db.name) == {}


def test_usage_errors_exit_2(autopilot, db):
    assert_refused(autopilot("run", "--dsn", db.dsn), "Missing argument 'JOB'", exit_code=2)
    assert_refused(
        autopilot("install", "--mode", "docker", "--dsn", db.dsn), "Invalid value for '--mode'", exit_code=2
    )
    assert_refused(autopilot("frobnicate"), "No such command 'frobnicate'", exit_code=2)
    assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'autopilot'") == 0
