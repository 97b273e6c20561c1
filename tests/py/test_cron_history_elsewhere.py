"""cron-history-cleanup in the usual layout: pg_cron in the cluster's ``postgres`` database, autopilot in an
application database. Its pg_cron run there enqueues the runner's worker (job_catalog.cron_elsewhere_worker),
which prunes cron.job_run_details in pg_cron's database, and its run is in the ledger; a runner role that
lacks a right there is told the GRANT that gives it."""

from __future__ import annotations

import json
import threading

import psycopg
import pytest
from helpers import wait_for
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
    # two runs of the statement job vacuum-analyze, which pg_cron ran itself in the application database:
    # an old one (runs start in runid order: before the planted history) and a recent one

    def vacuum_run(status: str, message: str, ago: str) -> int:
        return cron_conn.execute(
            "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
            " return_message, start_time, end_time)"
            " SELECT jobid, 7, database, username, command, %s, %s, now() - %s::interval,"
            " now() - %s::interval + interval '5 seconds' FROM cron.job WHERE jobname = %s RETURNING runid",
            [status, message, ago, ago, f"autopilot:{db.name}:vacuum-analyze"],
        ).fetchone()[0]

    vacuum_runs = [vacuum_run("succeeded", "VACUUM", "11 days")]
    plant_history(cron_conn, db.name, "postgres")
    vacuum_runs.append(vacuum_run("failed", "ERROR:  boom", "2 hours"))

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
    assert message.startswith("deleted 4 cron.job_run_details rows that ended more than 7 days ago")
    assert "2 statement job runs recorded in the ledger first" in message

    # the statement job's runs are in the ledger, each once, the pruned one included
    with db.connect() as conn:
        ledger = conn.execute(
            "SELECT cron_runid, status, message, trigger, finished_at - started_at FROM autopilot.job_runs"
            " WHERE job_name = 'vacuum-analyze' ORDER BY cron_runid"
        ).fetchall()
    assert [row[:4] for row in ledger] == [
        (vacuum_runs[0], "succeeded", "pg_cron: VACUUM", "pg_cron"),
        (vacuum_runs[1], "failed", "pg_cron: ERROR:  boom", "pg_cron"),
    ]
    assert {row[4].total_seconds() for row in ledger} == {5.0}
    assert (
        cron_conn.execute(
            "SELECT count(*) FROM cron.job_run_details WHERE runid = ANY(%s)", [vacuum_runs]
        ).fetchone()[0]
        == 1
    )  # the 9-day-old run is pruned, the recent one kept
    assert f'in database "{cron_conn.info.dbname}"' in message and "batches" in message

    # status shows the runner's run as the job's last success
    status_json = json.loads(autopilot("status", "--json", "--dsn", db.dsn).stdout)
    jobs = {j["name"]: j for j in status_json["jobs"]}
    assert jobs["cron-history-cleanup"]["unavailable"] is None
    assert jobs["cron-history-cleanup"]["last_success_at"] is not None

    # a second run finds nothing more to delete, nor to record
    again = prune(db.dsn)
    assert (again.deleted, again.recorded) == (0, 0)


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
    """A runner role granted as the README says, that owns autopilot's pg_cron jobs (not a superuser),
    deletes their old runs and records the statement jobs' runs, and leaves another role's history:
    pg_cron's row security, the same rows as where pg_cron is local."""
    db = synced_db
    with readme_roles(admin_dsn, db) as roles:
        runner = roles["runner"]
        role = psycopg.conninfo.conninfo_to_dict(runner)["user"]
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"GRANT pg_read_all_settings TO {role}")
        cron_conn.execute(f"GRANT USAGE ON SCHEMA cron TO {role}")
        try:
            # autopilot's pg_cron jobs of this database, as if that role had synced them
            cron_conn.execute(
                "UPDATE cron.job SET username = %s WHERE database = %s AND jobname LIKE 'autopilot:%%'",
                [role, db.name],
            )
            cron_conn.execute(
                "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,"
                " return_message, start_time, end_time)"
                " SELECT jobid, 7, database, username, command, 'succeeded', 'VACUUM',"
                " now() - interval '9 days', now() - interval '9 days' FROM cron.job WHERE jobname = %s",
                [f"autopilot:{db.name}:vacuum-analyze"],
            )
            plant_history(cron_conn, db.name, role)
            plant_history(cron_conn, db.name, "postgres")
            pruned = prune(runner)
            assert (pruned.deleted, pruned.recorded, pruned.complete) == (4, 1, True)
            owners = cron_conn.execute(
                "SELECT username, count(*) FROM cron.job_run_details WHERE command = %s GROUP BY username",
                [MARK],
            ).fetchall()
            assert dict(owners) == {role: len(KEPT), "postgres": len(KEPT) + 3}
            with db.connect() as conn:
                assert (
                    conn.execute(
                        "SELECT count(*) FROM autopilot.job_runs"
                        " WHERE job_name = 'vacuum-analyze' AND cron_runid > 0"
                    ).fetchone()[0]
                    == 1
                )
        finally:
            cron_conn.execute("DELETE FROM cron.job_run_details WHERE username = %s", [role])
            cron_conn.execute("UPDATE cron.job SET username = current_user WHERE username = %s", [role])
            cron_conn.execute(f"REVOKE USAGE ON SCHEMA cron FROM {role}")
            with psycopg.connect(admin_dsn, autocommit=True) as admin:
                admin.execute(f"REVOKE pg_read_all_settings FROM {role}")


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


