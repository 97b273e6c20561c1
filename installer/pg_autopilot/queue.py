"""The queue client: every SQL call on ``autopilot.jobs`` that the runner (and the CLI) make, typed.

The runner only dispatches (claims, slots, completions, heartbeats); what it says to the database
goes through :class:`QueueClient`, as procrastinate's worker talks through its manager and Oban's
producer through its engine. The queue itself is SQL (``autopilot.enqueue``, ``claim``,
``complete_many``, ``fail``, ``snooze``, ``cancel``, ``retry``, ``heartbeat``, ``release``), usable
from any language; this module is its Python face.

The runner's policies -- how many jobs to claim ahead, how a round of claims is shared among the
queues, how long to back off after a failure -- are pure functions here, tested without a server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

Key = tuple[int, int]  # (job id, attempt): one attempt of one job


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt of a job: a row of ``autopilot.jobs`` as ``autopilot.claim()`` returned it
    (the fields in the order of CLAIM's columns)."""

    id: int
    attempt: int
    worker: str
    queue: str
    args: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    max_attempts: int = 20
    unique_key: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    scheduled_at: datetime | None = None

    @property
    def key(self) -> Key:
        return self.id, self.attempt

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(
            id=row["id"],
            attempt=row["attempt"],
            worker=row["worker"],
            queue=row["queue"],
            args=row.get("args") or {},
            priority=row.get("priority", 0),
            max_attempts=row.get("max_attempts", 20),
            unique_key=row.get("unique_key"),
            meta=row.get("meta") or {},
            scheduled_at=row.get("scheduled_at"),
        )


ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]

CLAIM = (
    "SELECT c.id, c.attempt, c.worker, c.queue, c.args, c.priority, c.max_attempts, c.unique_key, c.meta,"
    " c.scheduled_at FROM autopilot.claim(%s, %s, %s) AS c"
)

COMPLETE_MANY = "SELECT autopilot.complete_many(%s, %s), now()"


def _ids_and_attempts(keys: Sequence[Key]) -> list[list[int]]:
    return [[job_id for job_id, _ in keys], [attempt for _, attempt in keys]]


def _completed(conn: psycopg.Connection, keys: Sequence[Key], count: int, at: datetime) -> set[Key] | None:
    """complete_many's answer: None when it completed every attempt of ``keys`` (``count``), else the
    attempts it completed, found by their completed_at (``at``: the transaction's now())."""
    if count == len(keys):
        return None
    return {
        (job_id, attempt)
        for job_id, attempt in conn.execute(
            "SELECT j.id, j.attempt FROM autopilot.jobs AS j"
            " WHERE j.id = ANY(%s) AND j.state = 'completed' AND j.completed_at = %s",
            [[job_id for job_id, _ in keys], at],
        ).fetchall()
    }


