"""Benchmark: code search quality (autopilot.search_code) on the query set over the ingested standard library.

Goal (from the issue): MiniLM hybrid search (exact vector top-k and full-text over code tokens, fused)
finds each query's target in its first 5 results for at least 90% of bench/code_queries.json.

What is measured, and how:

* A throwaway durable cluster (or ``--dsn``'s server), ``CREATE EXTENSION autopilot``. The running
  interpreter's standard library (``.py`` files, tests included, ``site-packages`` left out) is
  ingested whole by the pipeline (``ingest.pipeline.Ingest``) as the codebase ``stdlib`` and embedded
  with the hashing embedder (cheap): the full-size corpus.
* MiniLM on the whole library takes several minutes on 2 cores, so by default the semantic
  configurations search a sample: every file holding a query's target plus files drawn at random
  (``--seed``) from the rest until the sample has ``--chunks`` chunks; ingested by the same pipeline
  as the codebases ``sample-minilm`` (the configured MiniLM: all-MiniLM-L6-v2, full precision, 128
  tokens) and ``sample-hashing``, so that both halves of each search see the same chunks. ``--all``
  makes the sample the whole library. The embedding step's rate through the pipeline (chunks/s,
  database writes included) is printed; the embedder alone, its peak RSS and its quality against
  full precision are bench/embeddings.py's.
* A query's target (``path:Qualified.name``) is found when a result row is a chunk of that file whose
  symbol is the name, or whose lines hold the name's definition (a small function shares its chunk
  with its neighbours). Its rank is the first such row's, among ``--limit`` rows.
* The configurations: MiniLM hybrid, MiniLM vector-only (no query text), hashing hybrid (on the sample
  and on the whole library), and text-only; each through ``autopilot.search_code`` exactly as
  ``autopilot search`` calls it (``codebases.search``): recall@1, recall@5, recall@10, MRR. The
  queries MiniLM hybrid misses (rank > 5) are listed with their rank in each half. ``--baseline REF``
  measures the configurations that use the query text again with search_code as it was at the git
  revision REF (replaced in the scratch database only): before and after, side by side.

Run:  PYTHONPATH=installer .venv/bin/python bench/code_search.py [--dsn DSN] [--chunks 8000] [--all] [--quick]
          [--baseline GIT_REF]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from _scratch import create_autopilot, scratch_database, verdict  # bench/_scratch.py
from rich.console import Console
from rich.table import Table

from pg_autopilot import codebases, db
from pg_autopilot.embeddings import Embedder, HashingEmbedder
from pg_autopilot.ingest.pipeline import Ingest, IngestSummary

SCRATCH_DB = "autopilot_bench_code_search"
ROOT = Path(__file__).resolve().parents[1]
QUERIES = Path(__file__).with_name("code_queries.json")
STDLIB_INCLUDE = ["*.py"]
STDLIB_EXCLUDE = ["site-packages", "dist-packages"]
GOAL_RECALL5 = 0.9
DEFAULT_CHUNKS = 8000
QUICK_CHUNKS = 2500

console = Console(highlight=False, width=150)


@dataclass(frozen=True)
class Config:
    name: str
    codebase: str
    embedder: str | None  # "minilm", "hashing" or None (text only)
    text: bool  # the query text is passed (the full-text half)


def connector(dsn: str):
    return lambda: db.connect(dsn, autocommit=False)


def run_ingest(dsn: str, name: str, embedder: Embedder | None) -> tuple[IngestSummary, float]:
    with db.connect(dsn) as conn:
        codebase = codebases.load(conn, name)
    started = time.perf_counter()
    summary = Ingest(connector(dsn), codebase, embedder, size_cap=1 << 20).run()
    return summary, time.perf_counter() - started


def load_queries(dsn: str) -> list[dict]:
    """The query set, without the queries whose target this standard library lacks (said)."""
    queries = json.loads(QUERIES.read_text())
    with psycopg.connect(dsn) as conn:
        kept = []
        for query in queries:
            path, _, name = query["target"].partition(":")
            found = conn.execute(
                "SELECT EXISTS (SELECT FROM autopilot.code_symbols AS s WHERE s.codebase = 'stdlib'"
                " AND s.file_path = %s AND s.role = 'definition' AND s.name = %s)",
                [path, name],
            ).fetchone()[0]
            if found:
                kept.append({**query, "path": path, "name": name})
            else:
                console.print(
                    f"[yellow]query target not in this standard library, dropped:[/] {query['target']}"
                )
    return kept


def sample_files(dsn: str, queries: list[dict], chunks: int, seed: int) -> tuple[list[str], int]:
    """The files holding a target, then random others until ``chunks`` chunks; the files and their chunks."""
    with psycopg.connect(dsn) as conn:
        counts = dict(
            conn.execute(
                "SELECT c.file_path, count(*) FROM autopilot.code_chunks AS c"
                " WHERE c.codebase = 'stdlib' AND c.superseded_at IS NULL GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
    targets = sorted({q["path"] for q in queries})
    chosen, total = list(targets), sum(counts[p] for p in targets)
    others = [path for path in counts if path not in set(targets)]
    random.Random(seed).shuffle(others)
    for path in others:
        if total >= chunks:
            break
        chosen.append(path)
        total += counts[path]
    return sorted(chosen), total


def target_chunks(conn: psycopg.Connection, codebase: str, query: dict) -> set[int]:
    """The chunks that hold the query's target: its symbol's, or holding a line that defines it."""
    rows = conn.execute(
        "SELECT c.id FROM autopilot.code_chunks AS c"
        " WHERE c.codebase = %(cb)s AND c.file_path = %(path)s AND c.superseded_at IS NULL"
        " AND (c.symbol = %(name)s OR EXISTS (SELECT FROM autopilot.code_symbols AS s"
        "   WHERE s.codebase = c.codebase AND s.file_path = c.file_path AND s.role = 'definition'"
        "   AND s.name = %(name)s AND s.line BETWEEN c.start_line AND c.end_line))",
        {"cb": codebase, "path": query["path"], "name": query["name"]},
    ).fetchall()
    return {row[0] for row in rows}


def search_rows(
    conn: psycopg.Connection, config: Config, embedder: Embedder | None, vector, text: str, limit: int
) -> list[tuple]:
    """search_code's rows (chunk id, vector rank, text rank) as ``autopilot search`` asks for them."""
    return conn.execute(
        "SELECT s.chunk_id, s.vector_rank, s.text_rank"
        " FROM autopilot.search_code(%s::real[], %s, %s, %s, %s) AS s",
        [
            vector,
            text if config.text else None,
            config.codebase,
            limit,
            embedder.model_id if embedder else None,
        ],
    ).fetchall()


