"""Managed services: autopilot installed by a non-superuser owner of the database. `install`, `sync`,
`upgrade` and `schedule` first check that the role can schedule with pg_cron, and fail before writing
anything with a hint that names each missing grant and the statement that gives it."""

from __future__ import annotations

import json
import time
import uuid

import psycopg
import pytest
from helpers import cron_jobs, dict_rows
from psycopg.conninfo import make_conninfo
from readme_roles import readme_owner_grants, readme_roles

from pg_autopilot import installer

pytestmark = pytest.mark.pg_cron

TIMEOUT = 100  # seconds: the next minute boundary, pg_cron noticing the change, and the run itself

# what a non-superuser needs to schedule autopilot's jobs with pg_cron living in another database
GRANTS = {
    "pg_read_all_settings": "GRANT pg_read_all_settings TO ROLE;",
    "usage": "GRANT USAGE ON SCHEMA cron TO ROLE;",
    "schedule_in_database": "GRANT EXECUTE ON FUNCTION "
    "cron.schedule_in_database(text, text, text, text, text, boolean) TO ROLE;",
    "alter_job": "GRANT EXECUTE ON FUNCTION cron.alter_job(bigint, text, text, text, text, boolean) TO ROLE;",
}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _installed(owner) -> installer.Installed | None:
    with owner.database.connect() as conn:
        return installer.installed(conn)


