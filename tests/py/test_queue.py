"""The queue client (pg_autopilot.queue): the runner's policies as pure functions, without a server,
and the client's calls against a real database. (The SQL functions themselves: tests/sql/; the
runner that uses the client: test_runner.py.)"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from helpers import wait_for

from pg_autopilot.db import connect
from pg_autopilot.queue import (
    Job,
    QueueClient,
    backoff,
    claim_ahead,
    claim_round,
    latest_attempts,
    superseded,
)

# -- policies ---------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n, 10.0) for n in range(0, 7)] == [1.0, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff(10_000, 30.0) == 30.0  # no overflow however many failures


def test_claim_ahead_keeps_the_slots_busy_for_the_horizon_and_never_ahead_of_slow_jobs():
    # nothing finished yet: the configured prefetch
    assert claim_ahead(None, concurrency=10, prefetch=10, max_prefetch=200) == 10
    # 1 ms jobs on 10 slots: 500 in 50 ms, capped at max_prefetch
    assert claim_ahead(0.001, concurrency=10, prefetch=10, max_prefetch=200) == 200
    # 10 ms jobs: 50 in 50 ms
    assert claim_ahead(0.010, concurrency=10, prefetch=10, max_prefetch=200) == 50
    # a job of a second or an hour: none ahead
    assert claim_ahead(1.0, concurrency=10, prefetch=10, max_prefetch=200) == 0
    assert claim_ahead(3600.0, concurrency=10, prefetch=10, max_prefetch=200) == 0
    # a zero duration does not divide by zero
    assert claim_ahead(0.0, concurrency=2, prefetch=10, max_prefetch=200) == 200


class Backlog:
    """Queues holding ``jobs`` due jobs each; claim() takes from them and records each call."""

    def __init__(self, **jobs: int):
        self.left = dict(jobs)
        self.calls: list[tuple[str, int]] = []

    def claim(self, queue: str, limit: int) -> int:
        got = min(limit, self.left.get(queue, 0))
        self.left[queue] = self.left.get(queue, 0) - got
        self.calls.append((queue, limit))
        return got


def never() -> bool:
    return False


def test_claim_round_shares_among_queues_so_a_backlog_never_starves_another():
    backlog = Backlog(default=10_000, backups=3)
    assert claim_round(["default", "backups"], 0, 10, backlog.claim, never) == 10
    # each queue is offered its share; what backups could not use goes back to default
    assert backlog.calls == [("default", 5), ("backups", 5), ("default", 2)]
    assert backlog.left == {"default": 10_000 - 7, "backups": 0}


def test_claim_round_gives_the_first_share_to_each_queue_in_turn():
    firsts = []
    for turn in range(4):
        backlog = Backlog(a=100, b=100, c=100)
        claim_round(["a", "b", "c"], turn, 1, backlog.claim, never)
        firsts.append(backlog.calls[0][0])
    assert firsts == ["a", "b", "c", "a"]


def test_claim_round_rounds_shares_up_and_stops_when_wanted_or_stopping():
    backlog = Backlog(a=100, b=100, c=100)
    assert claim_round(["a", "b", "c"], 0, 4, backlog.claim, never) == 4
    assert backlog.calls == [("a", 2), ("b", 1), ("c", 1)]
    assert claim_round(["a", "b"], 0, 0, Backlog(a=1).claim, never) == 0
    assert claim_round([], 0, 5, Backlog().claim, never) == 0
    stopping = Backlog(a=100, b=100)
    assert claim_round(["a", "b"], 0, 10, stopping.claim, lambda: True) == 0
    assert stopping.calls == []


def test_latest_attempts_keeps_the_later_attempt_of_a_job():
    assert latest_attempts([(1, 1), (2, 3), (1, 2), (2, 1)]) == {1: 2, 2: 3}
    assert latest_attempts([]) == {}


def test_a_newer_claim_of_a_job_supersedes_the_attempt_held():
    held = [Job(1, 1, "w", "q"), Job(2, 1, "w", "q"), Job(3, 2, "w", "q")]
    claimed = [Job(1, 2, "w", "q"), Job(3, 2, "w", "q"), Job(4, 1, "w", "q")]
    assert [job.key for job in superseded(held, claimed)] == [(1, 1)]


def test_a_job_from_a_claimed_row():
    row = {
        "id": 7, "attempt": 2, "worker": "backup", "queue": "backups", "args": {"kind": "daily"},
        "priority": 1, "max_attempts": 5, "unique_key": "catalog:backup-daily", "meta": {"catalog": "x"},
        "scheduled_at": datetime(2026, 12, 4, tzinfo=UTC), "state": "executing", "errors": [],
    }  # fmt: skip
    job = Job.from_row(row)
    assert job.key == (7, 2)
    assert (job.worker, job.queue, job.args, job.priority, job.max_attempts) == (
        "backup",
        "backups",
        {"kind": "daily"},
        1,
        5,
    )
    assert (job.unique_key, job.meta) == ("catalog:backup-daily", {"catalog": "x"})


# -- the client against a database ------------------------------------------------------------------


@pytest.fixture
def client(installed_db):
    @contextmanager
    def connection():
        with connect(installed_db.dsn, autocommit=True) as conn:
            yield conn

    installed_db.scalar("SELECT autopilot.set_setting('jobs.backoff_base', '0')")
    return QueueClient(connection)


def test_claim_returns_typed_jobs_in_run_order(client):
    later = client.enqueue("w", {"n": 1}, queue="q", priority=5)
    first = client.enqueue("w", {"n": 2}, queue="q", priority=0)
    client.enqueue("w", queue="q", scheduled_at=datetime.now(UTC) + timedelta(hours=1))  # not due
    client.enqueue("w", queue="other")
    jobs = client.claim("q", "node-a", 10)
    assert [job.id for job in jobs] == [first, later]
    assert jobs[0] == Job(first, 1, "w", "q", {"n": 2}, 0, 20, None, {}, jobs[0].scheduled_at)
    assert client.claim("q", "node-b", 10) == []


def test_enqueue_with_a_unique_key_returns_the_unfinished_job(client):
    one = client.enqueue("w", queue="q", unique_key="k")
    assert client.enqueue("w", {"other": True}, queue="q", unique_key="k") == one
    (job,) = client.claim("q", "n", 5)
    assert client.complete_many([job.key]) is None
    assert client.enqueue("w", queue="q", unique_key="k") != one  # the key is free once the job finished


def test_complete_many_says_which_attempts_were_still_this_runners(client, installed_db):
    ids = [client.enqueue("w", {"i": i}, queue="q") for i in range(3)]
    jobs = client.claim("q", "n", 3)
    installed_db.scalar("SELECT autopilot.cancel(%s, 'changed my mind')", [ids[1]])
    done = client.complete_many([job.key for job in jobs])
    assert done == {(ids[0], 1), (ids[2], 1)}
    assert client.complete_many([]) is None


def test_fail_retries_then_discards_and_ignores_a_lost_attempt(client):
    job_id = client.enqueue("w", queue="q", max_attempts=2)
    (job,) = client.claim("q", "n", 1)
    assert client.fail(job.key, "boom") == "retryable"
    assert client.fail(job.key, "boom again") is None  # that attempt is over
    (job,) = client.claim("q", "n", 1)
    assert job.attempt == 2
    assert client.fail(job.key, "boom", discard=False) == "discarded"  # max_attempts reached
    assert job.id == job_id


def test_heartbeat_keeps_this_nodes_attempts_and_release_gives_back_unstarted_ones(client, installed_db):
    ids = [client.enqueue("w", queue="q") for _ in range(3)]
    jobs = client.claim("q", "n", 3)
    installed_db.scalar("SELECT autopilot.cancel(%s, 'no')", [ids[0]])
    assert client.heartbeat({job.id: job.attempt for job in jobs}, "n") == {ids[1], ids[2]}
    assert client.heartbeat({ids[1]: 1}, "another node") == set()
    assert client.release([jobs[1].key, jobs[2].key]) == 2
    assert installed_db.scalar(
        "SELECT count(*) FROM autopilot.jobs WHERE id = ANY(%s) AND state = 'available'", [ids[1:]]
    ) == 2  # fmt: skip


def test_startup_jobs_for_the_workers_a_runner_has(client, installed_db):
    installed_db.scalar("SELECT autopilot.set_job_enabled('rag-setup', true)")
    first = client.enqueue_startup_jobs(["code_ingest", "rag_setup", "backup", "no-such-worker"])
    # only enabled startup jobs (not backup), only for the workers named, with the catalog's unique
    # keys, in the seed's chain: rag-setup waits for code-ingest (graph-populate, not named, is left out)
    ingest = first[0][1]
    assert first == [("code-ingest", ingest, None), ("rag-setup", first[1][1], ingest)]
    assert client.enqueue_startup_jobs(["rag_setup", "code_ingest"]) == first  # no second copy
    assert installed_db.scalar(
        "SELECT array_agg(unique_key || ' ' || state ORDER BY unique_key) FROM autopilot.jobs"
    ) == ["catalog:code-ingest available", "catalog:rag-setup waiting"]  # fmt: skip


@pytest.mark.parametrize("first", ["enqueue", "complete"])
def test_a_dependency_completing_as_its_dependent_is_enqueued_never_strands_it(client, installed_db, first):
    """The dependent's enqueue and the dependency's completion, each in a transaction held open while
    the other starts: whichever commits first, the dependent ends up available (never waiting for a
    job that has completed)."""
    dependency = client.enqueue("w", queue="q")
    (job,) = client.claim("q", "n", 1)
    dependent: list[int] = []

    def complete() -> None:
        client.complete_many([job.key])

    def enqueue() -> None:
        dependent.append(client.enqueue("w", queue="q", depends_on=[dependency]))

    with connect(installed_db.dsn) as holder:  # a transaction, held open
        if first == "enqueue":
            sql = "SELECT autopilot.enqueue('w', p_queue => 'q', p_depends_on => %s)"
            dependent.append(holder.execute(sql, [[dependency]]).fetchone()[0])
            other = threading.Thread(target=complete)
        else:
            holder.execute("SELECT autopilot.complete(%s, %s)", [job.id, job.attempt])
            other = threading.Thread(target=enqueue)
        other.start()
        other.join(timeout=1)
        assert other.is_alive(), "the second transaction waits for the first one's lock"
        holder.commit()
    other.join(timeout=10)
    assert not other.is_alive()
    assert installed_db.scalar("SELECT state FROM autopilot.jobs WHERE id = %s", [dependency]) == "completed"
    assert installed_db.scalar("SELECT state FROM autopilot.jobs WHERE id = %s", dependent) == "available"


def test_held_lists_the_waiting_jobs_a_discarded_dependency_holds(client, installed_db):
    dependency = client.enqueue("w", queue="q", max_attempts=1)
    dependent = client.enqueue("v", queue="q", depends_on=[dependency])
    assert client.held() == []  # waiting, but for a job that may still complete
    (job,) = client.claim("q", "n", 1)
    assert client.fail(job.key, "broken") == "discarded"
    assert client.held() == [
        {
            "id": dependent,
            "worker": "v",
            "catalog": None,
            "blocker_id": dependency,
            "blocker_worker": "w",
            "blocker_state": "discarded",
        }
    ]


def test_heartbeat_and_complete_many_lock_jobs_in_id_order(client, installed_db):
    """A runner's heartbeat over thousands of executing jobs is a seq scan (heap order) while a batch
    of completions is an index scan: unless both lock in id order, they deadlock. Here the heap order
    is made to differ from the id order, the heartbeat is forced onto a seq scan, and the first job
    is held by another session: the heartbeat must wait on it before locking any other row."""
    ids = [client.enqueue("w", queue="q") for _ in range(3)]
    jobs = client.claim("q", "n", 3)
    first, last = min(ids), max(ids)
    with installed_db.connect() as conn:
        # a new version of the first job's row: in heap order it now comes after the others
        conn.execute("UPDATE autopilot.jobs SET meta = '{\"moved\": true}' WHERE id = %s", [first])

    holder = installed_db.connect(autocommit=False)
    beating = installed_db.connect()
    try:
        holder.execute("SELECT 1 FROM autopilot.jobs WHERE id = %s FOR UPDATE", [first])
        beating.execute("SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_tidscan = off")
        beat = threading.Thread(
            target=lambda: beating.execute(
                "SELECT autopilot.heartbeat(%s, %s, 'n')", [[j.id for j in jobs], [j.attempt for j in jobs]]
            ).fetchall()
        )
        beat.start()
        wait_for(
            lambda: installed_db.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'SELECT autopilot.heartbeat%%'"
            ),
            "the heartbeat to wait for the first job",
        )
        with installed_db.connect() as other:  # the last job is not locked by the waiting heartbeat
            other.execute("SELECT 1 FROM autopilot.jobs WHERE id = %s FOR UPDATE NOWAIT", [last])
    finally:
        holder.rollback()
        holder.close()
    beat.join(timeout=10)
    assert not beat.is_alive()
    beating.close()


def test_complete_many_locks_jobs_in_id_order_whatever_the_plan(client, installed_db):
    """As heartbeat(): complete_many forced onto a seq scan, with the heap order differing from the id
    order and the first job held by another session, waits on it before locking any other row."""
    ids = [client.enqueue("w", queue="q") for _ in range(3)]
    jobs = client.claim("q", "n", 3)
    first, last = min(ids), max(ids)
    with installed_db.connect() as conn:
        conn.execute("UPDATE autopilot.jobs SET meta = '{\"moved\": true}' WHERE id = %s", [first])
    holder = installed_db.connect(autocommit=False)
    completing = installed_db.connect()
    try:
        holder.execute("SELECT 1 FROM autopilot.jobs WHERE id = %s FOR UPDATE", [first])
        completing.execute("SET enable_indexscan = off; SET enable_bitmapscan = off")
        completing.execute("SET enable_tidscan = off")
        thread = threading.Thread(
            target=lambda: completing.execute(
                "SELECT autopilot.complete_many(%s, %s)", [[j.id for j in jobs], [j.attempt for j in jobs]]
            ).fetchall()
        )
        thread.start()
        wait_for(
            lambda: installed_db.scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE 'SELECT autopilot.complete_many%%'"
            ),
            "complete_many to wait for the first job",
        )
        with installed_db.connect() as other:
            other.execute("SELECT 1 FROM autopilot.jobs WHERE id = %s FOR UPDATE NOWAIT", [last])
    finally:
        holder.rollback()
        holder.close()
    thread.join(timeout=10)
    assert not thread.is_alive()
    completing.close()
    assert installed_db.scalar("SELECT count(*) FROM autopilot.jobs WHERE state = 'completed'") == 3


# -- NOTIFY autopilot_jobs: what wakes an idle runner -------------------------------------------------


KEYED = "SELECT autopilot.enqueue('w', p_queue => 'q2', p_unique_key => 'k')"


def _heard(listener: psycopg.Connection) -> list[str]:
    """The payloads (queues) of the autopilot_jobs notifications delivered so far."""
    return [n.payload for n in listener.notifies(timeout=0.3) if n.channel == "autopilot_jobs"]


def test_the_functions_that_add_jobs_announce_those_ready_now_at_commit(installed_db):
    with (
        connect(installed_db.dsn, autocommit=True) as listener,
        connect(installed_db.dsn) as conn,
    ):
        listener.execute("LISTEN autopilot_jobs")

        conn.execute("SELECT autopilot.enqueue('w', p_queue => 'q1')")
        assert _heard(listener) == [], "nothing before the commit"
        conn.commit()
        assert _heard(listener) == ["q1"]

        # not ready now, or not added: nothing to announce
        conn.execute("SELECT autopilot.enqueue('w', p_queue => 'q1', p_scheduled_at => now() + '1 hour')")
        keyed = conn.execute(KEYED).fetchone()[0]
        conn.commit()
        assert _heard(listener) == ["q2"]
        again = conn.execute(KEYED).fetchone()[0]
        conn.commit()
        assert again == keyed
        assert _heard(listener) == [], "a key already held adds no job and announces none"

        # a batch: one notification per queue that got a job ready now; the ids in the batch's order
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT * FROM autopilot.enqueue_many(%s::jsonb)",
                [
                    '[{"worker": "w", "queue": "a"}, {"worker": "w", "queue": "b"},'
                    ' {"worker": "w", "queue": "a"},'
                    ' {"worker": "w", "queue": "later", "scheduled_at": "2999-01-01T00:00:00Z"},'
                    ' {"worker": "w", "queue": "q2", "unique_key": "k"}]'
                ],
            )
        ]
        conn.commit()
        assert sorted(_heard(listener)) == ["a", "b"]
        queues = conn.execute(
            "SELECT queue FROM autopilot.jobs WHERE id = ANY(%s) ORDER BY id", [ids]
        ).fetchall()
        assert ids == sorted(ids) and [q for (q,) in queues] == ["a", "b", "a", "later"]

        # a job rolled back is never announced
        conn.execute("SELECT autopilot.enqueue('w', p_queue => 'gone')")
        conn.rollback()
        assert _heard(listener) == []


def test_a_catalog_job_enqueued_by_pg_cron_is_announced(installed_db):
    with connect(installed_db.dsn, autocommit=True) as listener, connect(installed_db.dsn) as conn:
        listener.execute("LISTEN autopilot_jobs")
        queue = conn.execute("SELECT queue FROM autopilot.job_catalog WHERE name = 'code-ingest'").fetchone()[
            0
        ]
        conn.execute("SELECT autopilot._enqueue_catalog_job('code-ingest')")
        conn.commit()
        assert _heard(listener) == [queue]
        conn.execute("SELECT autopilot._enqueue_catalog_job('code-ingest')")  # still pending: not added
        conn.commit()
        assert _heard(listener) == []
