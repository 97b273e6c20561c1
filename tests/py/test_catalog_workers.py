"""The runner-side catalog and the runner's workers agree: a catalog job whose worker does not ship
with the runner is shipped disabled, with a reason that `autopilot status` prints (so no job is
enqueued every night only to be discarded), and a runner job counts as a success of its catalog job
only when its worker completed it, never because it was enqueued."""

from __future__ import annotations

import json
from contextlib import contextmanager

from helpers import assert_status_exit

from pg_autopilot.db import connect
from pg_autopilot.queue import QueueClient
from pg_autopilot.workers import REGISTRY


def _status(autopilot, db) -> dict:
    result = autopilot("status", "--json", "--dsn", db.dsn)
    assert_status_exit(result)
    return {job["name"]: job for job in json.loads(result.stdout)["jobs"]}


def test_every_runner_side_job_has_a_worker_or_ships_disabled_with_a_reason(installed_db, autopilot):
    rows = (
        installed_db.connect()
        .execute(
            "SELECT name, target, enabled, active, disabled_reason FROM autopilot.job_definitions"
            " WHERE side = 'runner' ORDER BY name"
        )
        .fetchall()
    )
    assert len(rows) == 12
    jobs = _status(autopilot, installed_db)
    for name, target, enabled, active, reason in rows:
        if target in REGISTRY:
            assert (enabled, reason) == (True, None), name
            continue
        assert not enabled and not active, f"{name}: its worker {target} does not ship, yet it is enabled"
        assert reason and target in reason, name
        assert jobs[name]["enabled"] is False
        assert jobs[name]["disabled_reason"] == reason
    # every runner-side job of this version has its worker in the runner
    assert {target for _, target, *_ in rows} <= set(REGISTRY)


def test_a_job_shipped_without_its_worker_is_disabled_with_its_reason_until_enabled(installed_db, autopilot):
    """What a version does for a catalog job whose worker does not ship with its runner (as 0.3.0's
    template-sync): disabled, the reason in status, enabled by a DBA whose runner loads one."""
    reason = "no rag_setup worker ships with the runner: enable the job when yours loads one"
    installed_db.connect().execute(
        "UPDATE autopilot.job_catalog SET disabled_reason = %s WHERE name = 'rag-setup'", [reason]
    )
    job = _status(autopilot, installed_db)["rag-setup"]
    assert (job["enabled"], job["disabled_reason"]) == (False, reason)
    table = autopilot("status", "--dsn", installed_db.dsn).stdout  # the reason wraps in its cell
    assert "disabled: no rag_setup worker" in table

    # a DBA whose runner loads such a worker enables the job; a reset ships it disabled again
    assert autopilot("schedule", "rag-setup", "--enable", "--dsn", installed_db.dsn).exit_code == 0
    job = _status(autopilot, installed_db)["rag-setup"]
    assert (job["enabled"], job["disabled_reason"]) == (True, None)
    assert autopilot("schedule", "rag-setup", "--reset", "--dsn", installed_db.dsn).exit_code == 0
    assert _status(autopilot, installed_db)["rag-setup"]["enabled"] is False


def test_a_runner_job_succeeds_when_its_worker_does_not_when_it_is_enqueued(installed_db, autopilot):
    @contextmanager
    def connection():
        with connect(installed_db.dsn, autocommit=True) as conn:
            yield conn

    queue = QueueClient(connection)
    # `autopilot run` enqueues it: the enqueue is a succeeded run, not a success of the job
    assert autopilot("run", "cache-cleanup", "--dsn", installed_db.dsn).exit_code == 0
    job = _status(autopilot, installed_db)["cache-cleanup"]
    assert job["last_status"] == "succeeded" and job["last_success_at"] is None

    # its worker is missing on a runner, which discards it: still no success
    (claimed,) = queue.claim("default", "a runner without the worker", 1)
    assert (
        queue.fail(claimed.key, "no worker named 'cache_cleanup' in this runner", discard=True) == "discarded"
    )
    job = _status(autopilot, installed_db)["cache-cleanup"]
    assert (job["last_status"], job["last_success_at"]) == ("failed", None)

    # run again and completed by its worker: that is the success
    assert autopilot("run", "cache-cleanup", "--dsn", installed_db.dsn).exit_code == 0
    (claimed,) = queue.claim("default", "a runner", 1)
    assert queue.complete_many([claimed.key]) is None
    job = _status(autopilot, installed_db)["cache-cleanup"]
    assert job["last_status"] == "succeeded" and job["last_success_at"] is not None


def test_every_worker_for_pg_cron_elsewhere_ships_with_the_runner(installed_db):
    """A database-side job that the runner carries out where pg_cron lives in another database
    (job_catalog.cron_elsewhere_worker) has its worker in the runner."""
    rows = (
        installed_db.connect()
        .execute(
            "SELECT name, cron_elsewhere_worker FROM autopilot.job_catalog"
            " WHERE cron_elsewhere_worker IS NOT NULL"
        )
        .fetchall()
    )
    assert dict(rows) == {"cron-history-cleanup": "cron_history_cleanup", "index-reindex": "index_reindex"}
    assert {worker for _, worker in rows} <= set(REGISTRY)
