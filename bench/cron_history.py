"""cron-history-cleanup where pg_cron lives in another database: the runner's worker pruning
1,000,000 rows of cron.job_run_details (pg_cron in ``postgres``, autopilot in another database).

Loads the history first (older runs have lower runids, as pg_cron writes them: nine in ten older than
cron_history.retention), then installs autopilot and registers its jobs, and times one run of the
worker's code (pg_autopilot.cron_history.prune: the statement jobs' runs recorded, then the batches).
No goal of its own: the job runs once a day; the figure says what one run costs the first time, when
a year of history is waiting.

    PYTHONPATH=installer .venv/bin/python bench/cron_history.py [--rows N]
"""

from __future__ import annotations

import argparse
import sys
import time

import psycopg

from pg_autopilot import cron_history, installer, schedules
from pg_autopilot.testing import Cluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    cluster = Cluster.create(durable=True)
    try:
        admin = cluster.dsn()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            conn.execute("CREATE DATABASE app")
            # a tenth of the rows are newer than the retention (7 days), the rest spread over a year
            conn.execute(
                """
                INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status,
                                                  return_message, start_time, end_time)
                SELECT 1000000 + g %% 40, g, 'other', 'postgres', 'SELECT 1', 'succeeded', 'SELECT 1',
                       now() - (%(rows)s - g) * (interval '7 days' * 10 / %(rows)s) - interval '1 minute',
                       now() - (%(rows)s - g) * (interval '7 days' * 10 / %(rows)s) - interval '1 minute'
                       + interval '40 ms'
                FROM generate_series(1, %(rows)s) AS g
                """,
                {"rows": args.rows},
            )
            conn.execute("VACUUM ANALYZE cron.job_run_details")
        dsn = psycopg.conninfo.make_conninfo(admin, dbname="app")
        with psycopg.connect(dsn) as conn:
            installer.install(conn)
            schedules.sync(conn, dsn)
        start = time.perf_counter()
        pruned = cron_history.prune(dsn)
        took = time.perf_counter() - start
        with psycopg.connect(admin, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM cron.job_run_details").fetchone()[0]
        print(f"cron.job_run_details rows before: {args.rows:,}, after: {left:,}")
        print(f"cron-history-cleanup on the runner: {pruned.line()}")
        print(f"one run: {took:.1f} s ({pruned.deleted / took:,.0f} rows/s)")
        start = time.perf_counter()
        again = cron_history.prune(dsn)
        print(f"the next run: {again.line()} in {time.perf_counter() - start:.2f} s")
    finally:
        cluster.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
