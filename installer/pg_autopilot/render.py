"""Rich output for the CLI."""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .backups.progress import size_text
from .status import QUEUE_STATES, Status
from .terminal import safe, safe_data

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
    "timed_out": "bold red",
    "skipped": "yellow",
    "abandoned": "red",
    "running": "cyan",
}


def status_table(status: Status, console: Console) -> None:
    now = status.now
    version, mode, database = safe(status.version), safe(status.mode), safe(status.database)
    header = f"autopilot {escape(version)} ({escape(mode)} mode) in database [bold]{escape(database)}[/]"
    if status.cron.explanation:
        console.print(header)
        console.print(f"[bold yellow]{escape(safe(status.cron.explanation))}.[/]")
    else:
        where = "this database" if status.cron.local else f'database "{escape(safe(status.cron.database))}"'
        console.print(f"{header}; pg_cron runs in {where}")
    if status.sync_hint:
        console.print(f"[bold red]{escape(safe(status.sync_hint))}[/]")
    jobs = safe_data(status.jobs)
    for side, title in (
        ("database", "database side (pg_cron runs SQL)"),
        ("runner", "runner side (enqueued)"),
    ):
        console.print(_jobs_table([j for j in jobs if j["side"] == side], title, now))

    queue = Table(title="runner queue (autopilot.jobs)", header_style="bold", title_justify="left")
    for state in QUEUE_STATES:
        queue.add_column(state, justify="right")
    queue.add_row(*(str(status.queue[s]) for s in QUEUE_STATES))
    console.print(queue)
    for job in safe_data(status.executing):
        # one line per executing job: which, where, for how long, and its worker's latest report
        line = Text(f"  executing #{job['id']} {job['worker']} (attempt {job['attempt']}) on {job['node']}, ")
        line.append(f"started {ago(job['started_at'], now)}")
        report = job["progress"] if isinstance(job["progress"], dict) else {}
        progress = {k: v for k, v in report.items() if k != "at"}
        if progress:
            line.append(": " + _progress_text(progress), style="cyan")
            line.append(f" (reported {_reported(report.get('at'), now)})", style="dim")
        console.print(line)
    for job in safe_data(status.held):
        # a discarded or cancelled dependency holds a waiting job until it is retried and completes
        name = job["catalog"] or job["worker"]
        console.print(
            f"  [bold yellow]held[/] #{job['id']} {escape(name)}: waits for #{job['blocker_id']} "
            f"{escape(job['blocker_worker'])}, which was {job['blocker_state']}; "
            f"SELECT autopilot.retry({job['blocker_id']}) runs it again and releases the waiting job"
        )
    if status.backups is not None:
        _backups_lines(safe_data(status.backups), now, console)
    if status.problems is not None:
        _health_lines(status.problems, console)


def _health_lines(problems: list, console: Console) -> None:
    """autopilot.health's problems, critical first (what `autopilot check` reports)."""
    if not problems:
        console.print("[green]health: no problems[/]")
        return
    console.print("[bold]health (autopilot.health)[/]")
    for p in problems:
        style = "bold red" if p.severity == "critical" else "bold yellow"
        console.print(
            f"  [{style}]{p.severity.upper()}[/] {escape(safe(p.check_name))} {escape(safe(p.subject))}: "
            f"{escape(safe(p.message))}",
            highlight=False,
        )


def _progress_text(progress: dict) -> str:
    """A worker's report: "120/800 files" for done, of and unit ("512.0 MB/950.0 MB at 35.2 MB/s" when the
    unit is bytes, with bytes_per_second); any other field as "name value"."""
    rest = {k: v for k, v in progress.items() if k not in ("done", "of", "unit", "bytes_per_second")}
    parts = []
    if "done" in progress:
        if progress.get("unit") == "bytes":
            done = _bytes(progress["done"]) + (f"/{_bytes(progress['of'])}" if "of" in progress else "")
        else:
            done = f"{progress['done']}" + (f"/{progress['of']}" if "of" in progress else "")
            done += f" {progress['unit']}" if "unit" in progress else ""
        if "bytes_per_second" in progress:
            done += f" at {_bytes(progress['bytes_per_second'])}/s"
        parts.append(done)
    elif "bytes_per_second" in progress:
        rest["bytes_per_second"] = progress["bytes_per_second"]
    parts += [f"{k} {v}" for k, v in sorted(rest.items())]
    return ", ".join(parts)


