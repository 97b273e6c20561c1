"""Benchmark: pattern-learning folding analysis results into learned patterns.

Goals (from the issue): 1,000,000 analysis rows folded at >= 200,000 rows/s; with 1,000,000 rows
already learned, a run over 10,000 new rows <= 300 ms.

What is measured, and how:

* A throwaway *durable* cluster (fsync on, synchronous_commit on, full_page_writes on) is started
  with ``pg_autopilot.testing.Cluster`` (or ``--dsn`` names an existing server); the extension is
  created in a scratch database ``autopilot_bench_learning``. pg_cron is not needed.
* For each pattern count (``--patterns``, default 100,000 and 1,000,000: ten rows per pattern, or
  every row a pattern of its own), ``autopilot.analysis_results`` is emptied and loaded server-side
  with 1,000,000 rows (``INSERT ... SELECT generate_series``): 8 pattern types, 20 codebases,
  outcomes 50% success / 25% failure / 25% neutral, two rows in three with a score. Then
  ``VACUUM ANALYZE`` and ``CHECKPOINT``.
* Full fold: the job as pg_cron runs it, ``CALL autopilot.run_scheduled_job('pattern-learning')``
  on an autocommit connection, timed as a whole (ledger rows and commits included); rows/s = rows
  folded (from the ledger) / wall time of the CALL.
* Incremental runs: then ``VACUUM ANALYZE`` (the nightly vacuum-analyze job) and, ``--runs``
  times: 10,000 new rows committed (nine in ten for patterns already learned, one in ten new, some
  in a new codebase), then one timed CALL. The figure is the median and the worst run.
* Correctness after every run: the ledger's row count is what was loaded; at the end every pattern's
  counts (occurrences, successes, failures, score_count, codebases) equal a GROUP BY over the
  analysis rows, and the watermark's total equals the table. A correctness failure exits 1; a missed
  goal is printed as MISS and still exits 0.

Run:  PYTHONPATH=installer .venv/bin/python bench/pattern_learning.py [--dsn DSN] [--patterns 100000]
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

JOB = "pattern-learning"
SCRATCH_DB = "autopilot_bench_learning"

GOAL_ROWS_PER_S = 200_000
GOAL_INCREMENTAL_MS = 300.0

console = Console(highlight=False, width=140)

# Row g: pattern key g mod P (spread over the types), codebase g mod 20, outcome by g mod 4, a score
# unless g mod 3 = 0, created over the last ~12 days.
LOAD_SQL = """
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, score,
                                        details, created_at)
SELECT 'codebase-' || (g %% 20), 'analyzer-' || (g %% 5),
       'type-' || (k %% 8), 'pattern-' || k,
       (ARRAY['success', 'failure', 'success', 'neutral'])[1 + g %% 4],
       CASE WHEN g %% 3 = 0 THEN NULL ELSE (g %% 1000) / 1000.0 END,
       jsonb_build_object('line', g %% 500),
       now() - interval '1 second' * g
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT (g::bigint * 7919) %% %(patterns)s AS k) AS p
"""

# 10,000 new rows: nine in ten for patterns already learned, one in ten for new ones; one in fifty
# from a codebase never seen before.
NEW_ROWS_SQL = """
INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, score)
SELECT CASE WHEN g %% 50 = 0 THEN 'codebase-new-' || %(round)s ELSE 'codebase-' || (g %% 20) END,
       'analyzer-' || (g %% 5),
       'type-' || (k %% 8),
       CASE WHEN g %% 10 = 0 THEN 'new-' || %(round)s || '-' || g ELSE 'pattern-' || k END,
       (ARRAY['success', 'failure', 'neutral', 'success'])[1 + g %% 4],
       CASE WHEN g %% 2 = 0 THEN 0.5 END
FROM generate_series(1, %(rows)s) AS g
CROSS JOIN LATERAL (SELECT (g::bigint * 104729 + %(round)s) %% %(patterns)s AS k) AS p
"""

# every learned pattern against a GROUP BY over the analysis rows: the rows that disagree
CHECK_SQL = """
WITH expected AS (
    SELECT pattern_type, pattern_key, count(*) AS occurrences,
           count(*) FILTER (WHERE outcome = 'success') AS successes,
           count(*) FILTER (WHERE outcome = 'failure') AS failures,
           count(score) AS score_count,
           array_agg(DISTINCT codebase ORDER BY codebase) AS codebases
    FROM autopilot.analysis_results GROUP BY 1, 2
)
SELECT count(*) FROM expected AS e
FULL JOIN autopilot.learned_patterns AS p USING (pattern_type, pattern_key)
WHERE (e.occurrences, e.successes, e.failures, e.score_count, e.codebases)
      IS DISTINCT FROM (p.occurrences, p.successes, p.failures, p.score_count, p.codebases)
