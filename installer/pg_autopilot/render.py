"""Rich output for the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .status import QUEUE_STATES, Status

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in " + _span(-seconds)
    return _span(seconds) + " ago"


def until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return "in " + _span((moment - now).total_seconds())


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}" if unit != "m" else f"{seconds // 60:.0f}m"
    return f"{seconds:.0f}s"


def duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    ms = value.total_seconds() * 1000
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "bold red",
    "skipped": "yellow",
    "abandoned": "red",
    "running": "cyan",
}


def status_table(status: Status, console: Console) -> None:
    now = status.now
    header = f"autopilot {status.version} ({status.mode} mode) in database [bold]{escape(status.database)}[/]"
    if status.cron.explanation:
        console.print(header)
        console.print(f"[bold yellow]{escape(status.cron.explanation)}.[/]")
    else:
        where = "this database" if status.cron.local else f'database "{escape(status.cron.database)}"'
        console.print(f"{header}; pg_cron runs in {where}")
    for side, title in (
        ("database", "database side (pg_cron runs SQL)"),
        ("runner", "runner side (enqueued)"),
    ):
        console.print(_jobs_table([j for j in status.jobs if j["side"] == side], title, now))

    queue = Table(title="runner queue (autopilot.jobs)", header_style="bold", title_justify="left")
    for state in QUEUE_STATES:
        queue.add_column(state, justify="right")
    queue.add_row(*(str(status.queue[s]) for s in QUEUE_STATES))
    console.print(queue)
    if status.backups is not None:
        _backups_lines(status.backups, now, console)


def _backups_lines(backups: dict, now: datetime, console: Console) -> None:
    """One line per configured database: the age of its last verified backup, OVERDUE past
    backups.overdue_after (or when there is none)."""
    limit = _span(backups["overdue_after"].total_seconds())
    for b in backups["databases"]:
        line = Text(f"backups of {b['database']}: ")
        if b["overdue"]:
            line.append("OVERDUE ", style="bold red")
        if b["last_verified_at"] is None:
            line.append(f"no verified backup (expected every {limit})")
        else:
            line.append(
                f"last verified {ago(b['last_verified_at'], now)} (#{b['last_verified_id']}, "
                f"{b['last_verified_kind']}; overdue after {limit})"
            )
        if b["last_failure_at"] is not None and (
            b["last_verified_at"] is None or b["last_failure_at"] > b["last_verified_at"]
        ):
            line.append(
                f"; last failure {ago(b['last_failure_at'], now)}: {(b['last_failure'] or '')[:80]}",
                style="dim",
            )
        console.print(line)


def _jobs_table(jobs: list[dict], title: str, now: datetime) -> Table:
    table = Table(title=title, header_style="bold", title_justify="left")
    for column in ("job", "schedule (UTC)", "pg_cron", "last run", "took", "outcome", "next run"):
        table.add_column(column, no_wrap=column not in ("outcome", "schedule (UTC)"))
    for job in jobs:
        schedule = job["schedule"] or "at runner start"
        if job["only_on_dow"] is not None:
            schedule += f" ({_DAYS[job['only_on_dow']]} only)"
        if job["unavailable"]:
            cron = Text("n/a", style="dim")
        elif not job["enabled"]:
            cron = Text(f"{job['pg_cron']} (disabled)", style="yellow")
        else:
            cron = Text(job["pg_cron"])
        outcome = Text(job["last_status"] or "-", style=_STATUS_STYLE.get(job["last_status"] or "", ""))
        if job["unavailable"]:
            outcome.append(f" {job['unavailable']}", style="dim")
        elif job["last_message"]:
            outcome.append(f" {job['last_message'][:60]}", style="dim")
        if job["overdue"]:
            outcome = Text("OVERDUE ", style="bold red") + outcome
        table.add_row(
            job["name"],
            schedule,
            cron,
            ago(job["last_run_at"], now),
            duration(job["last_duration"]),
            outcome,
            until(job["next_run_at"], now),
        )
    return table