@pytest.mark.parametrize("missing", list(GRANTS))
def test_install_names_the_missing_grant_and_writes_nothing(owner, autopilot, cron_conn, missing):
    owner.grant(*(statement for name, statement in GRANTS.items() if name != missing))
    result = autopilot("install", "--mode", "schema", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    output = _flat(result.output)
    assert "nothing changed" in output
    # the hint gives exactly the missing grant's statement, and no other
    for name, statement in GRANTS.items():
        assert (statement.replace("ROLE", owner.role) in output) == (name == missing), (name, output)
    assert _installed(owner) is None
    assert cron_jobs(cron_conn, owner.database.name) == {}


def test_install_without_any_grant_names_pg_read_all_settings(owner, autopilot):
    result = autopilot("install", "--mode", "schema", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    assert f"GRANT pg_read_all_settings TO {owner.role};" in _flat(result.output)
    assert _installed(owner) is None


def test_install_without_cron_rights_names_all_of_them(owner, autopilot):
    owner.grant(GRANTS["pg_read_all_settings"])
    result = autopilot("install", "--mode", "schema", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    output = _flat(result.output)
    for name in ("usage", "schedule_in_database", "alter_job"):
        assert GRANTS[name].replace("ROLE", owner.role) in output
    assert _installed(owner) is None


@pytest.mark.parametrize("missing", ["usage", "schedule_in_database", "alter_job"])
def test_sync_and_schedule_fail_before_changing_anything(owner, autopilot, cron_conn, missing):
    owner.grant(*GRANTS.values())
    assert autopilot("install", "--mode", "schema", "--dsn", owner.dsn).exit_code == 0
    before = cron_jobs(cron_conn, owner.database.name)
    assert before and {job["username"] for job in before.values()} == {owner.role}
    owner.grant(GRANTS[missing].replace("GRANT", "REVOKE").replace(" TO ", " FROM "))

    result = autopilot("sync", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    assert GRANTS[missing].replace("ROLE", owner.role) in _flat(result.output)

    result = autopilot("schedule", "vacuum-analyze", "17 3 * * *", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    assert GRANTS[missing].replace("ROLE", owner.role) in _flat(result.output)
    with owner.database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM autopilot.job_overrides").fetchone()[0] == 0
    assert cron_jobs(cron_conn, owner.database.name) == before


def test_upgrade_fails_before_upgrading(owner, autopilot):
    owner.grant(GRANTS["pg_read_all_settings"], GRANTS["usage"], GRANTS["schedule_in_database"])
    with psycopg.connect(owner.dsn) as conn:
        installer.install(conn, mode="schema", version="0.3.0")
    result = autopilot("upgrade", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    assert GRANTS["alter_job"].replace("ROLE", owner.role) in _flat(result.output)
    assert _installed(owner).version == "0.3.0"


def test_superuser_and_servers_without_pg_cron_pass_the_check(db, nocron_db, autopilot):
    assert autopilot("install", "--mode", "schema", "--dsn", db.dsn).exit_code == 0
    result = autopilot("install", "--mode", "schema", "--dsn", nocron_db.dsn)
    assert result.exit_code == 0, result.output
    assert "pg_cron is not loaded" in result.output


@pytest.fixture
def readme_owner(admin_dsn, cron_dsn, new_database):
    """A login role granted exactly the README's block for the role that installs and owns the jobs,
    on a new database it does not own."""
    role = f"ap_readme_owner_{uuid.uuid4().hex[:8]}"
    database = new_database("rown")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        conn.execute(readme_owner_grants(role, database.name))
    yield role, make_conninfo(database.dsn, user=role), database
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE username = %s", [role])
        conn.execute(f"DROP OWNED BY {role}")
    with database.connect() as conn:
        conn.execute(f"DROP OWNED BY {role}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")


@pytest.mark.slow
def test_readme_owner_installs_and_pg_cron_runs_its_jobs(readme_owner, autopilot, cron_conn):
    """The README's grants are enough: install, sync and schedule as that role, and a job pg_cron fires
    (as that role) lands in the ledger. pg_cron 1.4 has no seconds: up to about 70 s."""
    role, dsn, database = readme_owner
    result = autopilot("install", "--mode", "schema", "--dsn", dsn)
    assert result.exit_code == 0, result.output
    assert "pg_cron synced" in result.output
    assert autopilot("sync", "--dsn", dsn).exit_code == 0
    jobs = cron_jobs(cron_conn, database.name)
    assert len(jobs) > 20 and {job["username"] for job in jobs.values()} == {role}

    result = autopilot("schedule", "table-statistics", "* * * * *", "--dsn", dsn)
    assert result.exit_code == 0, result.output
    job = cron_jobs(cron_conn, database.name)[f"autopilot:{database.name}:table-statistics"]
    assert (job["schedule"], job["active"], job["username"]) == ("* * * * *", True, role)

    def ledger_run():
        with database.connect() as conn:
            rows = dict_rows(
                conn,
                "SELECT * FROM autopilot.job_runs WHERE job_name = 'table-statistics' "
                "AND trigger = 'pg_cron' AND status = 'succeeded' ORDER BY id LIMIT 1",
            )
        return rows[0] if rows else None

    deadline = time.monotonic() + TIMEOUT
    run = None
    while run is None and time.monotonic() < deadline:
        time.sleep(1)
        run = ledger_run()
    if run is None:
        history = dict_rows(
            cron_conn,
            "SELECT status, return_message, start_time FROM cron.job_run_details WHERE jobid = %s",
            [job["jobid"]],
        )
        pytest.fail(f"pg_cron did not run table-statistics in {TIMEOUT} s; pg_cron history: {history}")
    assert f"analyzed database {database.name}" in run["message"]
    assert autopilot("schedule", "table-statistics", "--disable", "--dsn", dsn).exit_code == 0


def _status(autopilot, dsn: str) -> dict:
    result = autopilot("status", "--json", "--dsn", dsn)
    assert result.exit_code in (0, 1, 2) and result.stdout.startswith("{"), result.output
    return json.loads(result.stdout)


def test_readonly_role_sees_pg_cron_state_where_pg_cron_is_local(cron_db, admin_dsn, autopilot, cron_conn):
    """pg_cron in this database: the README's read-only role sees each job's pg_cron state, as a
    superuser does, through autopilot._health_cron_jobs() (pg_cron's row security hides the jobs)."""
    cron_db.install("schema", sync=True)
    assert autopilot("schedule", "vacuum-analyze", "--disable", "--dsn", cron_db.dsn).exit_code == 0
    jobs = cron_jobs(cron_conn, cron_db.name)
    with readme_roles(admin_dsn, cron_db) as dsns:
        with psycopg.connect(dsns["readonly"]) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM cron.job")  # pg_cron itself shows it nothing
        seen = _status(autopilot, dsns["readonly"])
    full = _status(autopilot, cron_db.dsn)
    assert seen["pg_cron"] == full["pg_cron"] and seen["pg_cron"]["message"] is None
    by_name = {job["name"]: job for job in seen["jobs"]}
    vacuum = jobs[f"autopilot:{cron_db.name}:vacuum-analyze"]
    assert by_name["vacuum-analyze"]["pg_cron"] == f"#{vacuum['jobid']} inactive"
    assert by_name["vacuum-analyze"]["next_run_at"] is None
    stats = jobs[f"autopilot:{cron_db.name}:table-statistics"]
    assert by_name["table-statistics"]["pg_cron"] == f"#{stats['jobid']} active"
    assert by_name["table-statistics"]["next_run_at"] is not None
    assert [job["pg_cron"] for job in seen["jobs"]] == [job["pg_cron"] for job in full["jobs"]]
    assert not any(job["pg_cron"].startswith("missing") for job in seen["jobs"])


def test_readonly_role_is_told_why_pg_cron_in_another_database_is_not_shown(synced_db, admin_dsn, autopilot):
    with readme_roles(admin_dsn, synced_db) as dsns:
        seen = _status(autopilot, dsns["readonly"])
    assert "sees only the pg_cron jobs it scheduled" in seen["pg_cron"]["message"]
    assert seen["pg_cron"]["database"] != synced_db.name
    states = {job["pg_cron"] for job in seen["jobs"]}
    assert "not shown" in states and not any(state.startswith("missing") for state in states)


def test_owner_status_shows_its_pg_cron_jobs(owner, autopilot, cron_conn):
    """The non-superuser role that scheduled the jobs sees them in status (pg_cron in another database)."""
    owner.grant(*GRANTS.values())
    assert autopilot("install", "--mode", "schema", "--dsn", owner.dsn).exit_code == 0
    jobs = cron_jobs(cron_conn, owner.database.name)
    report = _status(autopilot, owner.dsn)
    assert report["pg_cron"]["message"] is None
    by_name = {job["name"]: job for job in report["jobs"]}
    stats = jobs[f"autopilot:{owner.database.name}:table-statistics"]
    assert by_name["table-statistics"]["pg_cron"] == f"#{stats['jobid']} active"
    assert not any(job["pg_cron"].startswith(("missing", "not ")) for job in report["jobs"])


@pytest.mark.parametrize("missing", ["pg_read_all_settings", "usage"])
def test_uninstall_needs_to_see_pg_cron_before_dropping(owner, autopilot, cron_conn, missing):
    """Not seeing its pg_cron jobs, uninstall --drop-data would drop autopilot and leave them firing."""
    owner.grant(*GRANTS.values())
    assert autopilot("install", "--mode", "schema", "--dsn", owner.dsn).exit_code == 0
    jobs = cron_jobs(cron_conn, owner.database.name)
    owner.grant(GRANTS[missing].replace("GRANT", "REVOKE").replace(" TO ", " FROM "))
    result = autopilot("uninstall", "--drop-data", "--yes", "--dsn", owner.dsn)
    assert result.exit_code == 1, result.output
    assert GRANTS[missing].replace("ROLE", owner.role) in _flat(result.output)
    assert _installed(owner) is not None and cron_jobs(cron_conn, owner.database.name) == jobs
    owner.grant(GRANTS[missing])
    result = autopilot("uninstall", "--drop-data", "--yes", "--dsn", owner.dsn)
    assert result.exit_code == 0, result.output
    assert _installed(owner) is None and cron_jobs(cron_conn, owner.database.name) == {}
