"""Benchmark: CentralCloud sync, 100,000 changed learned patterns pushed and merged.

Goal (from the issue): 100,000 changed patterns pushed (centralcloud-sync, through postgres_fdw) and
merged in the central database (centralcloud-merge) in <= 10 s.

What is measured, and how:

* A throwaway *durable* cluster (fsync on) is started with ``pg_autopilot.testing.Cluster`` (or
  ``--dsn`` names an existing server); two scratch databases, an instance and a central one, each
  with ``CREATE EXTENSION autopilot``. The instance reaches the central database through a
  postgres_fdw foreign server over TCP (127.0.0.1), as two hosts would, minus the network.
* The instance holds 100,000 learned patterns (``--patterns``), loaded server-side, then ``VACUUM
  ANALYZE`` and ``CHECKPOINT``.
* First push: ``SELECT autopilot.sync_learning_to_centralcloud()`` and its COMMIT (every pattern:
  the first push from a cluster sends all), then ``SELECT autopilot.merge_central_patterns()`` and
  its COMMIT in the central database, each timed client side; the goal is on their sum.
* Then, ``--rounds`` times, the case of the goal in steady state: every pattern changes (one UPDATE
  of all of them, as a large pattern-learning run would), then a push of the 100,000 changed rows and
  a merge that replaces each instance row and recomputes each global pattern.
* After every merge the central totals are checked against the instance's (a difference exits 1; a
  missed goal is printed as MISS, exit 0).

Run:  PYTHONPATH=installer .venv/bin/python bench/central_sync.py [--dsn DSN] [--patterns 100000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import psycopg
from _scratch import scratch_database  # bench/_scratch.py
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table

GOAL_S = 10.0
console = Console(highlight=False, width=140)

LOAD_SQL = """
INSERT INTO autopilot.learned_patterns (pattern_type, pattern_key, occurrences, successes, failures,
    success_rate, confidence, mean_score, score_count, codebases, first_seen_at, last_seen_at)
SELECT 'type-' || (g %% 20), 'pattern-' || g, 10 + g %% 90, 5 + g %% 5, g %% 5,
       (5 + g %% 5)::double precision / (5 + g %% 5 + g %% 5), 0.5, (g %% 100) / 100.0, 10 + g %% 90,
       ARRAY['codebase-' || (g %% 7), 'codebase-' || (g %% 11)], now() - interval '30 days', now()
FROM generate_series(1, %(patterns)s) AS g
"""

TOTALS_SQL = (
    "SELECT count(*), sum(occurrences), sum(successes), sum(failures), sum(score_count) FROM autopilot.{}"
)


def timed(conn: psycopg.Connection, query: str) -> tuple[float, dict]:
    started = time.perf_counter()
    summary = conn.execute(query).fetchone()[0]
    conn.commit()
    return time.perf_counter() - started, summary


def check(instance: psycopg.Connection, central: psycopg.Connection) -> None:
    ours = instance.execute(sql.SQL(TOTALS_SQL).format(sql.Identifier("learned_patterns"))).fetchone()
    theirs = central.execute(sql.SQL(TOTALS_SQL).format(sql.Identifier("global_patterns"))).fetchone()
    instance.commit()
    central.commit()
    if ours != theirs:
        console.print(f"FAIL: the central totals {theirs} differ from the instance's {ours}")
        raise SystemExit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="an existing server (superuser); default: a throwaway cluster")
    parser.add_argument("--patterns", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with (
        scratch_database(args.dsn, "autopilot_bench_instance", console) as instance_dsn,
        scratch_database(
            make_conninfo(instance_dsn, dbname="postgres"), "autopilot_bench_central", console
        ) as central_dsn,
        psycopg.connect(instance_dsn) as instance,
        psycopg.connect(central_dsn) as central,
    ):
        central.execute("CREATE EXTENSION autopilot")
        central.commit()
        target = conninfo_to_dict(central_dsn)
        instance.execute("CREATE EXTENSION autopilot")
        instance.execute("CREATE EXTENSION postgres_fdw")
        instance.execute(
            sql.SQL(
                "CREATE SERVER autopilot_central FOREIGN DATA WRAPPER postgres_fdw"
                " OPTIONS (host {}, port {}, dbname {})"
            ).format(
                sql.Literal(target.get("host") or "127.0.0.1"),
                sql.Literal(str(target.get("port") or 5432)),
                sql.Literal(target["dbname"]),
            )
        )
        instance.execute(
            sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER autopilot_central OPTIONS (user {})").format(
                sql.Literal(target.get("user") or "postgres")
            )
        )
        instance.execute("SELECT autopilot.set_setting('centralcloud.instance_id', 'bench-instance')")
        with console.status(f"loading {args.patterns:,} learned patterns"):
            instance.execute(LOAD_SQL, {"patterns": args.patterns})
            instance.commit()
            instance.autocommit = True
            instance.execute("VACUUM ANALYZE autopilot.learned_patterns")
            instance.execute("CHECKPOINT")
            instance.autocommit = False

        rows = []
        with console.status("first push (every pattern) and merge"):
            push_s, push = timed(instance, "SELECT autopilot.sync_learning_to_centralcloud()")
            merge_s, merge = timed(central, "SELECT autopilot.merge_central_patterns()")
        check(instance, central)
        rows.append(("first push (full)", push["rows_affected"], push_s, merge_s))

        steady = []
        for round_ in range(1, args.rounds + 1):
            with console.status(f"round {round_}: every pattern changes, push and merge"):
                instance.execute("UPDATE autopilot.learned_patterns SET occurrences = occurrences + 1")
                instance.commit()
                push_s, push = timed(instance, "SELECT autopilot.sync_learning_to_centralcloud()")
                merge_s, merge = timed(central, "SELECT autopilot.merge_central_patterns()")
            check(instance, central)
            if push["rows_affected"] != args.patterns or merge["rows_affected"] != args.patterns:
                console.print(f"FAIL: pushed {push['rows_affected']}, merged {merge['rows_affected']}")
                return 1
            rows.append((f"changed, round {round_}", push["rows_affected"], push_s, merge_s))
            steady.append(push_s + merge_s)

    table = Table(title=f"CentralCloud sync: {args.patterns:,} learned patterns, instance -> central")
    for column in ("run", "patterns pushed", "push + COMMIT", "merge + COMMIT", "total", "goal"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, count, push_s, merge_s in rows:
        total = push_s + merge_s
        verdict = f"<= {GOAL_S:.0f} s: {'PASS' if total <= GOAL_S else 'MISS'}"
        table.add_row(name, f"{count:,}", f"{push_s:.2f} s", f"{merge_s:.2f} s", f"{total:.2f} s", verdict)
    console.print(table)
    median = statistics.median(steady) if steady else float("nan")
    console.print(
        f"changed patterns, median of {len(steady)}: {median:.2f} s for {args.patterns:,} "
        f"({args.patterns / median:,.0f} patterns/s); central totals equal the instance's after every merge"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
