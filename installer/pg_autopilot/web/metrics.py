"""Prometheus metrics, read from the database at each scrape (a custom collector, no counters kept in the
process): whatever serves them -- `autopilot serve`, or a runner started with --metrics-port -- reports the
same figures, and a restart loses nothing.

Per catalog job: its last run, last success and last duration (autopilot.job_status), its runs of the last
24 hours by trigger and outcome (the ledger, autopilot.job_runs); the queue per queue and state and the age of
each queue's oldest available job (autopilot.jobs); each configured database's last verified backup, its age
and size (autopilot.backup_metadata); the runner nodes with a fresh heartbeat; and, where autopilot.health
exists, its problems per severity. A scrape that cannot reach the database answers ``autopilot_up 0``."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from wsgiref.simple_server import WSGIServer

import psycopg
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..errors import AutopilotError
from ..queue import QueueClient

log = logging.getLogger("pg_autopilot.metrics")

RUNS_WINDOW_HOURS = 24
SEVERITIES = ("critical", "warning")

ConnectionFactory = Callable[[], AbstractContextManager[psycopg.Connection]]


def _seconds(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


class AutopilotCollector(Collector):
    """Collects every autopilot metric through one connection from ``connection`` per scrape."""

    def __init__(self, connection: ConnectionFactory):
        self._connection = connection

    def describe(self) -> list[Metric]:
        return []  # nothing to describe ahead: the families depend on the database's rows

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("autopilot_up", "1 when the last scrape could read autopilot's tables, else 0")
        try:
            with self._connection() as conn:
                families = list(self._families(conn))
        except (psycopg.Error, OSError, AutopilotError) as exc:
            log.warning("metrics: the database could not be read: %s", exc)
            up.add_metric([], 0)
            yield up
        else:
            up.add_metric([], 1)
            yield up
            yield from families
        took = GaugeMetricFamily("autopilot_scrape_duration_seconds", "How long reading the metrics took")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self, conn: psycopg.Connection) -> Iterator[Metric]:
        from ..backups.status import backup_status

        now = conn.execute("SELECT now()").fetchone()[0]
        yield from _job_families(conn)
        queue = QueueClient(lambda: contextlib.nullcontext(conn))
        yield from _queue_families(queue.depth(), now)
        alive = GaugeMetricFamily(
            "autopilot_runners_alive",
            "Runner nodes executing a job with a heartbeat younger than jobs.rescue_after",
        )
        alive.add_metric([], len(queue.runners_alive()))
        yield alive
        backups = backup_status(conn, now)
        if backups is not None:
            yield from _backup_families(backups)
        if conn.execute("SELECT to_regclass('autopilot.health') IS NOT NULL").fetchone()[0]:
            counts = dict.fromkeys(SEVERITIES, 0)
            for severity, n in conn.execute(
                "SELECT h.severity, count(*) FROM autopilot.health AS h GROUP BY h.severity"
            ).fetchall():
                counts[severity] = n
            problems = GaugeMetricFamily(
                "autopilot_health_problems", "Rows of autopilot.health, by severity", labels=["severity"]
            )
            for severity, n in counts.items():
                problems.add_metric([severity], n)
            yield problems


def _job_families(conn: psycopg.Connection) -> Iterator[Metric]:
    labels = ["job", "side"]
    last_run = GaugeMetricFamily(
        "autopilot_job_last_run_timestamp_seconds",
        "When the job's last run started (Unix time)",
        labels=labels,
    )
    last_success = GaugeMetricFamily(
        "autopilot_job_last_success_timestamp_seconds",
        "When the job's last successful run started (Unix time; a runner job: its worker's last success)",
        labels=labels,
    )
    last_duration = GaugeMetricFamily(
        "autopilot_job_last_duration_seconds", "How long the job's last finished run took", labels=labels
    )
    last_failed = GaugeMetricFamily(
        "autopilot_job_last_run_failed", "1 when the job's last run failed or was abandoned", labels=labels
    )
    enabled = GaugeMetricFamily(
        "autopilot_job_enabled", "1 when the job is enabled and can run here", labels=labels
    )
    rows = conn.execute(
        "SELECT s.name, s.side, s.enabled AND s.unavailable_reason IS NULL, s.last_started_at,"
        " s.last_success_at, extract(epoch FROM s.last_duration)::float8, s.last_status"
        " FROM autopilot.job_status AS s ORDER BY s.name"
    ).fetchall()
    for name, side, can_run, started, succeeded, took, status in rows:
        key = [name, side]
        enabled.add_metric(key, 1 if can_run else 0)
        if started is not None:
            last_run.add_metric(key, _seconds(started))
            last_failed.add_metric(key, 1 if status in ("failed", "abandoned") else 0)
        if succeeded is not None:
            last_success.add_metric(key, _seconds(succeeded))
        if took is not None:
            last_duration.add_metric(key, took)
    runs = GaugeMetricFamily(
        "autopilot_job_runs_24h",
        f"Runs of the job started in the last {RUNS_WINDOW_HOURS} hours, by trigger and outcome (the ledger;"
        " outcome failed: its failures)",
        labels=["job", "trigger", "outcome"],
    )
    # per catalog job, through job_runs_job_name_started_at_idx: the window's rows only, however long
    # the ledger
    for name, trigger, outcome, n in conn.execute(
        "SELECT c.name, r.trigger, r.status, count(*) FROM autopilot.job_catalog AS c"
        " CROSS JOIN LATERAL (SELECT r.trigger, r.status FROM autopilot.job_runs AS r"
        "   WHERE r.job_name = c.name AND r.started_at > now() - make_interval(hours => %s)"
        # OFFSET 0 keeps the subquery a lateral one: flattened, the planner scans the whole ledger
        "   OFFSET 0) AS r"
        " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        [RUNS_WINDOW_HOURS],
    ).fetchall():
        runs.add_metric([name, trigger, outcome], n)
    yield from (enabled, last_run, last_success, last_duration, last_failed, runs)


def _queue_families(depth: list[dict], now: datetime) -> Iterator[Metric]:
    from ..status import QUEUE_STATES

    jobs = GaugeMetricFamily("autopilot_queue_jobs", "Jobs in autopilot.jobs", labels=["queue", "state"])
    oldest = GaugeMetricFamily(
        "autopilot_queue_oldest_available_age_seconds",
        "Age of the queue's oldest available job (since its scheduled_at); 0 when none is available",
        labels=["queue"],
    )
    queues: dict[str, dict] = {}
    for row in depth:
        queues.setdefault(row["queue"], {})[row["state"]] = row
    for queue_name, states in sorted(queues.items()):
        for state in QUEUE_STATES:
            jobs.add_metric([queue_name, state], states[state]["jobs"] if state in states else 0)
        at = states.get("available", {}).get("oldest_available_at")
        oldest.add_metric([queue_name], max(0.0, (now - at).total_seconds()) if at else 0.0)
    yield jobs
    yield oldest


def _backup_families(backups: dict) -> Iterator[Metric]:
    age = GaugeMetricFamily(
        "autopilot_backup_age_seconds", "Age of the database's last verified backup", labels=["database"]
    )
    size = GaugeMetricFamily(
        "autopilot_backup_size_bytes", "Size of the database's last verified backup", labels=["database"]
    )
    last = GaugeMetricFamily(
        "autopilot_backup_last_verified_timestamp_seconds",
        "When the database's last verified backup finished (Unix time)",
        labels=["database"],
    )
    overdue = GaugeMetricFamily(
        "autopilot_backup_overdue",
        "1 when the database has no verified backup younger than backups.overdue_after",
        labels=["database"],
    )
    running = GaugeMetricFamily(
        "autopilot_backup_running", "Backups of the database running now", labels=["database"]
    )
    for d in backups["databases"]:
        key = [d["database"]]
        overdue.add_metric(key, 1 if d["overdue"] else 0)
        running.add_metric(key, sum(1 for r in d["in_progress"] if r["live"]))
        if d["age"] is not None:
            age.add_metric(key, d["age"].total_seconds())
            last.add_metric(key, _seconds(d["last_verified_at"]))
        if d["size_bytes"] is not None:
            size.add_metric(key, d["size_bytes"])
    yield from (age, size, last, overdue, running)


def session_settings(conn: psycopg.Connection) -> None:
    """What a session reading the dashboard's figures sets: no JIT. The planner's estimates over a long
    ledger (job_status's laterals) pass jit_above_cost, and compiling them costs a scrape some 300 ms
    for queries that run in a few."""
    conn.execute("SET jit = off")


@contextlib.contextmanager
def connected(dsn: str | None) -> Iterator[psycopg.Connection]:
    """A connection of its own for one scrape (the runner's /metrics)."""
    from ..db import connect

    with connect(dsn, autocommit=True) as conn:
        session_settings(conn)
        yield conn


def registry(connection: ConnectionFactory) -> CollectorRegistry:
    """A registry holding only autopilot's collector (none of the process's own default metrics)."""
    found = CollectorRegistry(auto_describe=False)
    found.register(AutopilotCollector(connection))
    return found


def serve_metrics(dsn: str | None, host: str, port: int) -> WSGIServer:
    """Serves /metrics on ``host:port`` from a daemon thread (the runner's --metrics-port), a connection of
    its own per scrape, nothing shared with the runner's pool; ``shutdown()`` the server returned to stop."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry(lambda: connected(dsn)))
    return server
