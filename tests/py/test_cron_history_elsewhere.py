"""cron-history-cleanup in the usual layout: pg_cron in the cluster's ``postgres`` database, autopilot in an
application database. Its pg_cron run there enqueues the runner's worker (job_catalog.cron_elsewhere_worker),
which prunes cron.job_run_details in pg_cron's database, and its run is in the ledger; a runner role that
lacks a right there is told the GRANT that gives it."""

from __future__ import annotations

import json
import threading
import uuid

import psycopg
import pytest
from helpers import wait_for
from psycopg.conninfo import make_conninfo
from readme_roles import readme_roles

from pg_autopilot.cron_history import CronHistoryError, prune
from pg_autopilot.runner import Runner, RunnerConfig
from pg_autopilot.workers import REGISTRY

MARK = "ap-cron-history-test"


class ThreadedRunner:
    def __init__(self, dsn: str):
        self.runner = Runner(
            RunnerConfig(dsn=dsn, poll_interval=0.2, heartbeat_interval=0.5, enqueue_startup_jobs=False),
            workers=REGISTRY,
        )
        self.thread = threading.Thread(target=self.runner.run, daemon=True)

    def __enter__(self) -> Runner:
        self.thread.start()
        return self.runner

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the runner did not stop"


def plant_history(cron_conn: psycopg.Connection, database: str, username: str) -> dict[str, int]:
    """pg_cron history rows of ``username``'s jobs in ``database``: old finished ones (to go), an old run
    still going, one that started old but ended recently, and new ones (to stay). Returns runid by label."""
    rows = [
        ("old, still running", "running", "10 days", None),
        ("old 1", "succeeded", "10 days", "10 days"),
        ("old 2", "failed", "9 days", "9 days"),
        ("old 3", "succeeded", "8 days", "8 days"),
        ("started old, ended recently", "succeeded", "8 days", "6 days"),
        ("new 1", "succeeded", "1 day", "1 day"),
        ("new, running", "running", "1 minute", None),
    ]
    runids = {}
    for label, status, started, ended in rows:
        runids[label] = cron_conn.execute(
            "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
            " return_message, start_time, end_time)"
            " VALUES (0, 1, %s, %s, %s, %s, %s, now() - %s::interval, now() - %s::interval) RETURNING runid",
            [database, username, MARK, status, label, started, ended],
        ).fetchone()[0]
    return runids


def remaining(cron_conn: psycopg.Connection) -> set[str]:
    return {
        r[0]
        for r in cron_conn.execute(
            "SELECT return_message FROM cron.job_run_details WHERE command = %s", [MARK]
        ).fetchall()
    }


KEPT = {"old, still running", "started old, ended recently", "new 1", "new, running"}


@pytest.fixture
def planted(cron_conn):
    """Room for planted history. In pg_cron's table runs start in runid order, and the walk ends at the
    first run that started after the cutoff; this cluster's recent runs would come before rows planted
    now, so they are set aside for the test and put back (with their runids) afterwards."""
    cron_conn.execute("CREATE TEMPORARY TABLE saved_history AS SELECT * FROM cron.job_run_details")
    cron_conn.execute("DELETE FROM cron.job_run_details WHERE runid IN (SELECT runid FROM saved_history)")
    yield
    cron_conn.execute("DELETE FROM cron.job_run_details WHERE command = %s", [MARK])
    cron_conn.execute("INSERT INTO cron.job_run_details SELECT * FROM saved_history ON CONFLICT DO NOTHING")


