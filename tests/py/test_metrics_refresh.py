"""metrics-refresh (autopilot.refresh_performance_metrics) where one session is not enough: rows of
transactions still open during a run are counted by the next one, writers never wait on each other,
and after any interleaving of writers and runs the metrics equal a recomputation from scratch. The
single-session behaviour is in tests/sql/refresh_performance_metrics.sql."""

from __future__ import annotations

import random
import threading
import time

import psycopg

AGENT_METRICS = """
SELECT subject, hour, succeeded, failed, success_rate, mean_duration, p50_duration, p95_duration
FROM autopilot.performance_metrics WHERE subject_kind = 'agent' ORDER BY subject, hour
"""

FROM_SCRATCH = """
SELECT t.agent_id::text, date_trunc('hour', t.finished_at, 'UTC') AS hour,
       count(*) FILTER (WHERE t.status = 'succeeded'), count(*) FILTER (WHERE t.status = 'failed'),
       count(*) FILTER (WHERE t.status = 'succeeded')::float8 / count(*),
       avg(t.finished_at - t.started_at),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY t.finished_at - t.started_at),
       percentile_cont(0.95) WITHIN GROUP (ORDER BY t.finished_at - t.started_at)
FROM autopilot.tasks AS t
WHERE t.status IN ('succeeded', 'failed') AND t.agent_id IS NOT NULL
GROUP BY 1, 2 ORDER BY 1, 2
"""


def refresh(conn: psycopg.Connection) -> dict:
    return conn.execute("SELECT autopilot.refresh_performance_metrics()").fetchone()[0]


def agents(conn: psycopg.Connection, n: int) -> list[int]:
    conn.execute(
        "INSERT INTO autopilot.agents (name, capacity, last_seen_at) "
        "SELECT 'agent-' || g, 1000, now() FROM generate_series(1, %s) AS g",
        [n],
    )
    return [r[0] for r in conn.execute("SELECT id FROM autopilot.agents ORDER BY id")]


def test_a_row_committed_after_a_run_started_is_counted_by_the_next(installed_db):
    """A task finished in a transaction still open while a run recomputes its hour -- or committed,
    with an old finished_at, after the run -- is counted by the next run, not lost."""
    with installed_db.connect() as conn:
        (agent,) = agents(conn, 1)
        conn.execute(
            "INSERT INTO autopilot.tasks (title, status, agent_id, started_at, finished_at) "
            "VALUES ('early', 'succeeded', %s, '2024-05-01 10:00+00', '2024-05-01 10:05+00')",
            [agent],
        )
        with installed_db.connect(autocommit=False) as writer:
            writer.execute(
                "INSERT INTO autopilot.tasks (title, status, agent_id, started_at, finished_at) "
                "VALUES ('open', 'failed', %s, '2024-05-01 10:10+00', '2024-05-01 10:20+00')",
                [agent],
            )
            assert refresh(conn)["agent_hours"] == 1
            assert conn.execute("SELECT succeeded, failed FROM autopilot.performance_metrics").fetchall() == [
                (1, 0)
            ]
            writer.commit()
        # committed after the run, with a finished_at in the hour the run computed
        assert refresh(conn)["agent_hours"] == 1
        assert conn.execute("SELECT succeeded, failed FROM autopilot.performance_metrics").fetchall() == [
            (1, 1)
        ]


def test_writers_never_wait_on_each_other(installed_db):
    """Two transactions finishing tasks into the same hour both queue it at once: the queue's key
    holds the transaction, so neither waits for the other's commit."""
    with installed_db.connect() as conn:
        (agent,) = agents(conn, 1)
    with installed_db.connect(autocommit=False) as a, installed_db.connect(autocommit=False) as b:
        for conn in (a, b):
            conn.execute("SET lock_timeout = '2s'")
            conn.execute(
                "INSERT INTO autopilot.tasks (title, status, agent_id, finished_at) "
                "VALUES ('x', 'succeeded', %s, '2024-05-01 10:30+00')",
                [agent],
            )
        a.commit()
        b.commit()
    with installed_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM autopilot.performance_metrics_pending").fetchone()[0] == 2
        refresh(conn)
        assert conn.execute("SELECT succeeded FROM autopilot.performance_metrics").fetchone()[0] == 2