def evaluate(dsn: str, configs: list[Config], embedders: dict, queries: list[dict], limit: int) -> dict:
    """Per configuration: the target's rank for each query (0: not in the first ``limit`` rows), and the
    target's rank in each half (from the row of the target, when it is returned)."""
    results = {}
    vectors = {
        name: [embedder.embed_query(q["query"]) for q in queries] for name, embedder in embedders.items()
    }
    with psycopg.connect(dsn) as conn:
        for config in configs:
            embedder = embedders.get(config.embedder)
            ranks, halves, seconds = [], [], []
            for i, query in enumerate(queries):
                wanted = target_chunks(conn, config.codebase, query)
                if not wanted:
                    raise SystemExit(f"{config.codebase}: no chunk holds {query['target']}")
                vector = vectors[config.embedder][i] if embedder else None
                started = time.perf_counter()
                rows = search_rows(conn, config, embedder, vector, query["query"], limit)
                seconds.append(time.perf_counter() - started)
                hit = next(((n, row) for n, row in enumerate(rows, 1) if row[0] in wanted), None)
                ranks.append(hit[0] if hit else 0)
                halves.append((hit[1][1], hit[1][2]) if hit else (None, None))
            results[config.name] = {
                "ranks": np.asarray(ranks),
                "halves": halves,
                "ms": 1000 * float(np.median(seconds)),
            }
    return results