@pytest.mark.pg_cron
def test_the_runner_prunes_pg_cron_history_in_its_database_and_the_run_is_in_the_ledger(
    synced_db, cron_conn, autopilot, planted
):
    db = synced_db
    with db.connect() as conn:
        reason, active = conn.execute(
            "SELECT unavailable_reason, active FROM autopilot.job_definitions"
            " WHERE name = 'cron-history-cleanup'"
        ).fetchone()
        conn.execute("SELECT autopilot.set_setting('cleanup.batch_size', '2')")
    assert (reason, active) == (None, True)
    (cron_active,) = cron_conn.execute(
        "SELECT active FROM cron.job WHERE jobname = %s", [f"autopilot:{db.name}:cron-history-cleanup"]
    ).fetchone()
    assert cron_active is True
    plant_history(cron_conn, db.name, "postgres")

    # its pg_cron run (here through `autopilot run`, which CALLs the same procedure) enqueues the worker
    result = autopilot("run", "cron-history-cleanup", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "enqueued job" in result.stdout and "(cron_history_cleanup)" in result.stdout
    assert remaining(cron_conn) == KEPT | {"old 1", "old 2", "old 3"}  # nothing deleted yet

    with ThreadedRunner(db.dsn), db.connect() as conn:
        status, message, side, details = wait_for(
            lambda: conn.execute(
                "SELECT status, message, side, details FROM autopilot.job_runs"
                " WHERE job_name = 'cron-history-cleanup' AND trigger = 'runner'"
            ).fetchone(),
            "cron-history-cleanup's run by the runner",
            timeout=60,
        )
    assert (status, side, details["worker"]) == ("succeeded", "runner", "cron_history_cleanup"), message
    assert remaining(cron_conn) == KEPT
    assert message.startswith("deleted 3 cron.job_run_details rows that ended more than 7 days ago")
    assert f'in database "{cron_conn.info.dbname}"' in message and "batches" in message

    # status shows the runner's run as the job's last success
    status_json = json.loads(autopilot("status", "--json", "--dsn", db.dsn).stdout)
    jobs = {j["name"]: j for j in status_json["jobs"]}
    assert jobs["cron-history-cleanup"]["unavailable"] is None
    assert jobs["cron-history-cleanup"]["last_success_at"] is not None

    # a second run finds nothing more to delete
    assert prune(db.dsn).deleted == 0


@pytest.mark.pg_cron
def test_a_runner_role_lacking_a_right_in_pg_cron_s_database_is_told_the_grant(
    synced_db, admin_dsn, cron_dsn, cron_conn, planted
):
    db = synced_db
    plant_history(cron_conn, db.name, "postgres")
    with readme_roles(admin_dsn, db) as roles:
        runner = roles["runner"]
        role = psycopg.conninfo.conninfo_to_dict(runner)["user"]

        with pytest.raises(CronHistoryError) as raised:
            prune(runner)
        assert f"GRANT pg_read_all_settings TO {role};" in str(raised.value)

        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"GRANT pg_read_all_settings TO {role}")
        try:
            # pg_cron's database refuses connections but from named roles
            cron_conn.execute(f'REVOKE CONNECT ON DATABASE "{cron_conn.info.dbname}" FROM PUBLIC')
            try:
                with pytest.raises(CronHistoryError) as raised:
                    prune(runner)
                assert f'GRANT CONNECT ON DATABASE "{cron_conn.info.dbname}" TO {role};' in str(raised.value)
            finally:
                cron_conn.execute(f'GRANT CONNECT ON DATABASE "{cron_conn.info.dbname}" TO PUBLIC')

            with pytest.raises(CronHistoryError) as raised:
                prune(runner)
            assert f"GRANT USAGE ON SCHEMA cron TO {role};" in str(raised.value)
            assert f'in database "{cron_conn.info.dbname}"' in str(raised.value)

            cron_conn.execute(f"GRANT USAGE ON SCHEMA cron TO {role}")
            try:
                # pg_cron's row security: this role sees none of autopilot's jobs, so it could prune nothing
                with pytest.raises(CronHistoryError) as raised:
                    prune(runner)
                assert f'sees none of the pg_cron jobs of database "{db.name}"' in str(raised.value)
                assert "the role that runs `autopilot sync`" in str(raised.value)

                # and through the runner: the failure, with the fix, is the run's message in the ledger
                with db.connect() as conn:
                    conn.execute("SELECT autopilot._enqueue_catalog_job('cron-history-cleanup')")
                    with ThreadedRunner(runner):
                        status, message = wait_for(
                            lambda: conn.execute(
                                "SELECT status, message FROM autopilot.job_runs"
                                " WHERE job_name = 'cron-history-cleanup' AND trigger = 'runner'"
                            ).fetchone(),
                            "the runner's failed run",
                            timeout=60,
                        )
                assert status == "failed"
                assert "CronHistoryError" in message and "the role that runs `autopilot sync`" in message
            finally:
                cron_conn.execute(f"REVOKE USAGE ON SCHEMA cron FROM {role}")
        finally:
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f"REVOKE pg_read_all_settings FROM {role}")
    assert remaining(cron_conn) == KEPT | {"old 1", "old 2", "old 3"}  # nothing was deleted


@pytest.mark.pg_cron
def test_the_runner_role_deletes_only_the_history_it_may(synced_db, admin_dsn, cron_conn, planted):
    """A runner that runs as the role owning autopilot's pg_cron jobs (not a superuser) deletes their old
    runs, and not another role's: pg_cron's row security, the same rows as where pg_cron is local."""
    db = synced_db
    role = f"ap_cronowner_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN IN ROLE pg_read_all_settings")
    try:
        cron_conn.execute(f"GRANT USAGE ON SCHEMA cron TO {role}")
        with db.connect() as conn:
            conn.execute(f"GRANT USAGE ON SCHEMA autopilot TO {role}")
            conn.execute(f"GRANT EXECUTE ON FUNCTION autopilot.get_setting(text) TO {role}")
            conn.execute(f"GRANT SELECT ON autopilot.settings, autopilot.setting_values TO {role}")
        # one of autopilot's pg_cron jobs of this database, as if that role had synced it
        cron_conn.execute(
            "UPDATE cron.job SET username = %s WHERE jobname = %s",
            [role, f"autopilot:{db.name}:cron-history-cleanup"],
        )
        plant_history(cron_conn, db.name, role)
        plant_history(cron_conn, db.name, "postgres")
        pruned = prune(make_conninfo(db.dsn, user=role))
        assert pruned.deleted == 3 and pruned.complete
        owners = cron_conn.execute(
            "SELECT username, count(*) FROM cron.job_run_details WHERE command = %s GROUP BY username", [MARK]
        ).fetchall()
        assert dict(owners) == {role: len(KEPT), "postgres": len(KEPT) + 3}
    finally:
        cron_conn.execute("DELETE FROM cron.job_run_details WHERE username = %s", [role])
        cron_conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE username = %s", [role])
        cron_conn.execute(f"DROP OWNED BY {role}")
        with db.connect() as conn:
            conn.execute(f"DROP OWNED BY {role}")
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


@pytest.mark.pg_cron
def test_where_pg_cron_is_local_the_job_prunes_it_itself(cron_db, cron_conn, autopilot, planted):
    cron_db.install("extension", sync=True)
    plant_history(cron_conn, cron_db.name, "postgres")
    result = autopilot("run", "cron-history-cleanup", "--dsn", cron_db.dsn)
    assert result.exit_code == 0, result.output
    assert "enqueued" not in result.stdout
    assert not ({"old 1", "old 2", "old 3"} & remaining(cron_conn))
    with cron_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM autopilot.jobs").fetchone()[0] == 0
