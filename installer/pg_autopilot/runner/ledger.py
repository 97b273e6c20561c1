"""The ledger: the one owner of every job attempt the runner holds, and of the slot counts.

Each attempt, (job id, attempt), is in exactly one place at a time::

    claimed ──► pending ──► running ──► completing ──► (complete_many recorded: gone)
                   │            ├─────► failing ─────► (fail recorded: gone)
                   │            └─────► taken (timed out / cancelled / rescued: outcome ignored)
                   └──────────────────► releasing ───► (release recorded: gone)

and whoever decides an attempt's fate -- its worker finishing, its timeout, the heartbeat finding it
gone, a claim that returns it again -- decides it here, under the ledger's lock, once. Every public
method takes the lock itself (none expects its caller to hold it) and does no I/O under it: the
threads around it (slots, completer, heartbeat, the main loop) talk to the database, the ledger only
keeps the books.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..queue import Job, Key, claim_ahead, latest_attempts, superseded
from ..workers import JobContext, Worker


@dataclass(eq=False)
class Running:
    """An attempt a slot thread has started."""

    job: Job
    worker: Worker | None
    context: JobContext
    started: float
    # the runner no longer waits for this attempt's outcome (timed out, cancelled, rescued, claimed
    # again): set once, by the ledger; its slot thread may still be in the worker
    taken: bool = False

    @property
    def key(self) -> Key:
        return self.job.key


@dataclass(eq=False)
class Outcome:
    """How an attempt ended, kept until the database has it."""

    running: Running
    error: str | None = None  # None: succeeded
    discard: bool = False
    result: str | None = None  # the worker's result as text (made in the slot thread, truncated)
    finished: float = field(default_factory=time.monotonic)
    tries: int = 0  # attempts to record it that failed
    retry_at: float = 0.0  # time.monotonic() before which it is not tried again

    @property
    def job(self) -> Job:
        return self.running.job

    @property
    def duration_ms(self) -> float:
        return round((self.finished - self.running.started) * 1000, 1)


@dataclass(frozen=True)
class Lost:
    """An attempt the runner gave up because the database no longer gives it to this node."""

    job: Job
    started: bool  # its worker had started (and is told to stop), or it was only claimed


class Ledger:
    def __init__(self, concurrency: int, prefetch: int, max_prefetch: int):
        self._concurrency = concurrency
        self._prefetch = prefetch
        self._max_prefetch = max_prefetch
        self._lock = threading.Lock()
        self._claimed = threading.Condition(self._lock)  # slot threads wait on it for claimed jobs
        self._pending: collections.deque[Job] = collections.deque()  # claimed, not started, run order
        self._running: dict[Key, Running] = {}  # started, outcome not decided yet
        self._failing: dict[Key, Outcome] = {}  # failed or timed out, fail() not recorded yet
        self._completing: dict[Key, Outcome] = {}  # succeeded, complete_many() not recorded yet
        self._releasing: dict[Key, Job] = {}  # claimed, never to be started, release() not recorded yet
        self._busy = 0  # slot threads inside a worker
        self._stuck = 0  # of those, threads whose attempt was taken from them (timed out, lost)
        self._mean_duration: float | None = None  # seconds, moving average of successful jobs
        self._last_claim = 0  # jobs the last claiming round got
        self.stats = {"completed": 0, "failed": 0, "discarded": 0, "lost": 0}

    # -- claiming (the main loop) -------------------------------------------------------------------

    def want(self) -> int:
        """How many jobs to claim now: the free slot threads plus those claimed ahead
        (queue.claim_ahead), less what is already claimed. None while every slot thread is stuck in a
        worker past its timeout, since no claimed job could start. Jobs that finished but whose outcome
        is not recorded yet are still executing in the database: claims wait for them, so a runner
        never holds more than its slots and its prefetch (what a killed runner leaves for rescue),
        however far its completer falls behind."""
        with self._lock:
            if self._stuck >= self._concurrency:
                return 0
            ahead = claim_ahead(self._mean_duration, self._concurrency, self._prefetch, self._max_prefetch)
            unrecorded = len(self._completing) + len(self._failing)
            return self._concurrency - self._busy + ahead - len(self._pending) - unrecorded

    def running_low(self) -> bool:
        """Half of the last round's jobs have been taken by the slots: time to claim again."""
        with self._lock:
            return self._running_low()

    def _running_low(self) -> bool:
        return len(self._pending) <= self._last_claim // 2

    def round_claimed(self, count: int) -> None:
        with self._lock:
            self._last_claim = count or self._last_claim

    def has_free_slot(self) -> bool:
        """A slot thread not inside a worker (one stuck in a worker past its timeout is not free)."""
        with self._lock:
            return self._busy < self._concurrency

    def add_claimed(self, jobs: list[Job]) -> list[Lost]:
        """Jobs a claim returned, for the slot threads, in the order claim() returned them (priority,
        then age). A job claimed again by this node (rescued from it, or cancelled and retried) means
        the attempts of it the runner still holds are no longer its own: returned as lost."""
        with self._claimed:
            held = [*self._pending, *(running.job for running in self._running.values())]
            stale = {job.key for job in superseded(held, jobs)}
            lost = self._lose(stale) if stale else []
            self._pending.extend(jobs)
            self._claimed.notify(len(jobs))
        return lost

    # -- slot threads -------------------------------------------------------------------------------

    def next_job(
        self, stopping: threading.Event, begin: Callable[[Job], Running]
    ) -> tuple[Running | None, bool]:
        """Waits for a claimed job and starts it (``begin`` makes its Running, under the lock: the
        attempt is never in neither place). Returns (None, False) once the runner stops; else the
        attempt and whether the claimed jobs are running low."""
        with self._claimed:
            while not self._pending and not stopping.is_set():
                self._claimed.wait(0.5)
            if stopping.is_set():
                return None, False  # what is still claimed is given back by the drain
            running = begin(self._pending.popleft())
            self._running[running.key] = running
            self._busy += 1
            return running, self._running_low()

    def wake_slots(self) -> None:
        with self._claimed:
            self._claimed.notify_all()

    def succeeded(self, outcome: Outcome, hand_over: Callable[[Outcome], None]) -> bool:
        """The worker returned: the attempt goes to ``hand_over`` (the completer), under the lock, so
        the drain never finds it in neither place. False if it was taken meanwhile."""
        running = outcome.running
        with self._lock:
            if running.taken:
                return False
            # how long jobs take (how many to claim ahead), known before the completion is recorded
            duration = outcome.finished - running.started
            mean = self._mean_duration
            self._mean_duration = duration if mean is None else 0.9 * mean + 0.1 * duration
            del self._running[running.key]
            self._completing[running.key] = outcome
            hand_over(outcome)
            return True

    def failed(self, outcome: Outcome) -> bool:
        """The worker failed (or does not exist): the main loop records it. False if the attempt was
        taken meanwhile."""
        running = outcome.running
        with self._lock:
            if running.taken:
                return False
            del self._running[running.key]
            self._failing[running.key] = outcome
            return True

    def slot_free(self, running: Running) -> bool:
        """The slot thread is out of the worker. True when the main loop should claim: its attempt had
        been taken (a stuck thread is free again) or nothing is claimed for it."""
        with self._lock:
            self._busy -= 1
            if running.taken:
                self._stuck -= 1
            return running.taken or not self._pending

    # -- the main loop ------------------------------------------------------------------------------

    def expire(self, now: float) -> int:
        """Attempts past their worker's timeout fail now. The thread cannot be killed: whatever it
        returns later is ignored -- decided under the lock, so a worker finishing at this moment
        either completes (it is no longer running) or is failed, never both."""
        with self._lock:
            late = [r for r in self._running.values() if r.worker and now > r.context.deadline]
            for running in late:
                self._take(running)
                self._failing[running.key] = Outcome(
                    running, error=f"timed out after {running.worker.timeout:g} s (worker timeout)"
                )
            return len(late)

    def give_back_if_stuck(self) -> int:
        """Every slot thread stuck in a worker past its timeout: nothing claimed ahead can start, so
        it is given back for another runner (and claimed again here once a thread is free)."""
        with self._lock:
            if self._stuck < self._concurrency or not self._pending:
                return 0
            return self._release_pending()

    def give_back_all(self) -> int:
        """The runner stops: every job claimed but not started is to be released."""
        with self._lock:
            return self._release_pending()

    def _release_pending(self) -> int:
        count = len(self._pending)
        for job in self._pending:
            self._releasing[job.key] = job
        self._pending.clear()
        return count

    def to_release(self) -> list[Job]:
        with self._lock:
            return list(self._releasing.values())

    def released(self, jobs: list[Job]) -> None:
        with self._lock:
            for job in jobs:
                self._releasing.pop(job.key, None)

    def failures_due(self, now: float) -> list[Outcome]:
        with self._lock:
            return [o for o in self._failing.values() if o.retry_at <= now]

    def failure_recorded(self, outcome: Outcome, state: str | None) -> None:
        """fail() returned ``state``: 'discarded', another state (to be retried), or None (the attempt
        was no longer this node's)."""
        with self._lock:
            self._failing.pop(outcome.running.key, None)
            self.stats["lost" if state is None else "discarded" if state == "discarded" else "failed"] += 1

    # -- the completer ------------------------------------------------------------------------------

    def completions_recorded(self, outcomes: list[Outcome], done: set[Key] | None) -> None:
        """complete_many() returned: ``done`` the attempts it completed (None: all of them)."""
        with self._lock:
            for o in outcomes:
                self._completing.pop(o.running.key, None)
                self.stats["completed" if done is None or o.running.key in done else "lost"] += 1

    def completions_abandoned(self, outcomes: list[Outcome]) -> None:
        with self._lock:
            for o in outcomes:
                self._completing.pop(o.running.key, None)

    # -- the heartbeat ------------------------------------------------------------------------------

    def held(self) -> dict[int, int]:
        """Every job attempt the runner holds -- claimed, running, finished but not recorded -- as
        {job id: attempt}; of two attempts of one job, the later."""
        with self._lock:
            return latest_attempts(
                [*(job.key for job in self._pending), *self._running, *self._failing, *self._completing,
                 *self._releasing]
            )  # fmt: skip

    def lose(self, keys: list[Key]) -> list[Lost]:
        """Attempts the database no longer gives this node. Only those still held as they were:
        running, the worker is told and its outcome ignored; claimed, never started. One finished
        meanwhile is left to its recording, which changes nothing in the database."""
        with self._lock:
            return self._lose(set(keys))

    def _lose(self, keys: set[Key]) -> list[Lost]:
        lost = [Lost(job, started=False) for job in self._pending if job.key in keys]
        for item in lost:
            self._pending.remove(item.job)
        for running in [r for r in self._running.values() if r.key in keys]:
            self._take(running)
            lost.append(Lost(running.job, started=True))
        self.stats["lost"] += len(lost)
        return lost

    def _take(self, running: Running) -> None:
        """The runner stops waiting for this attempt: its worker is asked to stop and its outcome will
        be ignored; its slot thread stays busy until the worker returns."""
        del self._running[running.key]
        running.taken = True
        running.context.cancelled.set()
        self._stuck += 1

    # -- shutdown -----------------------------------------------------------------------------------

    def holding(self) -> bool:
        """Anything whose fate the database does not know yet."""
        with self._lock:
            return bool(self._running or self._failing or self._completing or self._releasing)

    def leftover(self) -> dict[str, list[int]]:
        """What the runner still holds, by job id, for the shutdown's last log line."""
        with self._lock:
            return {
                "running": sorted(job_id for job_id, _ in self._running),
                "failure_not_recorded": sorted(job_id for job_id, _ in self._failing),
                "not_released": sorted(job_id for job_id, _ in self._releasing),
            }