class QueueClient:
    """The queue's SQL, through connections from ``connection`` (a context manager factory: the
    runner's pool, or one connection of the CLI). Each call is one statement in autocommit."""

    def __init__(self, connection: ConnectionFactory):
        self._connection = connection

    def claim(self, queue: str, node: str, limit: int) -> list[Job]:
        """Up to ``limit`` due jobs of ``queue`` for ``node``, in run order (priority, then age)."""
        with self._connection() as conn:
            # the columns a Job has, in its fields' order, as tuples: the hot path of a drain decodes
            # no column it does not use (errors, timestamps) and builds no dict. Named columns, not *:
            # a prepared statement survives an upgrade that adds columns to claim()'s result
            rows = conn.execute(CLAIM, [queue, node, limit]).fetchall()
        return [Job(*row) for row in rows]

    def complete_many(self, keys: Sequence[Key]) -> set[Key] | None:
        """Marks these attempts completed. Returns None when all of them were, else the ones that were
        (the others were cancelled or rescued meanwhile, and complete_many left them alone)."""
        with self._connection() as conn:
            # one statement, one transaction: its now() is the completed_at of the jobs it completed
            count, at = conn.execute(COMPLETE_MANY, _ids_and_attempts(keys)).fetchone()
            return _completed(conn, keys, count, at)

    def fail(self, key: Key, error: str, discard: bool = False) -> str | None:
        """Records a failed attempt: the job's new state (retryable, discarded), or None when the
        attempt is no longer executing (cancelled, or rescued meanwhile)."""
        job_id, attempt = key
        with self._connection() as conn:
            return conn.execute(
                "SELECT autopilot.fail(%s, %s, %s, %s)", [job_id, attempt, error, discard]
            ).fetchone()[0]

    def release(self, keys: Sequence[Key]) -> int:
        """Gives back attempts claimed but never started; returns how many were still this node's."""
        with self._connection() as conn:
            return conn.execute(
                "SELECT autopilot.release(%s, %s)", [[k[0] for k in keys], [k[1] for k in keys]]
            ).fetchone()[0]

    def heartbeat(self, held: dict[int, int], node: str) -> set[int]:
        """Heartbeats the attempts ``held`` ({job id: attempt}); returns the ids still this node's."""
        with self._connection() as conn:
            return {
                row[0]
                for row in conn.execute(
                    "SELECT autopilot.heartbeat(%s, %s, %s)", [list(held), list(held.values()), node]
                ).fetchall()
            }

    def progress(self, key: Key, fields: dict[str, Any]) -> bool:
        """Records a running attempt's progress in its job's ``meta.progress`` (with the time, ``at``);
        False when the attempt is no longer executing."""
        job_id, attempt = key
        with self._connection() as conn:
            return (
                conn.execute(
                    "UPDATE autopilot.jobs SET meta = jsonb_set(meta, '{progress}',"
                    " %s::jsonb || jsonb_build_object('at', clock_timestamp()))"
                    " WHERE id = %s AND attempt = %s AND state = 'executing'",
                    [Jsonb(fields), job_id, attempt],
                ).rowcount
                == 1
            )

    def record_result(self, key: Key, text: str) -> bool:
        """Keeps a finished attempt's summary (its worker's result) in ``meta.result``, for complete_many
        to record as the run's message in job_runs; False when the attempt is no longer executing."""
        job_id, attempt = key
        with self._connection() as conn:
            return (
                conn.execute(
                    "UPDATE autopilot.jobs SET meta = jsonb_set(meta, '{result}',"
                    " jsonb_build_object('attempt', attempt, 'text', %s::text))"
                    " WHERE id = %s AND attempt = %s AND state = 'executing'",
                    [text, job_id, attempt],
                ).rowcount
                == 1
            )

    def executing(self) -> list[dict[str, Any]]:
        """The jobs executing now, oldest first, with their latest progress report."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT id, worker, queue, attempt, attempted_by AS node, attempted_at AS started_at,"
                " meta -> 'progress' AS progress FROM autopilot.jobs WHERE state = 'executing'"
                " ORDER BY attempted_at, id"
            ).fetchall()

    def enqueue(
        self,
        worker: str,
        args: dict[str, Any] | None = None,
        *,
        queue: str = "default",
        priority: int = 0,
        scheduled_at: datetime | None = None,
        max_attempts: int = 20,
        unique_key: str | None = None,
        meta: dict[str, Any] | None = None,
        depends_on: Sequence[int] | None = None,
    ) -> int:
        """Adds a job (or, for a unique key an unfinished job holds, returns that job's id). With
        ``depends_on`` (ids of jobs enqueued before), the job waits until all of those have completed."""
        with self._connection() as conn:
            return conn.execute(
                "SELECT autopilot.enqueue(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [worker, Jsonb(args or {}), queue, priority, scheduled_at, max_attempts, unique_key,
                 Jsonb(meta or {}), list(depends_on) if depends_on else None],
            ).fetchone()[0]  # fmt: skip

    def enqueue_startup_jobs(self, workers: Iterable[str]) -> list[tuple[str, int, int | None]]:
        """The catalog's enabled startup jobs for these workers, as (catalog name, job id, the job it
        waits for): the seed's chain (knowledge-migration ... rag-setup), each waiting for the one before
        it, then the others. The unique key is the one pg_cron's enqueues use (catalog:<name>), so a job
        already pending is not added twice."""
        with self._connection() as conn:
            return [
                (name, job_id, depends_on[0] if depends_on else None)
                for name, job_id, depends_on in conn.execute(
                    "SELECT job_name, job_id, depends_on FROM autopilot.enqueue_startup_jobs(%s)",
                    [sorted(workers)],
                ).fetchall()
            ]

    # -- what the dashboard and /metrics read, and the actions they offer ------------------------

    def depth(self) -> list[dict[str, Any]]:
        """Jobs per (queue, state), with each queue's oldest available job's scheduled_at (one scan)."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT j.queue, j.state, count(*) AS jobs,"
                " min(j.scheduled_at) FILTER (WHERE j.state = 'available') AS oldest_available_at"
                " FROM autopilot.jobs AS j GROUP BY j.queue, j.state ORDER BY j.queue, j.state"
            ).fetchall()

    def runners_alive(self) -> list[str]:
        """The runner nodes whose heartbeat is fresh: executing a job whose heartbeat_at is younger than
        jobs.rescue_after (a runner with nothing to run has nothing to heartbeat)."""
        with self._connection() as conn:
            return [
                node
                for (node,) in conn.execute(
                    "SELECT DISTINCT j.attempted_by FROM autopilot.jobs AS j WHERE j.state = 'executing'"
                    " AND j.heartbeat_at > now() - autopilot.get_setting('jobs.rescue_after')::interval"
                    " ORDER BY 1"
                ).fetchall()
            ]

    def list_jobs(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        worker: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Jobs newest first (by id), filtered; ``before_id`` pages on (keyset)."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT j.id, j.queue, j.worker, j.state, j.priority, j.attempt, j.max_attempts,"
                " j.inserted_at, j.scheduled_at, j.attempted_at, j.attempted_by,"
                " coalesce(j.completed_at, j.discarded_at, j.cancelled_at) AS finished_at,"
                " j.meta ->> 'catalog' AS catalog, jsonb_array_length(j.errors) AS error_count,"
                " j.errors -> -1 ->> 'error' AS last_error"
                " FROM autopilot.jobs AS j"
                " WHERE (%(state)s::text IS NULL OR j.state = %(state)s)"
                " AND (%(queue)s::text IS NULL OR j.queue = %(queue)s)"
                " AND (%(worker)s::text IS NULL OR j.worker = %(worker)s)"
                " AND (%(before)s::bigint IS NULL OR j.id < %(before)s)"
                " ORDER BY j.id DESC LIMIT %(limit)s",
                {"state": state, "queue": queue, "worker": worker, "before": before_id, "limit": limit},
            ).fetchall()

    def job(self, job_id: int) -> dict[str, Any] | None:
        """One job, every column (its errors: one per failed attempt), or None."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute("SELECT j.* FROM autopilot.jobs AS j WHERE j.id = %s", [job_id]).fetchone()

    def retry(self, job_id: int) -> bool:
        """autopilot.retry: a job that is not executing runs again now; False when it could not be."""
        with self._connection() as conn:
            return conn.execute("SELECT autopilot.retry(%s)", [job_id]).fetchone()[0]

    def cancel(self, job_id: int, reason: str | None = None) -> bool:
        """autopilot.cancel: an unfinished job is cancelled; False when it was finished already."""
        with self._connection() as conn:
            return conn.execute("SELECT autopilot.cancel(%s, %s)", [job_id, reason]).fetchone()[0]

    def latest_progress(self, workers: Sequence[str]) -> list[dict[str, Any]]:
        """The latest job of these workers that reported progress, per ``meta.progress.codebase`` (code
        ingest reports one codebase at a time), newest first: its state and progress."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT DISTINCT ON (j.meta -> 'progress' ->> 'codebase') j.meta -> 'progress' ->> 'codebase'"
                " AS codebase, j.id, j.worker, j.state, j.attempted_at, j.meta -> 'progress' AS progress"
                " FROM autopilot.jobs AS j WHERE j.worker = ANY(%s) AND j.meta ? 'progress'"
                " ORDER BY j.meta -> 'progress' ->> 'codebase', j.attempted_at DESC NULLS LAST, j.id DESC",
                [list(workers)],
            ).fetchall()

    def held(self) -> list[dict[str, Any]]:
        """The waiting jobs that a discarded or cancelled dependency holds (they run only once it is
        retried and completes), each with that dependency."""
        with self._connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                "SELECT w.id, w.worker, w.meta ->> 'catalog' AS catalog, d.id AS blocker_id,"
                " d.worker AS blocker_worker, d.state AS blocker_state"
                " FROM autopilot.jobs AS w"
                " CROSS JOIN LATERAL unnest(w.depends_on) AS u (id)"
                " INNER JOIN autopilot.jobs AS d ON d.id = u.id"
                " WHERE w.state = 'waiting' AND d.state IN ('discarded', 'cancelled')"
                " ORDER BY w.id, d.id"
            ).fetchall()


