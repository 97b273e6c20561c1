"""`autopilot backups ...`: take a verified pg_dump backup now (`run`, with its progress), `list` the backups,
`verify` their files again, `restore` one. `autopilot runner backup` and `autopilot runner restore` are the
same commands under their earlier names."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import click
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import backups
from .cli_common import console, dsn_option, err_console, handled
from .db import connect
from .errors import BackupFailed
from .terminal import safe, safe_data

_size = backups.size_text


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


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _print_json(data: object) -> None:
    # JSON escapes C0 and (ensure_ascii) C1; DEL too, so that no control character is printed raw
    click.echo(json.dumps(data, indent=2, default=str).replace("\x7f", "\\u007f"))


@click.group("backups")
def backups_group() -> None:
    """pg_dump backups: take one now (run), list them, verify their files again, restore one."""


class _StderrBars:
    """Transient progress bars on stderr while the block runs, on a terminal only (``bar`` stays None
    elsewhere); each bar shows its description, the bar, ``FIGURE`` (a rich column template) and the time."""

    FIGURE = ""

    def __init__(self) -> None:
        self.bar: Progress | None = None

    def __enter__(self) -> Self:
        if err_console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn(self.FIGURE),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


class _DumpProgress(_StderrBars):
    """The progress of `backups run` on stderr: a progress bar per database on a terminal (bytes written,
    the rate, against the size of the last backup when there is one); elsewhere (a pipe, a log) a line now
    and then (backups.LogCadence), as the runner logs it."""

    FIGURE = "{task.fields[written]}"

    def __init__(self) -> None:
        super().__init__()
        self.cadence = backups.LogCadence()
        self.tasks: dict[int, TaskID] = {}

    def __call__(self, p: backups.BackupProgress) -> None:
        if self.bar is None:
            if self.cadence.due(p):
                err_console.print(safe(backups.describe(p)), markup=False, highlight=False, soft_wrap=True)
            return
        if p.phase == "started":
            self.tasks[p.backup_id] = self.bar.add_task(
                safe(f"#{p.backup_id} {p.database}"), total=p.expected_bytes, written=""
            )
            return
        task = self.tasks.get(p.backup_id)
        if task is None:
            return
        if p.phase in ("finished", "failed"):
            self.bar.remove_task(task)
            self.bar.console.print(safe(backups.describe(p)), markup=False, highlight=False, soft_wrap=True)
            return
        written = f"{_size(p.bytes)}" + (f" {_size(p.bytes_per_second)}/s" if p.bytes_per_second else "")
        total = p.expected_bytes if p.expected_bytes and p.bytes <= p.expected_bytes else None
        if p.phase == "verifying":
            written, total = f"{_size(p.bytes)} written, verifying", None
        self.bar.update(task, completed=p.bytes, total=total, written=written)


@click.command("run")
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
def run(kind: str, directory: str | None, dsn: str | None) -> None:
    """Take a pg_dump backup of the configured databases now, verify it, apply retention; its progress
    (bytes written, rate) on stderr. (`autopilot backups run`; `autopilot runner backup` is its earlier
    name.)"""
    with _sigterm_interrupts(), _DumpProgress() as progress:
        result = backups.run_backup(dsn, kind, directory=directory, progress=progress)
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


_STATUS_STYLE = {
    "verified": "green",
    "running": "cyan",
    "succeeded": "cyan",
    "failed": "bold red",
    "missing": "bold red",
    "corrupt": "bold red",
    "pruned": "dim",
}


def _state(listed: backups.ListedBackup) -> Text:
    """A backup's status, with what the look at its file found: "verified, FILE MISSING"."""
    row = listed.row
    state = Text(row.status, style=_STATUS_STYLE.get(row.status, ""))
    if row.status == "verified" and listed.file == "missing":
        state = Text("verified, FILE MISSING", style="bold red")
    elif row.status in backups.CHECKED_STATUSES and listed.file is None:
        state.append(" (file not checked)", style="yellow")
    elif row.status == "missing" and listed.file == "present":
        state.append(" (file back: verify it)", style="yellow")
    if listed.error and row.status in ("failed", "missing", "corrupt"):
        state.append(f": {safe(listed.error)[:80]}", style="dim")
    return state