def _bytes(value: object) -> str:
    """A byte count of a progress report (which the runner's role can write: maybe not a number)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return size_text(value)
    return str(value)


def _reported(at: object, now: datetime) -> str:
    """When a progress report was recorded (a time in the job's meta, which the runner's role can write)."""
    try:
        return ago(datetime.fromisoformat(str(at)), now)
    except (TypeError, ValueError):
        return "at an unknown time"


def _backups_lines(backups: dict, now: datetime, console: Console) -> None:
    """One line per configured database: the age of its last verified backup, OVERDUE past
    backups.overdue_after (or when there is none); below it, newer backups whose file is missing or that
    failed verification, backups running now, rows not trusted."""
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
        if b["last_verified_at"] is not None and not backups.get("files_checked", True):
            why = backups.get("files_not_checked") or "backups.directory cannot be read here"
            line.append(f"; its file not checked: {why}", style="yellow")
        if b["last_failure_at"] is not None and (
            b["last_verified_at"] is None or b["last_failure_at"] > b["last_verified_at"]
        ):
            line.append(
                f"; last failure {ago(b['last_failure_at'], now)}: {(b['last_failure'] or '')[:80]}",
                style="dim",
            )
        console.print(line)
        for entry in b.get("file_missing", []):
            console.print(
                _problem_line(entry, now, "not counted; `autopilot backups verify` marks it missing")
            )
        for entry in b.get("marked", []):
            when = f" {ago(entry['checked_at'], now)}" if entry.get("checked_at") else ""
            console.print(
                _problem_line(entry, now, f"marked {entry['status']} by `autopilot backups verify`{when}")
            )
        if b.get("marked_more"):
            console.print(
                Text(
                    f"  and {b['marked_more']} more marked missing or corrupt (`autopilot backups list`)",
                    style="red",
                )
            )
        for running in b.get("in_progress", []):
            console.print(_running_line(running, now))
        if b.get("untrusted"):
            console.print(
                Text(
                    f"  not trusted, not counted: {len(b['untrusted'])} newer verified record(s) of "
                    f"{b['database']}; " + "; ".join(b["untrusted"][:3]),
                    style="yellow",
                )
            )
    for entry in backups.get("half_restored", []):
        line = Text("half-restored database ", style="bold red")
        line.append(f"{entry['database']} ({entry['about'] or 'an interrupted restore'}): ")
        line.append("dropped by the next `autopilot backups restore` or backup")
        console.print(line)


def _problem_line(entry: dict, now: datetime, note: str) -> Text:
    """A backup that does not count: "file missing" or "failed verification", which, and what to know."""
    line = Text(f"  {entry['problem']}: ", style="bold red")
    line.append(
        f"#{entry['id']} ({entry['kind']}, finished {ago(entry['finished_at'], now)}) {entry['file_path']}"
    )
    if note:
        line.append(f"; {note[:160]}", style="dim")
    return line


def _running_line(running: dict, now: datetime) -> Text:
    """A backup running now, with its latest progress report; or abandoned (its process gone)."""
    started = ago(running["started_at"], now)
    if not running["live"]:
        return Text(
            f"  abandoned backup #{running['id']} ({running['kind']}, started {started}): its process is "
            "gone; the next backup cleans it up",
            style="yellow",
        )
    line = Text(f"  backup in progress: #{running['id']} ({running['kind']}), started {started}")
    report = running["progress"] if isinstance(running["progress"], dict) else {}
    if "done" in report:
        shown = {k: report[k] for k in ("done", "of", "unit", "bytes_per_second") if k in report}
        phase = report.get("phase", "dumping")
        line.append(f": {phase}, {_progress_text(shown)}", style="cyan")
        line.append(f" (reported {_reported(report.get('at'), now)})", style="dim")
    return line


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
        elif job.get("disabled_reason"):
            outcome.append(f" disabled: {job['disabled_reason']}", style="yellow")
        elif job["last_message"]:
            outcome.append(f" {job['last_message'][:60]}", style="dim")
        if job["overdue"]:
            outcome = Text("OVERDUE ", style="bold red") + outcome
        table.add_row(
            Text(job["name"]),  # Text: a plain string in a cell would be read as markup
            Text(schedule),
            cron,
            ago(job["last_run_at"], now),
            duration(job["last_duration"]),
            outcome,
            until(job["next_run_at"], now),
        )
    return table
