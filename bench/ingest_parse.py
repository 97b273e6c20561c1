"""Benchmark: the ingest core (parse, chunk, tags) over the standard library, beside the bare floor.

Goal (from the issue): the full ingest without embeddings (walk, hash, parse, chunk, tags,
write) runs at least at the rate of a bare single-process tree-sitter parse + tags query loop
over the same files, using both cores. This script measures the database-free part single-process
and the floor, in the same run, so the headroom left for hashing and writing is visible.

What is measured, and how:

* The corpus: the ``.py`` files of the running interpreter's standard library
  (``sysconfig.get_paths()['stdlib']``, or ``--root``), without ``site-packages`` /
  ``dist-packages`` (about 1,800 files), listed with ``ingest.files.list_files`` and read with
  ``read_file`` (timed: walk + read + sha256). Files are read into memory first, so the parse
  figures do not include disk reads.
* Ingest core: ``chunk_source`` on every file, one process (parse, definition-aware chunking,
  definitions / references / imports), timed as a whole.
* Floor: for every file a new parser parses it and one ``QueryCursor.captures`` runs the
  language's tags query (the very query ``chunk_source`` uses). For reference, the same loop
  with the grammar wheel's own ``queries/tags.scm`` (aider's kind of query) is timed too.
* Each timed loop runs ``--rounds`` times; the best round is reported (least disturbed by the
  other users of a shared machine).

Run:  PYTHONPATH=installer .venv/bin/python bench/ingest_parse.py [--root DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import collections
import importlib.resources
import statistics
import sysconfig
import time
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table
from tree_sitter import Query, QueryCursor

from pg_autopilot.ingest.chunker import CHUNKER_VERSION, ParsedFile, chunk_source
from pg_autopilot.ingest.files import FileContent, list_files, read_file
from pg_autopilot.ingest.languages import PYTHON, Language

SIZE_CAP = 4 * 1024 * 1024
STDLIB_EXCLUDE = ("site-packages", "dist-packages")
console = Console(highlight=False, width=140)


def load_corpus(
    root: str, include: Sequence[str] = ("*.py",), exclude: Sequence[str] = STDLIB_EXCLUDE
) -> tuple[list[FileContent], int, float]:
    """Every selected file's content, the number skipped, and the seconds walk + read + hash took."""
    started = time.perf_counter()
    contents, skipped = [], 0
    for relative in list_files(root, include=include, exclude=exclude):
        result = read_file(root, relative, SIZE_CAP)
        if isinstance(result, FileContent):
            contents.append(result)
        else:
            skipped += 1
    return contents, skipped, time.perf_counter() - started


def best_of(rounds: int, run: Callable[[], object]) -> tuple[float, object]:
    """The fastest of ``rounds`` runs (seconds) and the last run's result."""
    best, result = float("inf"), None
    for _ in range(rounds):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def ingest_core(contents: list[FileContent]) -> list[ParsedFile]:
    return [chunk_source(content.path, content.data, PYTHON) for content in contents]


def floor_loop(contents: list[FileContent], query: Query, language: Language = PYTHON) -> int:
    """The floor: a new parser parses each file, one ``QueryCursor.captures`` runs ``query``."""
    captured = 0
    for content in contents:
        root = language.parser().parse(content.data).root_node
        captured += sum(len(nodes) for nodes in QueryCursor(query).captures(root).values())
    return captured


def grammar_tags_query() -> Query:
    source = importlib.resources.files("tree_sitter_python").joinpath("queries/tags.scm").read_text()
    return Query(PYTHON.grammar, source)


def summary_table(contents: list[FileContent], parsed: list[ParsedFile], timings: dict[str, float]) -> Table:
    files = len(contents)
    chunks = sum(len(item.chunks) for item in parsed)
    megabytes = sum(len(content.data) for content in contents) / 1e6
    table = Table(title=f"Ingest core over {files:,} files, {megabytes:.1f} MB")
    for column in ("loop (single process)", "seconds", "files/s", "MB/s", "chunks/s"):
        table.add_column(column, justify="left" if column.startswith("loop") else "right")
    for name, seconds in timings.items():
        chunk_rate = f"{chunks / seconds:,.0f}" if name.startswith("chunk_source") else ""
        table.add_row(
            name, f"{seconds:.2f}", f"{files / seconds:,.0f}", f"{megabytes / seconds:.1f}", chunk_rate
        )
    return table


def output_table(parsed: list[ParsedFile]) -> Table:
    sizes = sorted(chunk.end_byte - chunk.start_byte for item in parsed for chunk in item.chunks)
    kinds = collections.Counter(chunk.kind for item in parsed for chunk in item.chunks)
    table = Table(title="What came out")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [
        ("chunks", f"{len(sizes):,}"),
        ("chunks by kind", ", ".join(f"{kind} {count:,}" for kind, count in kinds.most_common())),
        ("chunk bytes: median / p90 / max", f"{statistics.median(sizes):,.0f} / "
         f"{sizes[int(len(sizes) * 0.9)]:,} / {sizes[-1]:,}"),
        ("definitions", f"{sum(len(item.definitions) for item in parsed):,}"),
        ("references", f"{sum(len(item.references) for item in parsed):,}"),
        ("imports", f"{sum(len(item.imports) for item in parsed):,}"),
        ("files with syntax errors", f"{sum(1 for item in parsed if item.syntax_errors):,}"),
        ("syntax errors (ERROR / MISSING regions)", f"{sum(item.syntax_errors for item in parsed):,}"),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", default=sysconfig.get_paths()["stdlib"], help="the corpus (default: stdlib)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each loop; the best is reported")
    arguments = parser.parse_args()

    contents, skipped, load_seconds = load_corpus(arguments.root)
    if not contents:
        raise SystemExit(f"no .py files found under {arguments.root}")
    console.print(f"corpus: {arguments.root}: {len(contents):,} files ({skipped} skipped)")
    console.print(f"chunker version: {CHUNKER_VERSION}")
    own_query, shipped_query = PYTHON.query, grammar_tags_query()
    floor_seconds, _ = best_of(arguments.rounds, lambda: floor_loop(contents, own_query))
    shipped_seconds, _ = best_of(arguments.rounds, lambda: floor_loop(contents, shipped_query))
    core_seconds, parsed = best_of(arguments.rounds, lambda: ingest_core(contents))
    timings = {
        "walk + read + sha256 (list_files, read_file)": load_seconds,
        "floor: parse + tags query": floor_seconds,
        "reference: parse + grammar's tags.scm": shipped_seconds,
        "chunk_source: parse + chunk + tags": core_seconds,
    }
    console.print(summary_table(contents, parsed, timings))
    console.print(output_table(parsed))
    ratio = floor_seconds / core_seconds
    console.print(
        f"chunk_source runs at [bold]{ratio:.2f}x[/] the floor's rate in one process; the goal is the "
        "full ingest (walk, hash, parse, chunk, tags, write) at >= 1.00x using both cores, so one "
        f"process of the core alone must stay above 0.50x: {'OK' if ratio >= 0.5 else 'MISS'}"
    )


if __name__ == "__main__":
    main()
