"""`autopilot codebase ...`, `autopilot search` and `autopilot code top`: code intelligence from the
command line (the work is pg_autopilot.codebases and pg_autopilot.ingest, the same code the
code-ingest worker runs)."""

from __future__ import annotations

import json
import threading

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import codebases
from .cli_common import console, dsn_option, handled
from .db import connect
from .errors import InvalidInput
from .ingest.files import CodebaseError
from .terminal import safe, safe_data


@click.group()
def codebase() -> None:
    """Source trees that code-ingest parses, chunks and embeds."""


@codebase.command("add")
@dsn_option
@click.argument("name")
@click.argument("path", type=click.Path(file_okay=False))
@click.option(
    "--include", multiple=True, metavar="GLOB", help="Only paths matching one of these (** for any depth)."
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Never paths matching these.")
@handled
def add(dsn: str | None, name: str, path: str, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
    """Register NAME at PATH (ingested by the next code-ingest, or now with `codebase ingest NAME`)."""
    with connect(dsn) as conn:
        root = codebases.add(conn, name, path, include, exclude)
    console.print(f"codebase {escape(safe(name))} added: {escape(safe(root))}", highlight=False)


@codebase.command("list")
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handled
def list_(dsn: str | None, as_json: bool) -> None:
    """The codebases, with their files, chunks, embeddings and last ingest."""
    with connect(dsn) as conn:
        rows = codebases.list_codebases(conn)
    if as_json:
        click.echo(json.dumps([row.__dict__ for row in rows], indent=2, default=str))
        return
    table = Table("name", "root", "enabled", "files", "chunks", "embedded", "last ingest", "commit")
    for row in rows:
        table.add_row(
            *(escape(str(v)) for v in safe_data([row.name, row.root_path, "yes" if row.enabled else "no"])),
            str(row.files),
            str(row.chunks),
            str(row.embedded),
            str(row.last_ingested_at or "never"),
            escape(safe((row.last_commit or "")[:12])),
        )
    console.print(table)


@codebase.command("remove")
@dsn_option
@click.argument("name")
@click.option(
    "--drop-data", is_flag=True, help="Delete its chunks now (else code-chunk-cleanup does, later)."
)
@handled
def remove(dsn: str | None, name: str, drop_data: bool) -> None:
    """Unregister NAME; its files, symbols and graph go, its chunks are superseded (or deleted)."""
    with connect(dsn) as conn:
        counts = codebases.remove(conn, name, drop_data)
    done = "deleted" if drop_data else "superseded (code-chunk-cleanup deletes them)"
    console.print(
        f"codebase {escape(safe(name))} removed: {counts['chunks']} chunks {done}, "
        f"{counts['graph_nodes']} graph nodes deleted",
        highlight=False,
    )


@codebase.command("ingest")
@dsn_option
@click.argument("name")
@handled
def ingest(dsn: str | None, name: str) -> None:
    """Ingest NAME now, in the foreground (what the code-ingest job does), with progress."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
    ) as bar:
        files = bar.add_task("files", total=None, detail="")
        embeddings = bar.add_task("embeddings", total=None, detail="", visible=False)

        def progress(final: bool = False, **fields) -> None:
            if "files" in fields:
                detail = f"{fields['parsed']} parsed, {fields['chunks']} chunks"
                bar.update(files, completed=fields["files"], total=fields["of"], detail=detail)
            elif "embedded" in fields:
                done = fields["embedded"] + fields["reused"]
                detail = f"{fields['embedded']} embedded, {fields['reused']} reused"
                bar.update(embeddings, visible=True, completed=done, total=fields["of"], detail=detail)
            elif "waiting" in fields:
                bar.update(files, detail=fields["waiting"])

        try:
            summary = codebases.ingest(
                lambda: connect(dsn), name, progress=progress, cancelled=threading.Event()
            )
        except CodebaseError as exc:
            raise InvalidInput(str(exc), hint="autopilot codebase list shows its root") from exc
    console.print(escape(safe(summary.line())), highlight=False)


@click.command()
@dsn_option
@click.argument("text")
@click.option("--codebase", "codebase_name", metavar="NAME", help="Search one codebase (default: all).")
@click.option("-k", "limit", type=click.IntRange(1, 1000), default=10, show_default=True, help="Results.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--knowledge", "in_knowledge", is_flag=True, help="Search knowledge artifacts, not code.")
@handled
def search(
    dsn: str | None, text: str, codebase_name: str | None, limit: int, as_json: bool, in_knowledge: bool
) -> None:
    """Hybrid search of code (or, with --knowledge, of the knowledge artifacts): TEXT embedded with the
    configured model, and matched as words."""
    if in_knowledge:
        if codebase_name:
            raise click.UsageError("--codebase is for code: --knowledge searches every artifact")
        from .knowledge_cli import print_search

        print_search(dsn, text, limit, as_json)
        return
    with connect(dsn, autocommit=True) as conn:
        rows = codebases.search(conn, codebases.configured_embedder(conn), text, codebase_name, limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("score", "where", "symbol", "vector rank", "text rank")
    for row in rows:
        where = f"{row['codebase']}:{row['file_path']}:{row['start_line']}-{row['end_line']}"
        table.add_row(
            f"{row['score']:.4f}",
            escape(safe(where)),
            escape(safe(row["symbol"] or f"({row['kind']})")),
            str(row["vector_rank"] or "-"),
            str(row["text_rank"] or "-"),
        )
    console.print(table)


@click.group()
def code() -> None:
    """The code graph built by graph-populate."""


@code.command("top")
@dsn_option
@click.option("--codebase", "codebase_name", metavar="NAME", help="One codebase (default: all).")
@click.option("-k", "limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="Symbols.")
@handled
def top(dsn: str | None, codebase_name: str | None, limit: int) -> None:
    """The most central symbols (PageRank over imports and calls)."""
    with connect(dsn) as conn:
        rows = codebases.top_symbols(conn, codebase_name, limit)
    table = Table("pagerank", "symbol", "kind", "where")
    for row in rows:
        table.add_row(
            f"{row['pagerank']:.6f}",
            escape(safe(row["symbol"])),
            escape(safe(row["kind"])),
            escape(safe(f"{row['codebase']}:{row['file']}:{row['line']}")),
        )
    console.print(table)
