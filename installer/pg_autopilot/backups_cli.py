"""`autopilot runner backup` (take a verified pg_dump backup now) and `autopilot runner restore`."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import click
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from . import backups
from .cli_common import console, dsn_option, err_console, handled
from .render import safe


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """pg_dump runs in a process group of its own, so a stop signal reaches only this process: SIGTERM
    interrupts like Ctrl-C, and the backup kills pg_dump, removes its partial file and records the failure
    (by default SIGTERM would end this process at once and leave pg_dump running)."""

    def interrupt(signum, frame):
        raise backups.Interrupted("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave the signal alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    with _sigterm_interrupts():
        result = backups.run_backup(dsn, kind, directory=directory)
    table = Table(
        title=f"{kind} backup in {escape(safe(result.directory))}", header_style="bold", title_justify="left"
    )
    for column in ("#", "database", "file", "size", "sha256", "pg_dump", "verify", "verified"):
        table.add_column(column, no_wrap=column != "file")
    for b in result.backups:
        table.add_row(
            str(b.id),
            Text(safe(b.database)),  # Text: a plain string in a cell would be read as markup
            Text(safe(b.path.name)),
            _size(b.size_bytes),
            safe(b.sha256[:16]) + "…",
            f"{b.dump_seconds:.1f} s",
            f"{b.verify_seconds:.1f} s",
            b.verified_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
        )
    console.print(table)
    for b in result.backups:
        console.print(
            f"sha256 {escape(safe(b.sha256))}  {escape(safe(b.path))}", highlight=False, soft_wrap=True
        )
    if result.skipped:
        console.print(
            "already verified: " + ", ".join(escape(safe(d)) for d in result.skipped), highlight=False
        )
    if result.pruned:
        console.print(
            f"pruned {len(result.pruned)} older {kind} backup(s): "
            + ", ".join(f"#{p.id}" + _pruned_note(p) for p in result.pruned),
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
    _warn(result.prune_errors + result.warnings)
    if result.prune_errors:
        err_console.print(
            "[bold]hint:[/] The new backup is verified. Give the runner's OS user write access to the old "
            "backups' directory (chown / chmod), or delete them by hand; the next backup prunes again.",
            highlight=False,
            soft_wrap=True,
        )


def _warn(problems: list[str]) -> None:
    """Each problem as one `warning:` line on stderr, its data made safe for a terminal."""
    for problem in problems:
        err_console.print(
            f"[bold yellow]warning:[/] {escape(safe(problem))}", highlight=False, soft_wrap=True
        )


def _pruned_note(p: backups.Pruned) -> str:
    if p.files_removed:
        return ""
    if p.missing:
        return " (its files were already gone)"
    return " (record only)"


@click.command()
@click.option("--backup", "backup_id", type=int, help="The backup's id (default: the latest verified one).")
@click.option("--into", required=True, help="The NEW database to restore into (an existing one is refused).")
@click.option("--database", help="Without --backup: the latest verified backup of this database.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="pg_restore --jobs.")
@click.option(
    "--directory",
    type=click.Path(file_okay=False),
    help="Where the backup is, when not in backups.directory (a backup taken with --directory).",
)
@dsn_option
@handled
def restore(
    backup_id: int | None, into: str, database: str | None, jobs: int, directory: str | None, dsn: str | None
) -> None:
    """Restore a verified backup into a new database, after checking its sha256."""
    with _sigterm_interrupts():
        result = backups.restore_backup(
            dsn, backup_id, into, database=database, jobs=jobs, directory=directory
        )
    _warn(result.skipped + result.warnings)
    if result.dropped:
        console.print(
            "dropped half-restored databases of earlier restores: "
            + ", ".join(escape(safe(d)) for d in result.dropped),
            highlight=False,
            soft_wrap=True,
        )
    if result.excluded:
        console.print(
            f"not restored: pg_cron's own objects ({len(result.excluded)} entries: its extension and schema "
            "cron); its jobs stay in the cron database, the new database has no pg_cron schedules",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f'[green]restored backup #{result.backup_id} (database "{escape(safe(result.database))}") into '
        f'"{escape(safe(result.into))}"[/] in {result.seconds:.1f} s; '
        f"sha256 {escape(safe(result.sha256))} checked",
        highlight=False,
        soft_wrap=True,
    )
