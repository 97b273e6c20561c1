"""`autopilot runner backup` (take a verified pg_dump backup now) and `autopilot runner restore`."""

from __future__ import annotations

import click
from rich.markup import escape
from rich.table import Table

from . import backups
from .cli_common import console, dsn_option, handled


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@click.command()
@click.option(
    "--kind",
    type=click.Choice(backups.KINDS),
    default="manual",
    show_default=True,
    help="Which retention (backups.<kind>_keep) the backup counts against.",
)
@click.option(
    "--directory",
    type=click.Path(file_okay=False),
    help="Write here instead of backups.directory (created 0700).",
)
@dsn_option
@handled
def backup(kind: str, directory: str | None, dsn: str | None) -> None:
    """Take a pg_dump backup of the configured databases now, verify it, apply retention."""
    result = backups.run_backup(dsn, kind, directory=directory)
    table = Table(
        title=f"{kind} backup in {escape(str(result.directory))}", header_style="bold", title_justify="left"
    )
    for column in ("#", "database", "file", "size", "sha256", "pg_dump", "verify", "verified"):
        table.add_column(column, no_wrap=column != "file")
    for b in result.backups:
        table.add_row(
            str(b.id),
            b.database,
            b.path.name,
            _size(b.size_bytes),
            b.sha256[:16] + "…",
            f"{b.dump_seconds:.1f} s",
            f"{b.verify_seconds:.1f} s",
            b.verified_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )
    console.print(table)
    for b in result.backups:
        console.print(f"sha256 {b.sha256}  {escape(str(b.path))}", highlight=False, soft_wrap=True)
    if result.pruned:
        console.print(
            f"pruned {len(result.pruned)} older {kind} backup(s): "
            + ", ".join(f"#{p.id}" + ("" if p.files_removed else " (record only)") for p in result.pruned),
            highlight=False,
        )
    else:
        console.print(
            f"pruned nothing (keeping up to backups.{kind}_keep verified {kind} backups)", highlight=False
        )
    if result.abandoned:
        console.print(
            "cleaned up abandoned backups " + ", ".join(f"#{i}" for i in result.abandoned), highlight=False
        )


@click.command()
@click.option("--backup", "backup_id", type=int, help="The backup's id (default: the latest verified one).")
@click.option("--into", required=True, help="The NEW database to restore into (an existing one is refused).")
@click.option("--database", help="Without --backup: the latest verified backup of this database.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="pg_restore --jobs.")
@dsn_option
@handled
def restore(backup_id: int | None, into: str, database: str | None, jobs: int, dsn: str | None) -> None:
    """Restore a verified backup into a new database, after checking its sha256."""
    result = backups.restore_backup(dsn, backup_id, into, database=database, jobs=jobs)
    console.print(
        f'[green]restored backup #{result.backup_id} (database "{escape(result.database)}") into '
        f'"{escape(result.into)}"[/] in {result.seconds:.1f} s; sha256 {result.sha256} checked',
        highlight=False,
        soft_wrap=True,
    )
