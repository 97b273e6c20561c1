"""The runner against a real database: draining, retries, unknown workers, NOTIFY, cancellation, startup
jobs; and the reliability the issue asks for -- SIGTERM lets running jobs finish, SIGKILL loses no job
(rescue-orphaned-jobs takes them back), two runners never run one job at once, and 50 concurrent
enqueues of one unique job leave one row."""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
import runner_workers  # noqa: F401 - registers the test workers
from conftest import Database
from helpers import flat, run_subprocess, wait_for
from psycopg.conninfo import make_conninfo

from pg_autopilot.runner import Runner, RunnerConfig
from pg_autopilot.testing import Cluster
from pg_autopilot.workers import REGISTRY, Worker

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def queue_db(new_database):
    database = new_database("runner")
    database.install("extension")
    with database.connect() as conn:
        conn.execute(
            "CREATE TABLE public.runner_log"
            " (job_id bigint, node text, started timestamptz, finished timestamptz)"
        )
        conn.execute("SELECT autopilot.set_setting('jobs.backoff_base', '0')")
    return database


class ThreadedRunner:
    """A Runner in a thread of this process, stopped (and joined) at the end."""

    def __init__(self, dsn: str, **config):
        config.setdefault("poll_interval", 0.2)
        config.setdefault("heartbeat_interval", 0.5)
        config.setdefault("enqueue_startup_jobs", False)
        self.runner = Runner(RunnerConfig(dsn=dsn, **config), workers=REGISTRY)
        self.thread = threading.Thread(target=self.runner.run, daemon=True)

    def __enter__(self) -> Runner:
        self.thread.start()
        return self.runner

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the runner did not stop"


