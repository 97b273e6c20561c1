"""`autopilot knowledge ...`: the knowledge artifacts (templates) from the command line; the work is
pg_autopilot.knowledge, the same code the knowledge workers run."""

from __future__ import annotations

import json
import threading

import click
from rich.markup import escape
from rich.table import Table

from .cli_common import console, dsn_option, handled
from .db import connect
from .terminal import safe, safe_data


def _json(data: object) -> str:
    """JSON for --json: every control character escaped (json.dumps leaves DEL as it is)."""
    return json.dumps(data, indent=2, default=str).replace("\x7f", "\\u007f")


@click.group()
def knowledge() -> None:
    """Knowledge artifacts: templates loaded by knowledge-migration and template-sync."""


@knowledge.command("list")
@dsn_option
@click.option("--type", "artifact_type", metavar="TYPE", help="Only artifacts of this type.")
@click.option(
    "--source", metavar="SOURCE", help="Only those this writer wrote (knowledge-migration, template-sync)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handled
def list_(dsn: str | None, artifact_type: str | None, source: str | None, as_json: bool) -> None:
    """The artifacts: type, name, version, where they came from, whether they are embedded."""
    from .knowledge.queries import list_artifacts

    with connect(dsn) as conn:
        rows = list_artifacts(conn, artifact_type, source)
    if as_json:
        click.echo(_json(rows))
        return
    table = Table("type", "name", "version", "source", "file", "embedded", "updated")
    for row in rows:
        table.add_row(
            *(escape(str(v)) for v in safe_data([row["artifact_type"], row["name"]])),
            str(row["version"]),
            escape(safe(row["source"] or "-")),
            escape(safe(row["source_path"] or "-")),
            escape(safe(row["embedding_model"] or "no")),
            str(row["updated_at"].replace(microsecond=0)),
        )
    console.print(table)
    console.print(f"{len(rows)} artifacts", highlight=False)


@knowledge.command("show")
@dsn_option
@click.argument("name")
@click.option(
    "--type", "artifact_type", metavar="TYPE", help="The artifact's type, when the name is ambiguous."
)
@click.option("--version", "version", type=click.IntRange(1), help="An earlier version's content.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@handled
def show(dsn: str | None, name: str, artifact_type: str | None, version: int | None, as_json: bool) -> None:
    """One artifact (NAME, or TYPE/NAME): its content, where it came from, and its earlier versions."""
    from .knowledge.queries import show_artifact

    with connect(dsn) as conn:
        artifact = show_artifact(conn, name, artifact_type, version)
    if as_json:
        click.echo(_json(artifact))
        return
    title = f"{artifact['artifact_type']}/{artifact['name']} version {artifact['version']}"
    if "current_version" in artifact:
        title += f" (an earlier version: the current one is {artifact['current_version']})"
    console.print(f"[bold]{escape(safe(title))}[/]", highlight=False)
    facts = [
        ("source", artifact["source"] or "-"),
        ("file", artifact["source_path"] or "-"),
        ("sha256", artifact["content_hash"] or "-"),
        ("updated", str(artifact["updated_at"].replace(microsecond=0))),
        ("used", f"{artifact['usage_count']} times, last {artifact['last_used_at'] or 'never'}"),
        ("embedding", artifact["embedding_model"] if artifact["embedded"] else "none yet (template-embed)"),
    ]
    for label, value in facts:
        console.print(f"{label:>10}: {escape(safe(str(value)))}", highlight=False)
    versions = artifact["versions"]
    if versions:
        table = Table("version", "valid from", "until", "file", title="earlier versions")
        for v in versions:
            table.add_row(
                str(v["version"]),
                str(v["valid_from"].replace(microsecond=0)),
                str(v["valid_until"].replace(microsecond=0)),
                escape(safe(v["source_path"] or "-")),
            )
        console.print(table)
    # the content as JSON (strings escaped by json.dumps), each line made safe for the terminal
    text = json.dumps(artifact["content"], indent=2, ensure_ascii=False)
    console.print(escape("\n".join(safe(line) for line in text.splitlines())), highlight=False)


@knowledge.command("sync")
@dsn_option
@click.option(
    "--full",
    is_flag=True,
    help="Apply the branch's whole tree, accepting a rewritten (force-pushed) branch.",
)
@handled
def sync(dsn: str | None, full: bool) -> None:
    """Run template-sync now, in the foreground: the templates of template_sync.repository's branch."""
    from .knowledge.sync import sync as run_sync

    with connect(dsn, autocommit=False) as conn:
        result = run_sync(conn, full=full, cancelled=threading.Event())
    console.print(escape(safe(result.line())), highlight=False)


def print_search(dsn: str | None, text: str, limit: int, as_json: bool) -> None:
    """`autopilot search --knowledge TEXT`: the artifacts nearest TEXT (embedded with the configured model)
    and those sharing its words, labelled lexical when the embedder is the hashing one."""
    from .codebases import configured_embedder
    from .embeddings.base import INSTALL_HINT
    from .knowledge.queries import search

    with connect(dsn, autocommit=True) as conn:
        embedder = configured_embedder(conn)
        rows, not_embedded = search(conn, embedder, text, limit)
    mode = "semantic" if embedder.semantic else "lexical"
    if as_json:
        click.echo(
            _json(
                {
                    "mode": mode,
                    "embedding_model": embedder.model_id,
                    "not_embedded": not_embedded,
                    "results": rows,
                }
            )
        )
        return
    if embedder.semantic:
        title = f"knowledge artifacts, semantic search ({embedder.model_id})"
    else:
        title = (
            f"knowledge artifacts, lexical search ({embedder.model_id}: shared words, not meaning; "
            f"for semantic search, {INSTALL_HINT})"
        )
    columns = ("score", "type", "name", "source", "similarity", "vector rank", "text rank")
    table = Table(*columns, title=escape(title))  # the hint's [embeddings] is not markup
    for row in rows:
        similarity = row["similarity"]
        table.add_row(
            f"{row['score']:.4f}",
            escape(safe(row["artifact_type"])),
            escape(safe(row["name"])),
            escape(safe(row["source"] or "-")),
            "-" if similarity is None else f"{similarity:.3f}",
            str(row["vector_rank"] or "-"),
            str(row["text_rank"] or "-"),
        )
    console.print(table)
    if not_embedded:
        console.print(
            f"{not_embedded} artifacts have no {escape(embedder.model_id)} embedding of their current "
            "text yet: they are found by their words only until template-embed runs (Sundays 05:00, or "
            "`autopilot run template-embed`)",
            highlight=False,
        )