"""


@dataclass
class Run:
    rows: int
    seconds: float

    @property
    def ms(self) -> float:
        return self.seconds * 1000


@dataclass
class Result:
    patterns: int
    rows: int
    learned: int = 0
    full: Run | None = None
    incremental: list[Run] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.full.rows / self.full.seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(r.ms for r in self.incremental)

    @property
    def worst_ms(self) -> float:
        return max(r.ms for r in self.incremental)


def run_job(conn: psycopg.Connection) -> Run:
    """The job as pg_cron runs it, timed as a whole; the rows folded come from the ledger."""
    t0 = time.perf_counter()
    conn.execute("CALL autopilot.run_scheduled_job(%s)", (JOB,))
    seconds = time.perf_counter() - t0
    status, rows, message = conn.execute(
        "SELECT status, rows_affected, message FROM autopilot.job_runs WHERE job_name = %s "
        "ORDER BY id DESC LIMIT 1",
        (JOB,),
    ).fetchone()
    if status != "succeeded":
        raise CorrectnessError(f"the run ended {status}: {message}")
    return Run(rows, seconds)


def settle(conn: psycopg.Connection) -> None:
    conn.execute("VACUUM (ANALYZE) autopilot.analysis_results, autopilot.learned_patterns")
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def verify(conn: psycopg.Connection) -> None:
    (wrong,) = conn.execute(CHECK_SQL).fetchone()
    total, folded, learned = conn.execute(
        "SELECT (SELECT count(*) FROM autopilot.analysis_results), "
        "(SELECT rows_total FROM autopilot.learning_watermarks WHERE name = 'pattern-learning'), "
        "(SELECT sum(occurrences) FROM autopilot.learned_patterns)"
    ).fetchone()
    problems = []
    if wrong:
        problems.append(f"{wrong} learned patterns disagree with their analysis rows")
    if not total == folded == learned:
        problems.append(f"{total} analysis rows, the watermark counts {folded}, learned_patterns {learned}")
    if problems:
        raise CorrectnessError("; ".join(problems))


def bench_patterns(dsn: str, rows: int, patterns: int, new_rows: int, runs: int) -> Result:
    result = Result(patterns, rows)
    with psycopg.connect(dsn, autocommit=True) as conn:
        with console.status(f"{patterns:,} patterns: loading {rows:,} analysis rows"):
            conn.execute(
                "TRUNCATE autopilot.analysis_results, autopilot.learned_patterns, "
                "autopilot.learning_watermarks, autopilot.job_runs RESTART IDENTITY"
            )
            conn.execute(LOAD_SQL, {"rows": rows, "patterns": patterns})
            settle(conn)
        with console.status(f"{patterns:,} patterns: folding {rows:,} rows"):
            result.full = run_job(conn)
        if result.full.rows != rows:
            raise CorrectnessError(f"the full run folded {result.full.rows} rows, expected {rows}")
        (result.learned,) = conn.execute("SELECT count(*) FROM autopilot.learned_patterns").fetchone()
        with console.status(f"{patterns:,} patterns: checking the fold"):
            verify(conn)
            settle(conn)
        for n in range(runs):
            with console.status(f"{patterns:,} patterns: incremental run {n + 1} of {runs}"):
                conn.execute(NEW_ROWS_SQL, {"rows": new_rows, "patterns": patterns, "round": n})
                run = run_job(conn)
            if run.rows != new_rows:
                raise CorrectnessError(f"incremental run {n + 1} folded {run.rows} rows, expected {new_rows}")
            result.incremental.append(run)
        with console.status(f"{patterns:,} patterns: checking every pattern"):
            verify(conn)
    return result


# -- report -----------------------------------------------------------------------------------


def print_summary(results: list[Result], new_rows: int) -> None:
    table = Table(title="pattern-learning, durable cluster")
    for header in (
        "patterns",
        "rows folded",
        "learned rows",
        "full fold s",
        "rows/s",
        f"run over {new_rows:,} new: median ms",
        "worst ms",
    ):
        table.add_column(header, justify="right")
    for r in results:
        table.add_row(
            f"{r.patterns:,}",
            f"{r.full.rows:,}",
            f"{r.learned:,}",
            f"{r.full.seconds:.2f}",
            f"{r.rate:,.0f}",
            f"{r.median_ms:.1f}",
            f"{r.worst_ms:.1f}",
        )
    console.print(table)


def print_goals(results: list[Result], rows: int, new_rows: int) -> None:
    console.print("[bold]Goals[/]:")
    for r in results:
        console.print(
            f"  {verdict(r.rate >= GOAL_ROWS_PER_S)} {rows:,} rows into {r.learned:,} patterns folded at "
            f"{r.rate:,.0f} rows/s  goal >= {GOAL_ROWS_PER_S:,}"
        )
        console.print(
            f"  {verdict(r.worst_ms <= GOAL_INCREMENTAL_MS)} with {rows:,} rows "
            f"({r.learned:,} patterns) learned, "
            f"a run over {new_rows:,} new rows: median {r.median_ms:.1f} ms, worst {r.worst_ms:.1f} ms  "
            f"goal <= {GOAL_INCREMENTAL_MS:.0f} ms"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="use this server (a scratch database is created and dropped)")
    p.add_argument("--rows", type=int, default=1_000_000, help="analysis rows to fold (default 1,000,000)")
    p.add_argument(
        "--patterns",
        default="100000,1000000",
        type=lambda s: [int(x) for x in s.split(",")],
        help="comma-separated distinct pattern counts among the rows (default: 100000,1000000)",
    )
    p.add_argument("--new-rows", type=int, default=10_000, help="rows per incremental run (default 10,000)")
    p.add_argument("--runs", type=int, default=5, help="incremental runs per pattern count (default 5)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results: list[Result] = []
    with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
        create_autopilot(dsn, console)
        try:
            for patterns in args.patterns:
                results.append(bench_patterns(dsn, args.rows, patterns, args.new_rows, args.runs))
                r = results[-1]
                console.print(
                    f"{patterns:,} patterns: {r.full.rows:,} rows folded in {r.full.seconds:.2f} s "
                    f"({r.rate:,.0f} rows/s); runs over {args.new_rows:,} new rows: "
                    + ", ".join(f"{run.ms:.0f}" for run in r.incremental)
                    + " ms; every pattern checked"
                )
        except CorrectnessError as exc:
            console.print(f"[bold red]CORRECTNESS FAILURE[/]: {exc}")
            return 1
    print_summary(results, args.new_rows)
    print_goals(results, args.rows, args.new_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
