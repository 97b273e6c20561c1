"""`autopilot check` and `SELECT * FROM autopilot.health` with 1,000,000 runs in the ledger and 100,000
queued runner jobs. Goal: under 200 ms each.

Loads 1,000,000 runs spread over every catalog job and 100,000 jobs in autopilot.jobs (available, scheduled
and retryable over four queues, plus 5,000 discarded ones of the last two days), then times, median of 7:
the view alone (one query on an open connection), `autopilot check` in process (connect, read the view,
pg_cron's side from its own database) and as a real process (what Nagios waits for: a fresh process each
time, interpreter start and imports included): the `autopilot` console script of this venv (else
`python -m pg_autopilot.cli`), its bytecode cached as pip leaves an installed package (the warm-up run
writes it to a scratch PYTHONPYCACHEPREFIX, even under PYTHONDONTWRITEBYTECODE); then, for reference
only, the same under PYTHONDONTWRITEBYTECODE=1 (from a source checkout: the package is compiled at every
start) and the interpreter's start alone (on a busy machine, the floor).

    PYTHONPATH=installer .venv/bin/python bench/health.py [--dsn DSN] [--runs N] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from _scratch import scratch_database  # bench/_scratch.py
from rich.console import Console

from pg_autopilot import health, installer, schedules

GOAL_SECONDS = 0.2


def load(dsn: str, runs: int, jobs: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO autopilot.job_runs (job_name, side, trigger, status, started_at, finished_at,
                                            rows_affected, message)
            SELECT c.name, c.side, 'pg_cron',
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
            [runs],
        )
        conn.execute(
            """
            INSERT INTO autopilot.jobs (queue, worker, state, scheduled_at, attempt)
            SELECT 'q' || (g %% 4), 'backup',
                   (ARRAY['available', 'scheduled', 'retryable'])[1 + g %% 3],
                   now() + ((g %% 600) - 300) * interval '1 minute', g %% 3
            FROM generate_series(1, %s) AS g
            """,
            [jobs],
        )
        conn.execute(
            """
            INSERT INTO autopilot.jobs (queue, worker, state, discarded_at, attempt)
            SELECT 'q' || (g % 4), 'code-ingest', 'discarded', now() - g * interval '30 seconds', 20
            FROM generate_series(1, 5000) AS g
            """
        )
        conn.execute("VACUUM ANALYZE autopilot.job_runs, autopilot.jobs")
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM autopilot.job_runs), (SELECT count(*) FROM autopilot.jobs)"
        ).fetchone()
    print(f"ledger rows: {counts[0]:,}; autopilot.jobs rows: {counts[1]:,}")


def time_it(fn, repeat: int = 7) -> list[float]:
    fn()  # warm up (plans, caches)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def autopilot_argv() -> list[str]:
    """`autopilot` as a user runs it: the console script of this venv, else `python -m`."""
    script = Path(sys.executable).with_name("autopilot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pg_autopilot.cli"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", help="an existing server (superuser); default: a throwaway cluster")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the database (with --dsn): for plans")
    args = parser.parse_args()

    with scratch_database(args.dsn, "autopilot_bench_health", Console(), pg_cron=True, keep=args.keep) as dsn:
        with psycopg.connect(dsn) as conn:
            installer.install(conn)
            schedules.sync(conn, dsn)
        load(dsn, args.runs, args.jobs)

        with psycopg.connect(dsn, autocommit=True) as conn:

            def view() -> None:
                conn.execute("SELECT * FROM autopilot.health").fetchall()

            view_times = time_it(view)
            problems = conn.execute("SELECT check_name, count(*) FROM autopilot.health GROUP BY 1").fetchall()
            print("problems found:", ", ".join(f"{name} {n}" for name, n in sorted(problems)))

        def in_process() -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                health.problems(conn, dsn)

        def process(argv: list[str], env: dict[str, str]):
            def run() -> None:
                done = subprocess.run(argv, env=env, capture_output=True, text=True)
                if done.returncode not in (0, 1, 2):  # 3: UNKNOWN, else a crash
                    raise RuntimeError(done.stdout + done.stderr)

            return run

        argv = [*autopilot_argv(), "check"]
        base = {
            k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
        }
        print("autopilot check as a process:", " ".join(argv))
        with tempfile.TemporaryDirectory(prefix="autopilot-bench-pycache-") as pycache:
            cached = dict(base, AUTOPILOT_DSN=dsn, PYTHONPYCACHEPREFIX=pycache)
            # a source checkout under PYTHONDONTWRITEBYTECODE: pg_autopilot compiled at every start
            uncached = dict(base, AUTOPILOT_DSN=dsn, PYTHONDONTWRITEBYTECODE="1")
            rows = [
                ("SELECT * FROM autopilot.health", view_times, True),
                ("autopilot check (in process, connect + checks)", time_it(in_process), True),
                ("autopilot check (process)", time_it(process(argv, cached)), True),
                ("  reference: PYTHONDONTWRITEBYTECODE=1", time_it(process(argv, uncached)), False),
                (
                    "  reference: python -c pass",
                    time_it(process([sys.executable, "-c", "pass"], cached)),
                    False,
                ),
            ]
        for label, times, goal in rows:
            median = statistics.median(times)
            verdict = (
                f"  goal < {GOAL_SECONDS * 1000:.0f} ms  {'PASS' if median < GOAL_SECONDS else 'MISS'}"
                if goal
                else ""
            )
            print(f"{label:48s} median {median * 1000:7.1f} ms  worst {max(times) * 1000:7.1f} ms{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