# -- the runner's policies ------------------------------------------------------------------------


def backoff(failures: int, cap: float) -> float:
    """Seconds to wait after the n-th failure in a row: 1, 2, 4, ... at most ``cap``."""
    return min(cap, 2.0 ** min(max(failures - 1, 0), 16))


def claim_ahead(
    mean_duration: float | None, concurrency: int, prefetch: int, max_prefetch: int, horizon: float = 0.05
) -> int:
    """How many jobs to claim beyond the free slots: as many as the slots get through in about
    ``horizon`` seconds, at most ``max_prefetch`` (``prefetch`` until a job has finished). Slow jobs
    (a backup, an embedding batch) are not claimed ahead at all: a job held here behind an hour-long
    one could have run on another runner meanwhile."""
    if mean_duration is None:
        return prefetch
    return min(max_prefetch, int(concurrency * horizon / max(mean_duration, 1e-6)))


def claim_round(
    queues: Sequence[str],
    turn: int,
    want: int,
    claim: Callable[[str, int], int],
    stopping: Callable[[], bool],
) -> int:
    """Claims up to ``want`` jobs, shared among the queues, through ``claim(queue, limit) -> claimed``;
    returns how many were claimed. Each queue is offered its share in turn (the first share going to
    each queue in turn, round after round: ``turn`` counts the rounds), then the queues that filled
    theirs are offered what the others left. A backlog in one queue never starves another."""
    if not queues or want <= 0:
        return 0
    first = turn % len(queues)
    order = [*queues[first:], *queues[:first]]
    remaining = want
    more: list[str] = []
    for n, queue in enumerate(order):
        if remaining <= 0 or stopping():
            break
        share = -(-remaining // (len(order) - n))  # rounded up
        got = claim(queue, share)
        remaining -= got
        if got == share:
            more.append(queue)
    for queue in more:
        if remaining <= 0 or stopping():
            break
        remaining -= claim(queue, remaining)
    return want - max(remaining, 0)


def latest_attempts(keys: Iterable[Key]) -> dict[int, int]:
    """{job id: attempt} of these attempts; of two attempts of one job, the later."""
    held: dict[int, int] = {}
    for job_id, attempt in keys:
        if attempt > held.get(job_id, attempt - 1):
            held[job_id] = attempt
    return held


def superseded(held: Iterable[Job], claimed: Iterable[Job]) -> Iterator[Job]:
    """The held attempts that a newer claim of the same job replaces (the job was rescued from this
    node, or cancelled and retried, and claimed again)."""
    newest = {job.id: job.attempt for job in claimed}
    return (job for job in held if job.id in newest and job.attempt < newest[job.id])