class Writer(threading.Thread):
    """Finishes tasks, changes finished ones (outcome, times, agent), sometimes slowly, sometimes
    rolling back: everything a refresh may run into."""

    def __init__(self, dsn: str, agent_ids: list[int], seed: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.dsn, self.agent_ids, self.rnd, self.stop = dsn, agent_ids, random.Random(seed), stop
        self.error: BaseException | None = None
        self.transactions = 0

    def statement(self, conn: psycopg.Connection) -> None:
        rnd = self.rnd
        hour = f"2024-05-0{rnd.randint(1, 3)} {rnd.randint(0, 23):02d}:{rnd.randint(0, 59):02d}+00"
        r = rnd.random()
        if r < 0.5:
            conn.execute(
                "INSERT INTO autopilot.tasks (title, status, agent_id, started_at, finished_at) "
                "VALUES ('w', %s, %s, %s::timestamptz - %s * interval '1 second', %s)",
                [
                    rnd.choice(["succeeded", "failed"]),
                    rnd.choice(self.agent_ids),
                    hour,
                    rnd.randint(1, 900),
                    hour,
                ],
            )
        elif r < 0.7:
            conn.execute(
                "UPDATE autopilot.tasks SET finished_at = %s WHERE id = "
                "(SELECT id FROM autopilot.tasks ORDER BY random() LIMIT 1)",
                [hour],
            )
        elif r < 0.85:
            conn.execute(
                "UPDATE autopilot.tasks "
                "SET status = CASE status WHEN 'failed' THEN 'succeeded' ELSE 'failed' END "
                "WHERE id = (SELECT id FROM autopilot.tasks ORDER BY random() LIMIT 1)"
            )
        else:
            conn.execute(
                "UPDATE autopilot.tasks SET agent_id = %s WHERE id = "
                "(SELECT id FROM autopilot.tasks ORDER BY random() LIMIT 1)",
                [rnd.choice(self.agent_ids)],
            )

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn) as conn:
                while not self.stop.is_set():
                    try:
                        for _ in range(self.rnd.randint(1, 4)):
                            self.statement(conn)
                    except psycopg.errors.DeadlockDetected:  # two writers, rows in opposite orders
                        conn.rollback()
                        continue
                    if self.rnd.random() < 0.3:
                        time.sleep(self.rnd.random() * 0.05)  # a transaction open across a refresh
                    if self.rnd.random() < 0.1:
                        conn.rollback()
                    else:
                        conn.commit()
                    self.transactions += 1
        except BaseException as exc:
            self.error = exc


def test_after_any_interleaving_the_metrics_equal_a_recomputation_from_scratch(installed_db):
    with installed_db.connect() as conn:
        agent_ids = agents(conn, 5)
    stop = threading.Event()
    writers = [Writer(installed_db.dsn, agent_ids, seed, stop) for seed in range(3)]
    for w in writers:
        w.start()
    runs = 0
    deadline = time.monotonic() + 4
    with installed_db.connect() as conn:
        while time.monotonic() < deadline:
            refresh(conn)
            runs += 1
            time.sleep(0.02)
    stop.set()
    for w in writers:
        w.join(timeout=30)
        assert w.error is None, repr(w.error)
        assert w.transactions > 10
    with installed_db.connect() as conn:
        refresh(conn)
        expected = conn.execute(FROM_SCRATCH).fetchall()
        assert len(expected) > 20
        assert conn.execute(AGENT_METRICS).fetchall() == expected
        assert conn.execute("SELECT count(*) FROM autopilot.performance_metrics_pending").fetchone()[0] == 0
    assert runs > 10