@pytest.mark.pg_cron
def test_index_reindex_runs_its_statements_on_the_runner_where_pg_cron_is_elsewhere(synced_db, cron_conn):
    """index-reindex cannot arm index-reindex-step in another database: its pg_cron run enqueues the
    runner worker, which plans the cycle and runs each statement at top level; the run is in the ledger."""
    from test_index_reindex import bloat_agents

    db = synced_db
    bloat_agents(db)
    size_before = db.scalar("SELECT pg_relation_size('autopilot.agents_pkey')")
    step = cron_conn.execute(
        "SELECT active FROM cron.job WHERE jobname = %s", [f"autopilot:{db.name}:index-reindex-step"]
    ).fetchone()[0]
    assert step is False, "index-reindex-step is never armed where pg_cron is elsewhere"

    with db.connect() as conn:
        conn.execute("CALL autopilot.run_scheduled_job('index-reindex')")  # as pg_cron runs it
        enqueued = conn.execute(
            "SELECT status, message FROM autopilot.job_runs"
            " WHERE job_name = 'index-reindex' AND side = 'database'"
        ).fetchone()
        assert enqueued[0] == "succeeded" and enqueued[1].endswith("(index_reindex)"), enqueued
        assert conn.execute("SELECT count(*) FROM autopilot.index_maintenance").fetchone()[0] == 0
        with ThreadedRunner(db.dsn):
            status, message = wait_for(
                lambda: conn.execute(
                    "SELECT status, message FROM autopilot.job_runs"
                    " WHERE job_name = 'index-reindex' AND trigger = 'runner'"
                ).fetchone(),
                "index-reindex's run by the runner",
                timeout=120,
            )
        items = conn.execute(
            "SELECT statement, state, message FROM autopilot.index_maintenance ORDER BY id"
        ).fetchall()
    assert status == "succeeded", message
    assert message == f"planned {len(items)} index statements; ran {len(items)}: {len(items)} done, 0 failed"
    assert ("REINDEX INDEX CONCURRENTLY autopilot.agents_pkey", "done", "ran at top level") in items
    assert all(state == "done" for _, state, _ in items)
    assert db.scalar("SELECT to_regclass('autopilot.agents_pkey_ccnew')") is None
    assert db.scalar("SELECT pg_relation_size('autopilot.agents_pkey')") < size_before / 3


@pytest.mark.pg_cron
def test_pg_cron_fires_cron_history_cleanup_in_the_application_database(
    synced_db, cron_conn, autopilot, planted
):
    """The real thing: pg_cron, in its own database, fires the job in the application database at its next
    minute; that run enqueues the worker and a runner prunes."""
    db = synced_db
    plant_history(cron_conn, db.name, "postgres")
    assert autopilot("schedule", "cron-history-cleanup", "* * * * *", "--dsn", db.dsn).exit_code == 0
    assert autopilot("sync", "--dsn", db.dsn).exit_code == 0
    with db.connect() as conn:
        fired = wait_for(
            lambda: conn.execute(
                "SELECT status, message FROM autopilot.job_runs"
                " WHERE job_name = 'cron-history-cleanup' AND trigger = 'pg_cron' AND status <> 'running'"
            ).fetchone(),
            "pg_cron's run of cron-history-cleanup",
            timeout=90,
        )
        assert fired[0] == "succeeded" and fired[1].endswith("(cron_history_cleanup)"), fired
        with ThreadedRunner(db.dsn):
            status, message = wait_for(
                lambda: conn.execute(
                    "SELECT status, message FROM autopilot.job_runs"
                    " WHERE job_name = 'cron-history-cleanup' AND trigger = 'runner'"
                ).fetchone(),
                "the runner's run",
                timeout=60,
            )
    assert status == "succeeded", message
    assert remaining(cron_conn) == KEPT
