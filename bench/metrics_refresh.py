"""Benchmark: metrics-refresh (autopilot.refresh_performance_metrics) with 1,000,000 finished tasks.

Goal (from the issue): with 1,000,000 finished tasks, a refresh after 10,000 new ones <= 500 ms.

What is measured, and how:

* A throwaway *durable* cluster (fsync on, synchronous_commit on, full_page_writes on) is started
  with ``pg_autopilot.testing.Cluster`` (or ``--dsn`` names an existing server); the extension is
  created in a scratch database ``autopilot_bench_metrics``. pg_cron is not needed.
* The data, loaded server-side with ``INSERT ... SELECT generate_series``: 1,000 agents; 1,000,000
  tasks finished over the last 30 days (90% succeeded, 10% failed, each having run 1 second to an
  hour); for the workers, 50,000 completed or discarded runner jobs over the last 7 days and 2,000
  failed runner runs. The first refresh computes every hour (timed, for information); then
  ``VACUUM ANALYZE`` and ``CHECKPOINT``.
* The goal's case, ``--rounds`` times: 10,000 tasks that were running finish now (one UPDATE, the
  way agents report them; 90% succeed), then ``SELECT autopilot.refresh_performance_metrics()`` and
  its COMMIT are timed client side.
* For information, the worst case of late rows: 10,000 tasks finishing into hours spread over the
  whole 30 days (every hour is stale, so nearly everything is recomputed).
* Correctness after every refresh (a failure exits 1; a missed goal is printed as MISS, exit 0): the
  agents' metrics of the recomputed hours -- and, at the end, of every hour -- equal a recomputation
  from scratch over autopilot.tasks, and nothing is left queued.

Run:  PYTHONPATH=installer .venv/bin/python bench/metrics_refresh.py [--dsn DSN] [--tasks 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, field

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from rich.console import Console
from rich.table import Table

SCRATCH_DB = "autopilot_bench_metrics"
GOAL_MS = 500.0

console = Console(highlight=False, width=140)

LOAD_SQL = """
INSERT INTO autopilot.agents (name, capacity, last_seen_at)
SELECT 'agent-' || g, 100, now() FROM generate_series(1, %(agents)s) AS g;

INSERT INTO autopilot.tasks (title, status, agent_id, created_at, assigned_at, started_at, finished_at)
SELECT 'done ' || r.g, r.status, r.agent_id, r.finished_at - r.took - interval '1 minute',
       r.finished_at - r.took - interval '1 minute', r.finished_at - r.took, r.finished_at
FROM (
    SELECT g,
           CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'succeeded' END AS status,
           1 + (g::bigint * 7919) %% %(agents)s AS agent_id,
           now() - interval '30 days' + interval '30 days' * (((g::bigint * 104729) %% 1000003) / 1000003.0)
               AS finished_at,
           interval '1 second' * (1 + (g * 31) %% 3600) AS took
    FROM generate_series(1, %(tasks)s) AS g
) AS r;

INSERT INTO autopilot.jobs (queue, worker, state, attempt, attempted_at, completed_at, discarded_at)
SELECT 'default', (ARRAY['backup', 'code_ingest', 'template_sync', 'registry_sync'])[1 + g %% 4],
       CASE WHEN g %% 50 = 0 THEN 'discarded' ELSE 'completed' END, 1,
       r.at - interval '1 second' * (1 + g %% 300),
       CASE WHEN g %% 50 = 0 THEN NULL ELSE r.at END,
       CASE WHEN g %% 50 = 0 THEN r.at END
FROM generate_series(1, %(jobs)s) AS g
CROSS JOIN LATERAL (SELECT now() - interval '7 days' * ((g * 7) %% 1000) / 1000.0 AS at) AS r;

INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at, message)
SELECT 'backup-hourly', 'runner', 'runner', 'failed', r.at - interval '20 seconds', r.at, 'pg_dump failed'
FROM generate_series(1, %(runs)s) AS g
CROSS JOIN LATERAL (SELECT now() - interval '7 days' * ((g * 13) %% 1000) / 1000.0 AS at) AS r;
"""

# tasks that are running now, finished by a round
START_SQL = """
INSERT INTO autopilot.tasks (title, status, agent_id, assigned_at, started_at)
SELECT 'running ' || %(round)s::text || '-' || g, 'running', 1 + (g * 13) %% %(agents)s,
       now() - interval '2 hours', now() - interval '1 second' * (1 + (g * 17) %% 3000)
FROM generate_series(1, %(tasks)s) AS g
"""

FINISH_NOW_SQL = """
UPDATE autopilot.tasks
SET status = CASE WHEN id %% 10 = 0 THEN 'failed' ELSE 'succeeded' END, finished_at = clock_timestamp()
WHERE status = 'running' AND title LIKE 'running ' || %(round)s::text || '-%%'
"""

FINISH_LATE_SQL = """
UPDATE autopilot.tasks
SET status = 'succeeded',
    started_at = f.at - interval '10 minutes',
    finished_at = f.at
FROM (
    SELECT t.id, now() - interval '30 days' + interval '30 days' * random() AS at
    FROM autopilot.tasks AS t
    WHERE t.status = 'running' AND t.title LIKE 'running late-%%'
) AS f
WHERE autopilot.tasks.id = f.id
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
  AND (%(hours)s::timestamptz[] IS NULL OR date_trunc('hour', t.finished_at, 'UTC') = ANY(%(hours)s))
