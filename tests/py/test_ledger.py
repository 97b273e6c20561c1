"""The runner's ledger, without a server: every attempt in one place, decided once."""

from __future__ import annotations

import threading
import time

import pytest

from pg_autopilot.queue import Job
from pg_autopilot.runner.ledger import Ledger, Outcome, Running
from pg_autopilot.workers import JobContext, Worker

NOOP = Worker("noop", lambda args, context: None, timeout=5.0)


def job(job_id: int, attempt: int = 1) -> Job:
    return Job(id=job_id, attempt=attempt, worker="noop", queue="default")


def begin(job: Job) -> Running:
    context = JobContext(
        job_id=job.id, attempt=job.attempt, queue=job.queue, node="n", dsn="", deadline=time.monotonic() + 5
    )
    return Running(job, NOOP, context, time.monotonic())


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(concurrency=2, prefetch=3, max_prefetch=10)


def start(ledger: Ledger) -> Running:
    running, _ = ledger.next_job(threading.Event(), begin)
    assert running is not None
    return running


def test_want_counts_free_slots_prefetch_and_what_is_held(ledger: Ledger) -> None:
    assert ledger.want() == 2 + 3  # two free slots, three ahead before any job has finished
    ledger.add_claimed([job(1), job(2), job(3)])
    assert ledger.want() == 2
    running = start(ledger)
    assert ledger.want() == 2  # one slot busy, one job fewer pending
    completer: list[Outcome] = []
    assert ledger.succeeded(Outcome(running), completer.append)
    ledger.slot_free(running)
    # finished but not recorded: still executing in the database, so it still counts
    assert ledger.held() == {1: 1, 2: 1, 3: 1}
    before = ledger.want()
    ledger.completions_recorded(completer, None)
    assert ledger.want() == before + 1
    assert ledger.held() == {2: 1, 3: 1}
    assert ledger.stats["completed"] == 1


def test_an_attempt_is_decided_once_timeout_before_success(ledger: Ledger) -> None:
    ledger.add_claimed([job(1)])
    running = start(ledger)
    assert ledger.expire(running.context.deadline + 1) == 1
    assert running.taken and running.context.cancelled.is_set()
    completer: list[Outcome] = []
    assert not ledger.succeeded(Outcome(running), completer.append)  # too late: ignored
    assert completer == []
    [failure] = ledger.failures_due(time.monotonic())
    assert "timed out after 5 s" in failure.error
    # its slot thread stays busy (stuck) until the worker returns
    assert ledger.want() == 1 + 3 - 1
    assert ledger.slot_free(running) is True


def test_every_slot_stuck_gives_back_what_was_claimed_ahead(ledger: Ledger) -> None:
    ledger.add_claimed([job(1), job(2), job(3), job(4)])
    first, second = start(ledger), start(ledger)
    ledger.expire(max(first.context.deadline, second.context.deadline) + 1)
    assert ledger.want() == 0
    assert ledger.give_back_if_stuck() == 2
    assert [j.id for j in ledger.to_release()] == [3, 4]
    ledger.released(ledger.to_release())
    assert ledger.to_release() == []


def test_lose_takes_running_and_pending_attempts(ledger: Ledger) -> None:
    ledger.add_claimed([job(1), job(2)])
    running = start(ledger)
    lost = ledger.lose([(1, 1), (2, 1), (9, 1)])
    assert sorted((item.job.id, item.started) for item in lost) == [(1, True), (2, False)]
    assert running.taken and ledger.stats["lost"] == 2
    assert ledger.held() == {}


def test_a_job_claimed_again_supersedes_the_attempt_held(ledger: Ledger) -> None:
    ledger.add_claimed([job(1, attempt=1)])
    running = start(ledger)
    lost = ledger.add_claimed([job(1, attempt=2)])
    assert [(item.job.attempt, item.started) for item in lost] == [(1, True)]
    assert running.taken
    assert ledger.held() == {1: 2}


def test_failures_wait_for_their_retry_time_and_count_by_state(ledger: Ledger) -> None:
    ledger.add_claimed([job(1), job(2)])
    first, second = start(ledger), start(ledger)
    assert ledger.failed(Outcome(first, error="boom"))
    assert ledger.failed(Outcome(second, error="gone", discard=True))
    due = ledger.failures_due(time.monotonic())
    due[0].retry_at = time.monotonic() + 60
    assert ledger.failures_due(time.monotonic()) == due[1:]
    ledger.failure_recorded(due[1], "discarded")
    ledger.failure_recorded(due[0], None)
    assert ledger.stats == {"completed": 0, "failed": 0, "discarded": 1, "lost": 1}
    assert not ledger.holding()


def test_next_job_returns_nothing_once_stopping(ledger: Ledger) -> None:
    stopping = threading.Event()
    stopping.set()
    ledger.add_claimed([job(1)])
    assert ledger.next_job(stopping, begin) == (None, False)
    assert ledger.give_back_all() == 1
    assert ledger.leftover() == {"running": [], "failure_not_recorded": [], "not_released": [1]}