def install_baseline(dsn: str, ref: str) -> None:
    """search_code as it was at the git revision ``ref`` (CREATE OR REPLACE: same signature)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{ref}:sql/functions/search/search_code.sql"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"git show {ref}:sql/functions/search/search_code.sql failed: {done.stderr.strip()}")
    text = done.stdout.replace(
        "CREATE FUNCTION autopilot.search_code(", "CREATE OR REPLACE FUNCTION autopilot.search_code(", 1
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(text)


def metrics(ranks: np.ndarray) -> dict[str, float]:
    found = ranks > 0
    reciprocal = np.where(found, 1.0 / np.where(found, ranks, 1), 0.0)
    return {
        "r1": float((found & (ranks <= 1)).mean()),
        "r5": float((found & (ranks <= 5)).mean()),
        "r10": float((found & (ranks <= 10)).mean()),
        "mrr": float(reciprocal.mean()),
    }


def report(
    results: dict,
    configs: list[Config],
    queries: list[dict],
    sizes: dict[str, int],
    limit: int,
    baseline: tuple[str, dict] | None,
) -> None:
    table = Table(
        title=f"search_code on {len(queries)} queries ({limit} rows asked, as `autopilot search` does; MRR "
        f"over them, a miss counting 0; ms: median per query)"
    )
    for column in (
        "configuration",
        "corpus chunks",
        "recall@1",
        "recall@5",
        "recall@10",
        "MRR",
        "ms",
        "goal",
    ):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    runs = [("", results)] + ([(f" [{baseline[0]}]", baseline[1])] if baseline else [])
    for config in configs:
        for label, figures in runs:
            if config.name not in figures:
                continue
            m = metrics(figures[config.name]["ranks"])
            goal = verdict(m["r5"] >= GOAL_RECALL5) if config.name == "MiniLM hybrid" else ""
            table.add_row(
                config.name + label,
                f"{sizes[config.codebase]:,}",
                f"{m['r1']:.3f}",
                f"{m['r5']:.3f}",
                f"{m['r10']:.3f}",
                f"{m['mrr']:.3f}",
                f"{figures[config.name]['ms']:.0f}",
                goal,
            )
    console.print(table)
    hybrid, vector = results["MiniLM hybrid"], results["MiniLM vector-only"]
    misses = Table(title="MiniLM hybrid: targets not in the first 5 (rank 0: not in the first rows at all)")
    for column in ("query", "target", "hybrid", "vector-only", "its vector / text rank in the hybrid"):
        misses.add_column(column, justify="left" if column in ("query", "target") else "right")
    for i, query in enumerate(queries):
        rank = hybrid["ranks"][i]
        if rank == 0 or rank > 5:
            v, t = hybrid["halves"][i]
            misses.add_row(
                query["query"],
                query["target"],
                str(rank),
                str(vector["ranks"][i]),
                f"{v or '-'} / {t or '-'}",
            )
    if misses.row_count:
        console.print(misses)
    else:
        console.print("MiniLM hybrid finds every target in its first 5 results")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dsn", help="an existing server (superuser) instead of a throwaway cluster")
    parser.add_argument("--chunks", type=int, default=DEFAULT_CHUNKS, help="chunks in the MiniLM sample")
    parser.add_argument("--seed", type=int, default=0, help="the sample's random draw")
    parser.add_argument("--all", action="store_true", help="MiniLM over the whole standard library (minutes)")
    parser.add_argument("--quick", action="store_true", help=f"a sample of {QUICK_CHUNKS} chunks")
    parser.add_argument(
        "--limit", type=int, default=10, help="rows asked of search_code per query (autopilot search: 10)"
    )
    parser.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also measure search_code as it was at this git revision (e.g. HEAD), for before/after",
    )
    args = parser.parse_args()
    chunks = QUICK_CHUNKS if args.quick else args.chunks
    root = sysconfig.get_paths()["stdlib"]
    console.print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    from pg_autopilot.embeddings.minilm import MiniLMEmbedder

    with console.status("loading MiniLM"):
        minilm = MiniLMEmbedder()  # the configured default: what embeddings.model = auto / minilm loads
    embedders = {"minilm": minilm, "hashing": HashingEmbedder()}
    with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
        create_autopilot(dsn, console)
        with db.connect(dsn, autocommit=True) as conn:
            codebases.add(conn, "stdlib", root, STDLIB_INCLUDE, STDLIB_EXCLUDE)
        with console.status("ingesting the standard library, embedding it with hashing"):
            summary, seconds = run_ingest(dsn, "stdlib", embedders["hashing"])
        console.print(f"{summary.line()} (wall {seconds:.1f} s)")
        queries = load_queries(dsn)
        if args.all:
            files, sample_chunks = [], summary.chunks
        else:
            files, sample_chunks = sample_files(dsn, queries, chunks, args.seed)
        include = ["/" + path for path in files] if files else STDLIB_INCLUDE  # anchored: exactly these files
        sizes = {"stdlib": summary.chunks}
        with db.connect(dsn, autocommit=True) as conn:
            for name in ("sample-minilm", "sample-hashing"):
                codebases.add(conn, name, root, include, STDLIB_EXCLUDE)
        console.print(
            f"sample: {len(files) or 'every'} files, {sample_chunks:,} chunks"
            + ("" if args.all else f" (files of the {len({q['path'] for q in queries})} targets' modules + a "
               f"random draw, seed {args.seed})")
        )  # fmt: skip
        for name, embedder in (("sample-minilm", minilm), ("sample-hashing", embedders["hashing"])):
            parsed, _ = run_ingest(dsn, name, None)
            with console.status(f"embedding {parsed.chunks:,} chunks with {embedder.model_id}"):
                embedded, seconds = run_ingest(dsn, name, embedder)
            sizes[name] = parsed.chunks
            reused = f", {embedded.reused_embeddings:,} reused" if embedded.reused_embeddings else ""
            console.print(
                f"{name}: {embedded.embedded:,} chunks embedded{reused} with {embedder.model_id} in "
                f"{seconds:.1f} s through the pipeline: {embedded.embedded / seconds:,.1f} chunks/s"
            )
        console.print(
            f"peak RSS of this process (MiniLM loaded, every step): "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB"
        )
        configs = [
            Config("MiniLM hybrid", "sample-minilm", "minilm", True),
            Config("MiniLM vector-only", "sample-minilm", "minilm", False),
            Config("hashing hybrid", "sample-hashing", "hashing", True),
            Config("hashing vector-only", "sample-hashing", "hashing", False),
            Config("text-only", "sample-minilm", None, True),
            Config("hashing hybrid, whole library", "stdlib", "hashing", True),
            Config("text-only, whole library", "stdlib", None, True),
        ]
        with console.status(f"{len(queries)} queries x {len(configs)} configurations"):
            results = evaluate(dsn, configs, embedders, queries, args.limit)
        baseline = None
        if args.baseline:
            install_baseline(dsn, args.baseline)
            with console.status(f"the same, with search_code of {args.baseline}"):
                with_text = [c for c in configs if c.text]
                baseline = (args.baseline, evaluate(dsn, with_text, embedders, queries, args.limit))
    report(results, configs, queries, sizes, args.limit, baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