GROUP BY 1, 2 ORDER BY 1, 2
"""

STORED = """
SELECT subject, hour, succeeded, failed, success_rate, mean_duration, p50_duration, p95_duration
FROM autopilot.performance_metrics
WHERE subject_kind = 'agent' AND (%(hours)s::timestamptz[] IS NULL OR hour = ANY(%(hours)s))
ORDER BY subject, hour
"""


def verify(conn: psycopg.Connection, hours: list | None) -> int:
    """The stored agent metrics of ``hours`` (None: all) equal a recomputation; returns the rows."""
    expected = conn.execute(FROM_SCRATCH, {"hours": hours}).fetchall()
    stored = conn.execute(STORED, {"hours": hours}).fetchall()
    if stored != expected:
        differ = len(set(stored) ^ set(expected))
        raise CorrectnessError(f"{differ} agent metrics rows differ from a recomputation from scratch")
    (queued,) = conn.execute("SELECT count(*) FROM autopilot.performance_metrics_pending").fetchone()
    if queued:
        raise CorrectnessError(f"{queued} hours are still queued after the refresh")
    return len(stored)


@dataclass
class Refresh:
    seconds: float
    summary: dict


def timed_refresh(conn: psycopg.Connection) -> Refresh:
    t0 = time.perf_counter()
    with conn.transaction():
        summary = conn.execute("SELECT autopilot.refresh_performance_metrics()").fetchone()[0]
    return Refresh(time.perf_counter() - t0, summary)


def touched_hours(conn: psycopg.Connection) -> list:
    return [r[0] for r in conn.execute("SELECT DISTINCT hour FROM autopilot.performance_metrics_pending")]


@dataclass
class Results:
    initial: Refresh | None = None
    rounds: list[Refresh] = field(default_factory=list)
    late: Refresh | None = None
    metrics_rows: int = 0


def bench(dsn: str, args: argparse.Namespace) -> Results:
    r = Results()
    with psycopg.connect(dsn, autocommit=True) as conn:
        with console.status(f"loading {args.tasks:,} finished tasks"):
            params = {"agents": args.agents, "tasks": args.tasks, "jobs": args.jobs, "runs": args.runs}
            for statement in LOAD_SQL.split(";\n\n"):
                conn.execute(statement, params)
            for i in range(args.rounds):
                conn.execute(START_SQL, {"round": i, "agents": args.agents, "tasks": args.new})
            conn.execute(
                START_SQL.replace("'running ' ||", "'running late-' ||"),
                {
                    "round": 0,
                    "agents": args.agents,
                    "tasks": args.new,
                },
            )
        with console.status("the first refresh: every hour"):
            r.initial = timed_refresh(conn)
        console.print(
            f"  first refresh (every hour): {r.initial.seconds * 1000:,.0f} ms; "
            f"{r.initial.summary['message']}"
        )
        with console.status("checking every hour against a recomputation"):
            r.metrics_rows = verify(conn, None)
        conn.execute("VACUUM (ANALYZE) autopilot.tasks, autopilot.performance_metrics, autopilot.jobs")
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")

        for i in range(args.rounds):
            done = conn.execute(FINISH_NOW_SQL, {"round": i}).rowcount
            hours = touched_hours(conn)
            run = timed_refresh(conn)
            verify(conn, hours)
            r.rounds.append(run)
            console.print(
                f"  {done:,} tasks finished now -> refresh {run.seconds * 1000:.1f} ms; "
                f"{run.summary['message']}"
            )

        done = conn.execute(FINISH_LATE_SQL).rowcount
        hours = touched_hours(conn)
        r.late = timed_refresh(conn)
        verify(conn, hours)
        console.print(
            f"  {done:,} tasks finished late, over 30 days -> refresh {r.late.seconds * 1000:.0f} ms; "
            f"{r.late.summary['message']}"
        )
        with console.status("checking every hour against a recomputation"):
            verify(conn, None)
    return r


def print_report(r: Results, args: argparse.Namespace) -> None:
    table = Table(
        title=f"metrics-refresh: {args.tasks:,} finished tasks, {args.agents:,} agents, durable cluster"
    )
    table.add_column("refresh")
    table.add_column("hours (agent + worker)", justify="right")
    table.add_column("time (ms)", justify="right")
    table.add_row(
        "first run: every hour",
        f"{r.initial.summary['agent_hours']} + {r.initial.summary['worker_hours']}",
        f"{r.initial.seconds * 1000:,.0f}",
    )
    for i, run in enumerate(r.rounds, 1):
        table.add_row(
            f"after {args.new:,} tasks finished now (#{i})",
            f"{run.summary['agent_hours']} + {run.summary['worker_hours']}",
            f"{run.seconds * 1000:.1f}",
        )
    table.add_row(
        f"after {args.new:,} tasks finished late (30 days)",
        f"{r.late.summary['agent_hours']} + {r.late.summary['worker_hours']}",
        f"{r.late.seconds * 1000:,.0f}",
    )
    console.print(table)
    times = [run.seconds * 1000 for run in r.rounds]
    console.print(f"({r.metrics_rows:,} agent metrics rows checked against a recomputation from scratch)")
    console.print("[bold]Goal[/]:")
    console.print(
        f"  {verdict(max(times) <= GOAL_MS)} refresh after {args.new:,} new finished tasks: median "
        f"{statistics.median(times):.1f} ms, slowest {max(times):.1f} ms  goal <= {GOAL_MS:.0f} ms"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="use this server (a scratch database is created and dropped)")
    p.add_argument("--tasks", type=int, default=1_000_000, help="finished tasks loaded")
    p.add_argument("--agents", type=int, default=1_000, help="agents")
    p.add_argument("--jobs", type=int, default=50_000, help="completed or discarded runner jobs")
    p.add_argument("--runs", type=int, default=2_000, help="failed runner runs")
    p.add_argument("--new", type=int, default=10_000, help="tasks finishing per round")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
        create_autopilot(dsn, console)
        try:
            results = bench(dsn, args)
        except CorrectnessError as exc:
            console.print(f"[bold red]CORRECTNESS FAILURE[/]: {exc}")
            return 1
    print_report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