@click.command("list")
@click.option("--database", help="Only the backups of this database.")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(("running", "succeeded", "verified", "failed", "pruned", "missing", "corrupt")),
    help="Only backups in this status (repeatable).",
)
@click.option(
    "--limit", type=click.IntRange(1), default=50, show_default=True, help="At most this many, newest first."
)
@click.option(
    "--directory",
    type=click.Path(file_okay=False),
    help="Where the backups are, when not in backups.directory (backups taken with --directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@dsn_option
@handled
def list_command(
    database: str | None,
    statuses: tuple[str, ...],
    limit: int,
    directory: str | None,
    as_json: bool,
    dsn: str | None,
) -> None:
    """The backups in autopilot.backup_metadata, newest first: database, kind, when, size, sha256, state
    (verified, missing, corrupt, failed, ...; a verified one whose file is gone is flagged) and file."""
    with connect(dsn, autocommit=True) as conn:
        listed, where, not_checked = backups.list_backups(
            conn, database=database, statuses=statuses or None, limit=limit, directory=directory
        )
    if as_json:
        _print_json(
            {
                "directory": str(where),
                "files_checked": not_checked is None,
                "files_not_checked": not_checked,
                "backups": [b.as_json() for b in listed],
            }
        )
        return
    table = Table(
        title=f"backups ({escape(safe(where))})", header_style="bold", title_justify="left", show_lines=False
    )
    for column in (
        "#",
        "database",
        "kind",
        "started (UTC)",
        "finished (UTC)",
        "size",
        "sha256",
        "state",
        "file",
    ):
        table.add_column(column, no_wrap=column not in ("state", "file"), overflow="fold")
    for b in listed:
        r = b.row
        table.add_row(
            str(r.id),
            Text(safe(r.database)),
            Text(safe(r.kind)),
            _when(r.started_at),
            _when(r.finished_at),
            _size(r.size_bytes) if r.size_bytes is not None else "-",
            Text(safe(r.sha256[:12]) + "…") if r.sha256 else "-",
            _state(b),
            Text(safe(r.file_path)),
        )
    console.print(table)
    if not listed:
        console.print("no backups recorded" + (f" of {escape(safe(database))}" if database else ""))
    if not_checked:
        _warn([f"files not checked: {not_checked}"])
    flagged = [b.row.id for b in listed if b.row.status == "verified" and b.file == "missing"]
    if flagged:
        err_console.print(
            "[bold]hint:[/] `autopilot backups verify "
            + " ".join(str(i) for i in flagged)
            + "` records the missing files (status, retention and restore then no longer count them).",
            highlight=False,
            soft_wrap=True,
        )


_HINTS = {
    "missing": "A backup marked missing no longer counts (status, retention, restore): if its file was moved "
    "or its disk is not mounted, put it back and verify it again; otherwise take a new backup "
    "(`autopilot backups run`).",
    "corrupt": "A backup marked corrupt no longer counts; its file is left for you to examine and delete. "
    "Check the disk (and the kernel log for I/O errors) and take a new backup (`autopilot backups run`).",
    "unreadable": "Run `autopilot backups verify` as the OS user the runner runs as.",
    "untrusted": "A record that is not trusted does not describe the runner's own archive (moved, renamed, "
    "its manifest changed, or written by hand); nothing was changed.",
    "not checked": "Only verified backups (and those marked missing or corrupt) have a file to check "
    "(`autopilot backups list`).",
}

_OUTCOME_STYLE = {"ok": "green", "changed": "yellow"}


class _ReadProgress(_StderrBars):
    """On a terminal, a progress bar for each file `backups verify` reads; nothing elsewhere."""

    FIGURE = "{task.percentage:>3.0f}%"

    def __init__(self) -> None:
        super().__init__()
        self.task: TaskID | None = None

    def __call__(self, backup_id: int, archive: Path, size: int):
        if self.bar is None:
            return None
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(safe(f"#{backup_id} {archive.name}"), total=size or None)
        bar, task = self.bar, self.task
        return lambda n: bar.advance(task, n)


@click.command("verify")
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@click.option(
    "--all", "every", is_flag=True, help="Every verified backup (and those marked missing or corrupt)."
)
@click.option("--database", help="With --all: only the backups of this database.")
@click.option(
    "--directory",
    type=click.Path(file_okay=False),
    help="Where the backups are, when not in backups.directory (backups taken with --directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@dsn_option
@handled
def verify(
    ids: tuple[int, ...],
    every: bool,
    database: str | None,
    directory: str | None,
    as_json: bool,
    dsn: str | None,
) -> None:
    """Read the file of backup ID (or of every backup: --all) again and compare its sha256 with the recorded
    one. A missing file marks the backup missing, another sha256 marks it corrupt (neither counts any more);
    one that checks out again is verified again. Exits non-zero when any backup checked is missing, corrupt
    or could not be checked."""
    if bool(ids) == every:
        raise click.UsageError("give the backups' IDs or --all (`autopilot backups list` shows them)")
    if database and not every:
        raise click.UsageError("--database goes with --all")
    with connect(dsn, autocommit=True) as conn, _ReadProgress() as reading:
        result = backups.verify_backups(
            conn, list(ids) if ids else None, database=database, directory=directory, reading=reading
        )
    if as_json:
        _print_json(
            {"directory": str(result.directory), "checked": safe_data([c.as_json() for c in result.checked])}
        )
    else:
        table = Table(
            title=f"backups verified ({escape(safe(result.directory))})",
            header_style="bold",
            title_justify="left",
        )
        for column in ("#", "database", "kind", "finished (UTC)", "size", "took", "result"):
            table.add_column(column, no_wrap=column != "result")
        for c in result.checked:
            outcome = Text(c.outcome, style=_OUTCOME_STYLE.get(c.outcome, "bold red"))
            if c.now != c.was and c.now is not None:
                outcome.append(f" (marked {c.now})")
            outcome.append(f": {safe(c.message)}", style="dim" if c.outcome == "ok" else "")
            table.add_row(
                str(c.id),
                Text(safe(c.database or "-")),
                Text(safe(c.kind or "-")),
                _when(c.finished_at),
                _size(c.size_bytes) if c.size_bytes is not None else "-",
                f"{c.seconds:.1f} s",
                outcome,
            )
        console.print(table)
        if not result.checked:
            console.print("no backup to verify" + (f" of {escape(safe(database))}" if database else ""))
    problems = result.problems
    if problems:
        what = ", ".join(f"#{c.id} {c.outcome}" for c in problems[:10]) + (
            " ..." if len(problems) > 10 else ""
        )
        outcomes = sorted({c.outcome for c in problems}, key=backups.inventory.OUTCOMES.index)
        raise BackupFailed(
            f"{len(problems)} of {len(result.checked)} backup(s) checked did not verify: {what}",
            hint=" ".join(_HINTS[o] for o in outcomes),
        )


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
    """Restore a verified backup into a new database, after checking its sha256. (`autopilot backups
    restore`; `autopilot runner restore` is its earlier name.)"""
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


backups_group.add_command(run)
backups_group.add_command(list_command)
backups_group.add_command(verify)
backups_group.add_command(restore)