def spawn_runner(dsn: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [
            sys.executable, "-m", "pg_autopilot.cli", "runner", "start", "--dsn", dsn,
            "--worker-module", "runner_workers", "--no-startup-jobs", "--poll-interval", "0.2",
            "--heartbeat-interval", "0.5", *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


@pytest.fixture
def runner_events():
    """The runner's log records, as dicts (event, level and fields), for the length of the test."""
    events: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append(
                {
                    "event": record.getMessage(),
                    "level": record.levelname.lower(),
                    **getattr(record, "fields", {}),
                }
            )

    logger = logging.getLogger("autopilot.runner")
    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield events
    logger.removeHandler(handler)
    logger.setLevel(level)


def states(db) -> dict[str, int]:
    with db.connect() as conn:
        return dict(conn.execute("SELECT state, count(*) FROM autopilot.jobs GROUP BY state").fetchall())


def enqueue(db, worker: str, n: int = 1, queue: str = "default", **args) -> list[int]:
    with db.connect() as conn:
        jobs = [{"worker": worker, "queue": queue, "args": dict(args, i=i)} for i in range(n)]
        return [
            r[0] for r in conn.execute("SELECT autopilot.enqueue_many(%s)", [json.dumps(jobs)]).fetchall()
        ]


def backends(admin: psycopg.Connection, db, condition: str = "true") -> list[int]:
    """The pids of the runner's connections to ``db`` (its application_name) that meet ``condition``."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'autopilot runner'"
        f" AND {condition}",
        [db.name],
    ).fetchall()
    return [pid for (pid,) in rows]


def terminate(admin: psycopg.Connection, pids: list[int]) -> None:
    admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])


def test_runner_drains_retries_and_discards(queue_db):
    enqueue(queue_db, "noop", 300)
    [flaky] = enqueue(queue_db, "flaky", succeed_on=2)
    [unknown] = enqueue(queue_db, "no_such_worker")
    with ThreadedRunner(queue_db.dsn, concurrency=4):
        wait_for(lambda: states(queue_db).get("completed") == 301, "every job done")
    assert states(queue_db) == {"completed": 301, "discarded": 1}
    with queue_db.connect() as conn:
        attempts, errors = conn.execute(
            "SELECT attempt, errors FROM autopilot.jobs WHERE id = %s", [flaky]
        ).fetchone()
        assert attempts == 2 and errors[0]["error"] == "RuntimeError: flaky failure on attempt 1"
        state, errors = conn.execute(
            "SELECT state, errors FROM autopilot.jobs WHERE id = %s", [unknown]
        ).fetchone()
        assert state == "discarded"
        assert errors[0]["error"].startswith("no worker named 'no_such_worker' in this runner (it has: ")
        runs = dict(
            conn.execute(
                "SELECT status, count(*) FROM autopilot.job_runs WHERE side = 'runner' GROUP BY status"
            ).fetchall()
        )
    # every attempt is in the ledger: 301 successes, the flaky job's first failure, the discard
    assert runs == {"succeeded": 301, "failed": 2}
    with queue_db.connect() as conn:
        messages = conn.execute(
            "SELECT status, message FROM autopilot.job_runs"
            " WHERE (details ->> 'job_id')::bigint = %s ORDER BY id",
            [flaky],
        ).fetchall()
        noop_message = conn.execute(
            "SELECT message FROM autopilot.job_runs WHERE job_name = 'noop' AND status = 'succeeded' LIMIT 1"
        ).fetchone()[0]
    # a worker's result is its run's message; a worker that returns nothing gets the default one
    assert [status for status, _ in messages] == ["failed", "succeeded"]
    assert "RuntimeError: flaky failure on attempt 1" in messages[0][1] and messages[1][1] == "finally"
    assert noop_message.startswith("job ") and "(noop) completed by" in noop_message


def test_startup_jobs_run_as_a_chain_in_the_seeds_order_and_a_cancelled_link_holds_the_rest(
    queue_db, autopilot
):
    """The runner's startup jobs wait for each other (autopilot.jobs.depends_on): each starts only after
    the one before it completed, however many slots are free; a link that is cancelled holds the rest,
    status says so, and retrying it lets the chain finish."""
    order = ["knowledge-migration", "templates-data-load", "planning-seed", "code-ingest", "graph-populate"]
    with queue_db.connect() as conn:
        for name in order:
            conn.execute("SELECT autopilot.set_job_enabled(%s, true)", [name])
    lock = threading.Lock()
    spans: dict[str, tuple[float, float]] = {}

    def make(target: str) -> Worker:
        def run(args: dict, context) -> str:
            started = time.monotonic()
            time.sleep(0.3)
            with lock:
                spans[target] = (started, time.monotonic())
            return f"{target} done"

        return Worker(target, run, 60)

    targets = [name.replace("-", "_") for name in order]
    config = RunnerConfig(
        dsn=queue_db.dsn, concurrency=5, poll_interval=0.2, heartbeat_interval=0.5, enqueue_startup_jobs=True
    )
    runner = Runner(config, workers={t: make(t) for t in targets})
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        seed = "SELECT id FROM autopilot.jobs WHERE worker = 'planning_seed'"
        wait_for(lambda: queue_db.scalar(seed) is not None, "the startup chain enqueued", timeout=30)
        assert queue_db.scalar(f"SELECT autopilot.cancel(({seed}), 'the plan file is being rewritten')")
        wait_for(lambda: len(spans) == 2, "the links before the cancelled one", timeout=30)
        time.sleep(1.0)
        assert set(spans) == {"knowledge_migration", "templates_data_load"}, "a cancelled link holds the rest"
        report = flat(autopilot("status", "--dsn", queue_db.dsn).stdout)
        assert "held" in report and "planning_seed, which was cancelled" in report
        assert queue_db.scalar(f"SELECT autopilot.retry(({seed}))")
        wait_for(lambda: len(spans) == len(targets), "the whole chain", timeout=30)
    finally:
        runner.stop()
        thread.join(timeout=30)
    ends = [spans[t] for t in targets]
    for (_, finished), (started, _) in itertools.pairwise(ends):
        assert started >= finished, "each link starts only after the one before it finished"
    assert queue_db.scalar("SELECT count(*) FROM autopilot.jobs WHERE state <> 'completed'") == 0


def test_a_workers_progress_is_in_its_jobs_meta_and_status_shows_it(queue_db, autopilot):
    (job_id,) = enqueue(queue_db, "progress", of=4, step=0.01, hold=30)
    with ThreadedRunner(queue_db.dsn):

        def reported():
            with queue_db.connect() as conn:
                meta = conn.execute("SELECT meta FROM autopilot.jobs WHERE id = %s", [job_id]).fetchone()[0]
            return meta.get("progress", {}).get("done") == 4 and meta["progress"]

        progress = wait_for(reported, "the last progress report")
        assert {k: progress[k] for k in ("done", "of", "unit")} == {"done": 4, "of": 4, "unit": "steps"}
        assert "at" in progress

        report = json.loads(autopilot("status", "--json", "--dsn", queue_db.dsn).stdout)
        (executing,) = report["executing"]
        assert (executing["id"], executing["worker"], executing["attempt"]) == (job_id, "progress", 1)
        assert executing["progress"]["done"] == 4
        table = flat(autopilot("status", "--dsn", queue_db.dsn).stdout)
        assert f"executing #{job_id} progress (attempt 1)" in table
        assert ": 4/4 steps (reported" in table
        cancel = queue_db.scalar("SELECT autopilot.cancel(%s, 'enough')", [job_id])
        assert cancel is True
    # a report of an attempt that is over changes nothing
    with queue_db.connect() as conn:
        meta = conn.execute("SELECT meta FROM autopilot.jobs WHERE id = %s", [job_id]).fetchone()[0]
    assert meta["progress"]["done"] == 4


def test_cache_cleanup_clears_the_runners_caches(queue_db):
    from pg_autopilot.workers import CACHES

    cache = {"some": "thing"}
    CACHES.append(cache)
    try:
        with queue_db.connect() as conn:
            conn.execute("SELECT * FROM autopilot.run_job('cache-cleanup')")  # enqueues, as pg_cron does
        with ThreadedRunner(queue_db.dsn, concurrency=1):
            wait_for(lambda: states(queue_db).get("completed") == 1, "cache-cleanup done")
    finally:
        CACHES.remove(cache)
    assert cache == {}


def test_worker_timeout_fails_the_attempt(queue_db):
    [job] = enqueue(queue_db, "hang", seconds=2)
    with queue_db.connect() as conn:
        conn.execute("UPDATE autopilot.jobs SET max_attempts = 1 WHERE id = %s", [job])
    with ThreadedRunner(queue_db.dsn, concurrency=2):
        wait_for(lambda: states(queue_db).get("discarded") == 1, "the timed-out job discarded")
    error = queue_db.scalar("SELECT errors -> 0 ->> 'error' FROM autopilot.jobs WHERE id = %s", [job])
    assert error == "timed out after 0.5 s (worker timeout)"


def test_notify_starts_a_job_on_an_idle_runner_at_once(queue_db):
    # polling every 30 s: only the NOTIFY can start the job quickly
    with ThreadedRunner(queue_db.dsn, concurrency=1, poll_interval=30):
        time.sleep(1.0)  # idle, listening
        [job] = enqueue(queue_db, "noop")
        wait_for(lambda: states(queue_db).get("completed") == 1, "the job done", timeout=10)
    latency = queue_db.scalar(
        "SELECT extract(epoch FROM attempted_at - inserted_at) FROM autopilot.jobs WHERE id = %s", [job]
    )
    assert latency < 1.0, f"enqueue to start took {latency:.3f} s"


def test_runner_survives_losing_its_connections(queue_db, admin_dsn, runner_events):
    """Its connections killed while idle (a database restart, a network cut): it reconnects and goes on,
    and a dead pooled connection is replaced before use (checked), not handed to a claim that then fails."""
    # polling seldom (NOTIFY wakes it), so that no query is in flight when the connections are killed
    with ThreadedRunner(queue_db.dsn, concurrency=2, poll_interval=2):
        enqueue(queue_db, "noop", 10)
        wait_for(lambda: states(queue_db).get("completed") == 10, "the first jobs done")
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'autopilot runner'",
                [queue_db.name],
            ).fetchone()[0]
        assert killed >= 2  # the pool's and the listener's
        since = len(runner_events)
        enqueue(queue_db, "noop", 10)
        wait_for(lambda: states(queue_db).get("completed") == 20, "the next jobs done after reconnecting")
    trouble = [
        e for e in runner_events[since:]
        if e["level"] in ("warning", "error") and not e["event"].startswith("listener")
    ]  # fmt: skip
    assert trouble == []


def test_cancel_reaches_a_running_worker(queue_db):
    [job] = enqueue(queue_db, "sleep", seconds=30)
    with ThreadedRunner(queue_db.dsn, concurrency=1) as runner:
        wait_for(lambda: states(queue_db).get("executing") == 1, "the job running")
        with queue_db.connect() as conn:
            assert conn.execute("SELECT autopilot.cancel(%s, 'test')", [job]).fetchone()[0]
        wait_for(lambda: runner.stats["lost"] == 1, "the runner noticing at its heartbeat", timeout=10)
    assert states(queue_db) == {"cancelled": 1}


def test_startup_jobs_are_enqueued_once_for_the_workers_this_runner_has(queue_db):
    # a runner with some of the shipped workers (and one that no catalog job uses), started twice
    workers = {name: REGISTRY[name] for name in ("code_ingest", "rag_setup", "backup", "noop")}
    for _ in range(2):
        runner = Runner(
            RunnerConfig(
                dsn=queue_db.dsn, queues=("nothing-here",), poll_interval=0.2, enqueue_startup_jobs=True
            ),
            workers=workers,
        )
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        time.sleep(0.5)
        runner.stop()
        thread.join(timeout=30)
    with queue_db.connect() as conn:
        rows = conn.execute("SELECT worker, state, depends_on FROM autopilot.jobs ORDER BY id").fetchall()
    # one job each (deduplicated by its unique key while unfinished), none for workers it lacks, in the
    # seed's chain less the links it lacks: code-ingest, then rag-setup waiting for it
    assert [(worker, state) for worker, state, _ in rows] == [
        ("code_ingest", "available"),
        ("rag_setup", "waiting"),
    ]
    assert rows[1][2] == [queue_db.scalar("SELECT id FROM autopilot.jobs WHERE worker = 'code_ingest'")]


def test_sigterm_lets_running_jobs_finish_and_claims_no_more(queue_db):
    enqueue(queue_db, "sleep", 2, seconds=1.5, record=True)
    process = spawn_runner(queue_db.dsn, "--concurrency", "2", "--grace", "20")
    try:
        wait_for(lambda: states(queue_db).get("executing") == 2, "both jobs running")
        enqueue(queue_db, "noop", 5)  # arrive after the runner stops claiming
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
    stderr = process.stderr.read()
    assert process.returncode == 0, stderr
    # both slots were busy until the stop, and after it nothing more is claimed
    assert states(queue_db) == {"completed": 2, "available": 5}
    # structured logs: one JSON object per line
    events = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    lifecycle = [e["event"] for e in events if e["event"].startswith("runner ")]
    assert lifecycle == ["runner started", "runner stopped"]
    assert sum(1 for e in events if e["event"] == "job completed") == 2
    assert all({"ts", "level", "event"} <= set(e) for e in events)
    assert queue_db.scalar("SELECT count(*) FROM public.runner_log") == 2


def test_jobs_claimed_ahead_are_given_back_on_stop(queue_db):
    """The runner claims a few jobs ahead of its free slots; stopping, it releases those it never
    started: available again, their attempt not used up (max_attempts + 1), nothing in the ledger."""
    enqueue(queue_db, "sleep", 5, seconds=1.0)
    process = spawn_runner(queue_db.dsn, "--concurrency", "1", "--grace", "20")
    try:
        wait_for(lambda: states(queue_db).get("executing") == 5, "one running, four claimed ahead")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0
    with queue_db.connect() as conn:
        rows = conn.execute(
            "SELECT state, attempt, max_attempts, count(*) FROM autopilot.jobs GROUP BY 1, 2, 3"
        ).fetchall()
        ledger = conn.execute("SELECT status, count(*) FROM autopilot.job_runs GROUP BY 1").fetchall()
    assert sorted(rows) == [("available", 1, 21, 4), ("completed", 1, 20, 1)]
    assert ledger == [("succeeded", 1)]


def test_a_runner_holds_no_more_than_its_slots_and_prefetch_while_completions_wait(queue_db):
    """Completions that cannot be recorded (here: the ledger locked) leave their jobs executing in
    the database; the runner claims no more until they are recorded, so a runner killed now would
    leave at most its slots and its prefetch to rescue, not everything it ran meanwhile."""
    enqueue(queue_db, "noop", 400)
    blocker = queue_db.connect(autocommit=False)
    try:
        blocker.execute("LOCK TABLE autopilot.job_runs IN EXCLUSIVE MODE")  # complete_many waits on it
        with ThreadedRunner(queue_db.dsn, concurrency=2, prefetch=5, max_prefetch=10):
            wait_for(lambda: states(queue_db).get("executing", 0) >= 5, "the first claims")
            time.sleep(1.5)  # quick jobs: without the cap, claims would go on through all 400
            assert states(queue_db).get("executing", 0) <= 2 + 10
            blocker.rollback()
            wait_for(lambda: states(queue_db).get("completed") == 400, "every job completed", timeout=60)
    finally:
        blocker.rollback()
        blocker.close()


def test_under_a_backlog_completions_are_recorded_in_batches_beside_the_claims(queue_db):
    """Quick jobs in a backlog: the completer records what finished while it recorded the batch before
    (one transaction, one completed_at, for many jobs), on its own connection while the claims go on;
    every job still completed once, with its run in the ledger."""
    enqueue(queue_db, "noop", 2000)
    with ThreadedRunner(queue_db.dsn, concurrency=2, prefetch=5, max_prefetch=200):
        wait_for(lambda: states(queue_db) == {"completed": 2000}, "every job completed", timeout=60)
    with queue_db.connect() as conn:
        batches = conn.execute("SELECT count(DISTINCT completed_at) FROM autopilot.jobs").fetchone()[0]
        ledger = "SELECT count(DISTINCT details ->> 'job_id') FROM autopilot.job_runs"
        runs = conn.execute(ledger).fetchone()[0]
        attempts = conn.execute("SELECT max(attempt) FROM autopilot.jobs").fetchone()[0]
    assert batches <= 2000 // 5, f"{batches} transactions recorded 2,000 completions"
    assert runs == 2000 and attempts == 1


def test_slow_jobs_are_not_claimed_ahead_and_a_freed_slot_claims_at_once(queue_db):
    """Once the runner knows its jobs are slow, it holds only the jobs it runs (the others stay available
    for other runners), and a slot that frees claims the next job at once, not at the next poll."""
    with ThreadedRunner(queue_db.dsn, concurrency=1, poll_interval=30):
        enqueue(queue_db, "sleep", seconds=0.3)  # the NOTIFY wakes it; this job teaches it the duration
        wait_for(lambda: states(queue_db) == {"completed": 1}, "the first slow job done")
        enqueue(queue_db, "sleep", 4, seconds=0.3)
        started = time.monotonic()
        seen: list[dict[str, int]] = []

        def all_done() -> bool:
            seen.append(states(queue_db))
            return seen[-1].get("completed") == 5

        wait_for(all_done, "every job done, one by one", timeout=10)
        # four jobs of 0.3 s back to back; a slot waiting for the 30 s poll would take minutes
        assert time.monotonic() - started < 8
    # at most the job running and the one before it (its completion not recorded yet): never the four
    # at once, as a runner claiming ahead would hold them
    assert max(s.get("executing", 0) for s in seen) <= 2
    assert any(s.get("available", 0) >= 2 for s in seen)


def test_sigkill_mid_jobs_loses_nothing(queue_db):
    ids = enqueue(queue_db, "sleep", 4, seconds=30)
    process = spawn_runner(queue_db.dsn, "--concurrency", "4")
    try:
        wait_for(lambda: states(queue_db).get("executing") == 4, "four jobs running")
    finally:
        process.kill()  # SIGKILL: no grace, no goodbye
        process.wait(timeout=10)
    assert states(queue_db) == {"executing": 4}

    # as if jobs.rescue_after had passed without a heartbeat
    with queue_db.connect() as conn:
        conn.execute("UPDATE autopilot.jobs SET heartbeat_at = now() - interval '1 hour'")
        conn.execute("UPDATE autopilot.jobs SET args = args || '{\"seconds\": 0.05}'")
        summary = conn.execute("SELECT autopilot.rescue_orphaned_jobs()").fetchone()[0]
    assert summary["retried"] == 4
    with ThreadedRunner(queue_db.dsn, concurrency=4):
        wait_for(lambda: states(queue_db).get("completed") == 4, "every job completed by a new runner")
    with queue_db.connect() as conn:
        runs = conn.execute(
            "SELECT (details ->> 'job_id')::bigint, status FROM autopilot.job_runs ORDER BY id"
        ).fetchall()
    assert sorted(job for job, status in runs if status == "abandoned") == sorted(ids)
    assert sorted(job for job, status in runs if status == "succeeded") == sorted(ids)


def test_two_runners_never_run_one_job_at_once(queue_db):
    enqueue(queue_db, "sleep", 120, seconds=0.02, record=True)
    first = spawn_runner(queue_db.dsn, "--concurrency", "4", "--node", "first")
    second = spawn_runner(queue_db.dsn, "--concurrency", "4", "--node", "second")
    try:
        wait_for(lambda: states(queue_db).get("completed") == 120, "every job completed", timeout=60)
    finally:
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process in (first, second):
            process.wait(timeout=30)
    with queue_db.connect() as conn:
        runs = conn.execute("SELECT job_id, count(*) FROM public.runner_log GROUP BY job_id").fetchall()
        nodes = {r[0] for r in conn.execute("SELECT DISTINCT node FROM public.runner_log").fetchall()}
    assert len(runs) == 120 and all(count == 1 for _, count in runs), "a job ran twice"
    assert nodes == {"first", "second"}, "both runners took part"


def test_fifty_concurrent_enqueues_of_one_unique_job_leave_one_row(queue_db):
    barrier = threading.Barrier(50)
    ids: list[int] = []
    lock = threading.Lock()

    def enqueue_one() -> None:
        with psycopg.connect(queue_db.dsn, autocommit=True) as conn:
            barrier.wait()
            job = conn.execute(
                "SELECT autopilot.enqueue('noop', '{}', p_unique_key => 'one-of-a-kind')"
            ).fetchone()[0]
        with lock:
            ids.append(job)

    threads = [threading.Thread(target=enqueue_one) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 50 and len(set(ids)) == 1, "every caller got the one job's id"
    assert queue_db.scalar("SELECT count(*) FROM autopilot.jobs WHERE unique_key = 'one-of-a-kind'") == 1


# -- the reviewer's findings: each test provokes the situation with a real server -------------------


def test_a_failure_whose_recording_hits_a_database_error_is_recorded_later(queue_db, admin_dsn):
    """fail() loses its connection mid-statement: the failure is kept and recorded once the database
    answers again, not dropped (the job left executing until a false timeout)."""
    [job] = enqueue(queue_db, "fail_after", seconds=1)
    with queue_db.connect() as conn:
        conn.execute("UPDATE autopilot.jobs SET max_attempts = 1 WHERE id = %s", [job])
    with (
        ThreadedRunner(queue_db.dsn, concurrency=1, heartbeat_interval=30),
        psycopg.connect(admin_dsn, autocommit=True) as admin,
    ):
        wait_for(lambda: states(queue_db).get("executing") == 1, "the job running")
        with queue_db.connect(autocommit=False) as locker:
            # the job's row locked: recording the failure waits, and its connection is cut meanwhile
            locker.execute("SELECT 1 FROM autopilot.jobs WHERE id = %s FOR UPDATE", [job])
            waiting = wait_for(
                lambda: backends(
                    admin, queue_db, "wait_event_type = 'Lock' AND query LIKE 'SELECT autopilot.fail(%%'"
                ),
                "fail() waiting for the row lock",
            )
            terminate(admin, waiting)
            wait_for(lambda: not backends(admin, queue_db, f"pid = {waiting[0]}"), "the connection gone")
            locker.rollback()
        wait_for(lambda: states(queue_db) == {"discarded": 1}, "the failure recorded", timeout=10)
    error = queue_db.scalar("SELECT errors -> 0 ->> 'error' FROM autopilot.jobs WHERE id = %s", [job])
    assert error == "RuntimeError: failing on purpose"


def test_a_worker_stuck_past_its_timeout_makes_the_runner_give_back_what_it_cannot_start(queue_db):
    """Its only slot thread stuck in a timed-out worker, the runner claims nothing (it could not start it)
    and gives back what it had claimed ahead; once the thread is free it goes on."""
    [hung] = enqueue(queue_db, "hang", seconds=6)  # timeout 0.5 s, ignores the cancellation
    with queue_db.connect() as conn:
        conn.execute("UPDATE autopilot.jobs SET max_attempts = 1 WHERE id = %s", [hung])
    with ThreadedRunner(queue_db.dsn, concurrency=1):
        wait_for(lambda: states(queue_db).get("executing") == 1, "the job running")
        enqueue(queue_db, "noop", 3)
        wait_for(
            lambda: states(queue_db) == {"discarded": 1, "available": 3},
            "the timed-out job failed, and the others not held while its thread is stuck",
            timeout=4,
        )
        wait_for(lambda: states(queue_db).get("completed") == 3, "the others done once the thread is free")


def test_a_job_cancelled_and_retried_while_its_old_attempt_still_runs(queue_db, admin_dsn):
    """State is per attempt: the old attempt (cancelled, its worker deaf to it) neither keeps the new
    attempt from starting nor, finishing, takes the new attempt's place (its heartbeats go on)."""
    [job] = enqueue(queue_db, "stubborn", seconds=4, record=True)
    with ThreadedRunner(queue_db.dsn, concurrency=2, heartbeat_interval=0.3) as runner:
        wait_for(lambda: states(queue_db).get("executing") == 1, "the first attempt running")
        with queue_db.connect() as conn:
            assert conn.execute("SELECT autopilot.cancel(%s, 'test')", [job]).fetchone()[0]
            wait_for(lambda: runner.stats["lost"] == 1, "the runner noticing at its heartbeat")
            assert conn.execute("SELECT autopilot.retry(%s)", [job]).fetchone()[0]
        wait_for(
            lambda: queue_db.scalar(
                "SELECT attempt = 2 AND state = 'executing' FROM autopilot.jobs WHERE id = %s", [job]
            ),
            "the second attempt claimed",
        )
        wait_for(
            lambda: queue_db.scalar("SELECT count(*) FROM public.runner_log") == 1,
            "the first attempt's worker done (its outcome ignored)",
        )
        assert queue_db.scalar("SELECT node FROM public.runner_log").endswith(" attempt 1")
        at = queue_db.scalar("SELECT clock_timestamp()")
        wait_for(
            lambda: queue_db.scalar("SELECT heartbeat_at > %s FROM autopilot.jobs WHERE id = %s", [at, job]),
            "the second attempt still heartbeaten",
        )
        wait_for(lambda: states(queue_db) == {"completed": 1}, "the second attempt completed")
    assert queue_db.scalar("SELECT attempt FROM autopilot.jobs WHERE id = %s", [job]) == 2


def test_claimed_jobs_start_in_priority_order(queue_db):
    with queue_db.connect() as conn:
        jobs = [
            {"worker": "sleep", "priority": p, "args": {"seconds": 0.02, "record": True}}
            for p in (9, 7, 5, 3, 1)
        ]
        ids = [r[0] for r in conn.execute("SELECT autopilot.enqueue_many(%s)", [json.dumps(jobs)]).fetchall()]
    with ThreadedRunner(queue_db.dsn, concurrency=1):
        wait_for(lambda: states(queue_db).get("completed") == 5, "every job done")
    with queue_db.connect() as conn:
        started = [
            r[0] for r in conn.execute("SELECT job_id FROM public.runner_log ORDER BY started").fetchall()
        ]
    assert started == ids[::-1], "priority 1 first, 9 last"


# an extension upgrade that changes the columns claim() returns (here: one more)
CLAIM_WITH_A_NEW_COLUMN = """
ALTER FUNCTION autopilot.claim(text, text, integer) RENAME TO claim_before;
CREATE FUNCTION autopilot.claim(p_queue text, p_node text, p_limit integer DEFAULT 1)
RETURNS TABLE (
    note text, id bigint, queue text, worker text, args jsonb, attempt integer, max_attempts integer,
    priority smallint, scheduled_at timestamptz, unique_key text, meta jsonb
)
LANGUAGE sql
AS $$
    SELECT 'new', c.id, c.queue, c.worker, c.args, c.attempt, c.max_attempts, c.priority, c.scheduled_at,
        c.unique_key, c.meta
    FROM autopilot.claim_before(p_queue, p_node, p_limit) AS c
$$;
"""


def test_runner_goes_on_when_claim_changes_its_columns(queue_db):
    """An extension upgrade changes what claim() returns while the runner runs (a new column, another
    order): a prepared `SELECT * FROM autopilot.claim(...)` would fail with 0A000 (cached plan must not
    change result type). The runner's claim names the columns it reads, so its prepared statement is
    planned again with the same result type and the runner goes on without an error."""
    with ThreadedRunner(queue_db.dsn, concurrency=1, poll_interval=0.05):
        enqueue(queue_db, "noop")
        wait_for(lambda: states(queue_db).get("completed") == 1, "the first job done")
        time.sleep(1.5)  # idle polls: psycopg prepares a query from its 5th execution on a connection
        with queue_db.connect() as conn:
            conn.execute(CLAIM_WITH_A_NEW_COLUMN)
        enqueue(queue_db, "noop")
        wait_for(lambda: states(queue_db).get("completed") == 2, "the next job done", timeout=10)


def test_every_queue_makes_progress(queue_db):
    """A backlog in one queue does not starve the next one."""
    enqueue(queue_db, "sleep", 100, seconds=0.2)
    [backup] = enqueue(queue_db, "noop", queue="backups")
    with ThreadedRunner(queue_db.dsn, concurrency=2, queues=("default", "backups")):
        wait_for(
            lambda: (
                queue_db.scalar("SELECT state FROM autopilot.jobs WHERE id = %s", [backup]) == "completed"
            ),
            "the backups job done",
            timeout=4,
        )
        assert states(queue_db).get("available", 0) > 0, "while the default queue still has a backlog"


def test_a_completion_the_database_refuses_is_not_logged_as_completed(queue_db, admin_dsn, runner_events):
    """A job cancelled while its completion is being recorded: complete_many leaves it alone, and the
    runner neither logs nor counts it as completed."""
    [job] = enqueue(queue_db, "pause", seconds=0.5)
    with (
        ThreadedRunner(queue_db.dsn, concurrency=1, heartbeat_interval=30) as runner,
        psycopg.connect(admin_dsn, autocommit=True) as admin,
    ):
        wait_for(lambda: states(queue_db).get("executing") == 1, "the job running")
        with queue_db.connect(autocommit=False) as locker:
            locker.execute("SELECT 1 FROM autopilot.jobs WHERE id = %s FOR UPDATE", [job])
            wait_for(
                lambda: backends(
                    admin, queue_db, "wait_event_type = 'Lock' AND query LIKE '%%complete_many%%'"
                ),
                "complete_many waiting for the row lock",
            )
            assert locker.execute("SELECT autopilot.cancel(%s, 'test')", [job]).fetchone()[0]
            locker.commit()
        wait_for(lambda: runner.stats["lost"] == 1, "the refused completion noticed")
    assert runner.stats["completed"] == 0
    assert [e for e in runner_events if e["event"] == "job completed"] == []
    assert states(queue_db) == {"cancelled": 1}


def test_a_result_that_cannot_be_printed_does_not_stop_completions(queue_db, runner_events):
    [odd] = enqueue(queue_db, "unprintable")
    enqueue(queue_db, "noop", 3)
    with ThreadedRunner(queue_db.dsn, concurrency=1):
        wait_for(lambda: states(queue_db).get("completed") == 4, "every job done", timeout=10)
    [done] = [e for e in runner_events if e["event"] == "job completed" and e["job_id"] == odd]
    assert "ValueError" in done["result"]


def test_a_flood_of_signals_does_not_hang_the_runner(queue_db):
    """SIGTERM handled without taking a lock in the signal handler: a storm of them (a supervisor
    insisting) while the runner works and drains must not deadlock it."""
    enqueue(queue_db, "sleep", 2, seconds=3)
    process = spawn_runner(queue_db.dsn, "--concurrency", "2", "--grace", "20")
    try:
        wait_for(lambda: states(queue_db).get("executing") == 2, "both jobs running")
        until = time.monotonic() + 1.5  # less than the jobs' 3 s: the storm ends before the runner does
        while time.monotonic() < until and process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, process.stderr.read()
    assert states(queue_db) == {"completed": 2}


def test_listener_backs_off_while_the_database_refuses_connections(queue_db, admin_dsn, runner_events):
    with (
        ThreadedRunner(queue_db.dsn, concurrency=1, poll_interval=0.01),
        psycopg.connect(admin_dsn, autocommit=True) as admin,
    ):
        wait_for(lambda: backends(admin, queue_db, "query = 'LISTEN autopilot_jobs'"), "the listener up")
        admin.execute(f'ALTER DATABASE "{queue_db.name}" ALLOW_CONNECTIONS false')
        try:
            terminate(admin, backends(admin, queue_db))
            since = len(runner_events)
            time.sleep(3)  # three seconds of refused connections
        finally:
            admin.execute(f'ALTER DATABASE "{queue_db.name}" ALLOW_CONNECTIONS true')
        attempts = [e for e in runner_events[since:] if e["event"].startswith("listener lost")]
        assert 1 <= len(attempts) <= 3, f"{len(attempts)} reconnection attempts in 3 s"
        enqueue(queue_db, "noop")
        wait_for(lambda: states(queue_db).get("completed") == 1, "the runner back at work", timeout=30)


def test_runner_start_with_a_bad_dsn_says_why_at_once(queue_db):
    started = time.monotonic()
    result = run_subprocess(
        "runner", "start", "--no-startup-jobs", "--dsn", make_conninfo(queue_db.dsn, user="no_such_role")
    )
    assert time.monotonic() - started < 15
    assert result.returncode == 1
    # said as the runner says everything: one JSON object per line
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    failed = events[-1]
    assert (failed["event"], failed["level"]) == ("runner failed", "error"), failed
    assert 'role "no_such_role" does not exist' in flat(failed["error"]), failed
    assert failed["hint"], failed


def test_every_line_the_runner_writes_is_json_through_a_server_restart():
    """A real runner process whose server restarts: psycopg_pool's warnings about the connections it
    lost and cannot make (multi-line libpq messages) are JSON lines like the runner's own, and so is
    everything else the process writes on stderr."""
    cluster = Cluster.create(pg_cron=False)  # a server of its own: the test restarts it
    lines: list[str] = []
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE runner_restart")
        database = Database(cluster.dsn(), "runner_restart")
        database.install("extension")
        process = spawn_runner(database.dsn, "--concurrency", "2", "--grace", "5")
        reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
        reader.start()
        try:
            enqueue(database, "noop")
            wait_for(lambda: states(database).get("completed") == 1, "the runner at work")
            cluster.stop()
            time.sleep(4)  # the pool and the listener try to reconnect, and fail
            cluster.start()
            enqueue(database, "noop")
            wait_for(lambda: states(database).get("completed") == 2, "the runner back at work", timeout=60)
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        finally:
            process.kill()
            reader.join(timeout=10)
    finally:
        cluster.destroy()
    assert process.returncode == 0, "".join(lines)
    events = []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r} (of {len(lines)})")
    assert all({"ts", "level", "event", "logger"} <= set(e) for e in events)
    pool_warnings = [e for e in events if e["logger"].startswith("psycopg.pool") and e["level"] == "warning"]
    assert pool_warnings, [e["event"] for e in events]
    assert any("\n" in e["event"] for e in pool_warnings), "a multi-line message is kept whole, in one line"
    lifecycle = [e["event"] for e in events if e["event"].startswith("runner ")]
    assert lifecycle == ["runner started", "runner stopped"]
