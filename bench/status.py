"""`autopilot status` with 1,000,000 rows in the run ledger, then also 1,000,000 rows in pg_cron's
cron.job_run_details. Goal: under 1 s in both cases.

Loads 1,000,000 runs spread over every catalog job (a year of history), then times
``autopilot status --json`` as a real subprocess (what a DBA waits for, interpreter start
included) and the status query alone, median of 5 each. Then loads 1,000,000 rows into
cron.job_run_details in pg_cron's database (pg_cron never prunes it: other jobs of the cluster,
and autopilot's own runs; some autopilot jobs have no run at all, the worst case for finding a
job's last run) and times both again.

    PYTHONPATH=installer .venv/bin/python bench/status.py [--dsn DSN] [--rows N] [--cron-rows N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psycopg

from pg_autopilot import installer, schedules
from pg_autopilot.status import gather
from pg_autopilot.testing import Cluster

GOAL_SECONDS = 1.0


def load_ledger(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at,
                                            rows_affected, message)
            -- a runner-side firing is two runs: pg_cron's enqueue, then the worker's (trigger runner)
            SELECT c.name, c.side,
                   CASE WHEN c.side = 'runner' AND g / 7 %% 2 = 0 THEN 'runner' ELSE 'pg_cron' END,
                   CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'succeeded' END,
                   now() - (g * interval '30 seconds'),
                   now() - (g * interval '30 seconds') + interval '40 ms',
                   g %% 1000, 'benchmark run'
            FROM generate_series(1, %s) AS g
            CROSS JOIN LATERAL (
                SELECT name, side FROM autopilot.job_catalog ORDER BY name
                OFFSET (g %% (SELECT count(*) FROM autopilot.job_catalog)) LIMIT 1
            ) AS c
            """,
            [rows],
        )
        conn.execute("VACUUM ANALYZE autopilot.job_runs")
        count = conn.execute("SELECT count(*) FROM autopilot.job_runs").fetchone()[0]
    print(f"ledger rows: {count:,}")


def load_cron_history(admin: str, dbname: str, rows: int) -> None:
    """cron.job_run_details rows: nine in ten for jobs of other databases, the rest for half of the
    autopilot jobs of the benchmark database (the other half never ran)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        cron_db = conn.execute("SHOW cron.database_name").fetchone()[0]
    with psycopg.connect(psycopg.conninfo.make_conninfo(admin, dbname=cron_db), autocommit=True) as conn:
        conn.execute(
            """
            WITH ours AS (
                SELECT array_agg(jobid ORDER BY jobid) AS ids FROM cron.job
                WHERE database = %(db)s AND jobid %% 2 = 0
            )
            INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,
                                              return_message, start_time, end_time)
            SELECT CASE WHEN g %% 10 = 0 THEN ours.ids[1 + g / 10 %% cardinality(ours.ids)]
                        ELSE 1000000 + g %% 40 END,
                   g, CASE WHEN g %% 10 = 0 THEN %(db)s ELSE 'other' END, 'postgres', 'SELECT 1',
                   CASE WHEN g %% 50 = 0 THEN 'failed' ELSE 'succeeded' END, 'SELECT 1',
                   now() - ((%(rows)s - g) * interval '30 seconds'),
                   now() - ((%(rows)s - g) * interval '30 seconds') + interval '40 ms'
            FROM generate_series(1, %(rows)s) AS g, ours
            """,
            {"db": dbname, "rows": rows},
        )
        conn.execute("VACUUM ANALYZE cron.job_run_details")
        count = conn.execute("SELECT count(*) FROM cron.job_run_details").fetchone()[0]
    print(f"cron.job_run_details rows: {count:,}")


def time_it(fn, repeat: int = 5) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", help="an existing server (superuser); default: a throwaway cluster")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cron-rows", type=int, default=1_000_000)
    args = parser.parse_args()

    cluster = None if args.dsn else Cluster.create(durable=True)
    admin = args.dsn or cluster.dsn()
    dbname = "autopilot_bench_status"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            conn.execute(f"DROP DATABASE IF EXISTS {dbname}")
            conn.execute(f"CREATE DATABASE {dbname}")
        dsn = psycopg.conninfo.make_conninfo(admin, dbname=dbname)
        with psycopg.connect(dsn) as conn:
            installer.install(conn)
            schedules.sync(conn, dsn)
        load_ledger(dsn, args.rows)

        def query_only() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                gather(conn, dsn)

        def cli() -> None:
            done = subprocess.run(
                [sys.executable, "-m", "pg_autopilot.cli", "status", "--json"],
                env=dict(os.environ, AUTOPILOT_DSN=dsn),
                capture_output=True,
            )
            # 2: autopilot.health has a critical problem (the benchmark's runner jobs never completed)
            if done.returncode not in (0, 2):
                raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)

        def report(case: str) -> None:
            print(f"-- {case}")
            for label, times in (
                ("status (in process, connect + queries)", time_it(query_only)),
                ("autopilot status --json (subprocess)", time_it(cli)),
            ):
                median = statistics.median(times)
                verdict = "PASS" if median < GOAL_SECONDS else "MISS"
                print(
                    f"{label:42s} median {median * 1000:7.1f} ms  worst {max(times) * 1000:7.1f} ms"
                    f"  goal < {GOAL_SECONDS * 1000:.0f} ms  {verdict}"
                )

        report(f"{args.rows:,} ledger rows")
        if args.cron_rows:
            load_cron_history(admin, dbname, args.cron_rows)
            report(f"{args.rows:,} ledger rows and {args.cron_rows:,} rows in cron.job_run_details")
        with psycopg.connect(dsn, autocommit=True) as conn:
            plan = conn.execute(
                "EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON) SELECT * FROM autopilot.job_status"
            )
            total = [r[0] for r in plan.fetchall() if r[0].startswith("Execution Time")]
        print(f"autopilot.job_status view: {total[0] if total else '?'}")
    finally:
        if cluster:
            cluster.destroy()
        else:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f"SELECT cron.unschedule(jobid) FROM cron.job WHERE database = '{dbname}'")
                conn.execute("DELETE FROM cron.job_run_details WHERE database IN (%s, 'other')", [dbname])
                conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
