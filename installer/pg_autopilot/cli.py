"""The `autopilot` command."""

from __future__ import annotations

import importlib
import json
import sys
from typing import TYPE_CHECKING

import click
import psycopg

from .cli_common import dsn_option, handled
from .db import connect
from .errors import AutopilotError, InvalidInput, JobFailed, NotInstalled
from .terminal import safe, safe_data

if TYPE_CHECKING:
    from . import installer


def _require_installed(conn) -> installer.Installed:
    from . import installer

    current = installer.installed(conn)
    if current is None:
        raise NotInstalled("autopilot is not installed in this database", hint="Run `autopilot install`.")
    return current


def _report_sync(conn, dsn: str | None, after: str | None = None) -> None:
    """Sync pg_cron; ``after`` names what was already committed, so a failure says what stands."""
    from rich.markup import escape

    from . import schedules
    from .cli_common import console

    try:
        result = schedules.sync(conn, dsn)
    except AutopilotError as exc:
        if after:
            exc.message = f"{after}, but the schedules were not registered with pg_cron: {exc.message}"
        raise
    style = "yellow" if result.location.explanation else "green"
    console.print(f"[{style}]{escape(safe(result.message))}[/]", highlight=False)


# Each command imports its domain modules (and rich, for what it prints) when it runs, not when the CLI
# starts: `autopilot check` is what a monitoring system starts every few minutes, and importing every
# command's modules (rich, jinja2, the code-intelligence and backup packages...) cost it half a second.
# The command groups of their own modules are loaded the same way, when named (or listed by --help).
_LAZY_COMMANDS = {
    # `autopilot runner ...`: the runner and its backups (runner_cli.py)
    "runner": "pg_autopilot.runner_cli:runner",
    # `autopilot backups ...`: run, list, verify, restore (backups_cli.py)
    "backups": "pg_autopilot.backups_cli:backups_group",
    # `autopilot codebase ...`, `search`, `code top`: code intelligence (code_cli.py)
    "codebase": "pg_autopilot.code_cli:codebase",
    "search": "pg_autopilot.code_cli:search",
    "code": "pg_autopilot.code_cli:code",
    # `autopilot knowledge ...`: the knowledge artifacts (knowledge_cli.py)
    "knowledge": "pg_autopilot.knowledge_cli:knowledge",
}


class _LazyGroup(click.Group):
    """click's documented lazy-loading group: the commands of ``lazy`` ("name": "module:attribute") are
    imported when one is invoked or --help lists them; listed in one sorted order with the others."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, attribute = self.lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """--version, as click.version_option prints it; the package's version is looked up only here."""
    if not value or ctx.resilient_parsing:
        return
    from . import __version__

    click.echo(f"autopilot, version {__version__}", color=ctx.color)
    ctx.exit()


@click.group(cls=_LazyGroup, lazy=_LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_show_version,
    help="Show the version and exit.",
)
def cli() -> None:
    """Self-driving learning and maintenance jobs for PostgreSQL, scheduled by pg_cron."""


@cli.command()
@dsn_option
@click.option(
    "--mode",
    type=click.Choice(["auto", "extension", "schema"]),
    default="auto",
    show_default=True,
    help="extension: CREATE EXTENSION (files on the server); schema: plain SQL (managed servers); "
    "auto: extension when the files are there.",
)
@click.option("--no-sync", is_flag=True, help="Do not register the schedules with pg_cron.")
@handled
def install(dsn: str | None, mode: str, no_sync: bool) -> None:
    """Install autopilot into a database (harmless when already installed)."""
    from rich.markup import escape

    from . import installer, schedules
    from .cli_common import console

    with connect(dsn) as conn:
        if not no_sync:
            schedules.check_can_schedule(conn, dsn)  # before anything is written
        result = installer.install(conn, mode=mode)
        message = escape(safe(result.message))
        console.print(
            f"[green]{message}[/]" if result.changed else message,
            highlight=False,
        )
        if not no_sync:
            _report_sync(conn, dsn, after=f"autopilot {result.version} is installed ({result.mode} mode)")


@cli.command()
@dsn_option
@click.option("--to", "to_version", metavar="VERSION", help="Target version (default: this package's).")
@handled
def upgrade(dsn: str | None, to_version: str | None) -> None:
    """Upgrade autopilot through its upgrade scripts; overrides and data are kept."""
    from rich.markup import escape

    from . import installer, schedules
    from .cli_common import console

    with connect(dsn) as conn:
        schedules.check_can_schedule(conn, dsn)  # before anything is written
        result = installer.upgrade(conn, to=to_version)
        message = escape(safe(result.message))
        console.print(
            f"[green]{message}[/]" if result.changed else message,
            highlight=False,
        )
        _report_sync(conn, dsn, after=f"autopilot {result.version} is installed ({result.mode} mode)")


@cli.command()
@dsn_option
@click.option("--drop-data", is_flag=True, help="Also drop the autopilot schema and ALL its data.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (with --drop-data).")
@handled
def uninstall(dsn: str | None, drop_data: bool, yes: bool) -> None:
    """Remove autopilot's pg_cron jobs; with --drop-data, the extension and its data too."""
    from rich.markup import escape

    from . import installer, schedules
    from .cli_common import console

    with connect(dsn) as conn:
        current = _require_installed(conn)
        database = conn.info.dbname
        if drop_data and not yes:
            answer = click.prompt(
                f"This drops autopilot {current.version} and every row of its tables in database "
                f'"{database}". Type the database name to confirm',
                default="",
                show_default=False,
            )
            if answer != database:
                raise AutopilotError("not confirmed: nothing changed")
        # before anything: a role that cannot see its pg_cron jobs would drop autopilot and leave them firing
        schedules.check_can_schedule(conn, dsn, functions=("unschedule",))
        result = schedules.sync(conn, dsn, remove_all=True)
        if result.location.explanation:
            console.print(escape(safe(result.location.explanation)), highlight=False)
        else:
            console.print(f"removed {len(result.changes)} pg_cron jobs", highlight=False)
        if drop_data:
            console.print(f"[green]{escape(safe(installer.drop(conn)))}[/]", highlight=False)
        else:
            console.print(
                "autopilot's tables and data are kept; `autopilot install` schedules the jobs again, "
                "`autopilot uninstall --drop-data` removes everything.",
                highlight=False,
            )


@cli.command()
@dsn_option
@handled
def sync(dsn: str | None) -> None:
    """Make pg_cron match the catalog and the overrides (wherever pg_cron lives)."""
    from . import schedules

    with connect(dsn) as conn:
        _require_installed(conn)
        schedules.check_can_schedule(conn, dsn)
        _report_sync(conn, dsn)


@cli.command()
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handled
def status(dsn: str | None, as_json: bool) -> None:
    """Every job: schedule, pg_cron state, last run, next run, OVERDUE; the queue; the health problems.

    Exits 2 when autopilot.health has a critical problem (see `autopilot check`), else 1 when pg_cron is
    out of sync with the catalog (run `autopilot sync`)."""
    from .cli_common import console
    from .render import status_table
    from .status import gather

    with connect(dsn, autocommit=True) as conn:
        result = gather(conn, dsn)
    if as_json:
        # JSON escapes C0 and (ensure_ascii) C1; DEL too, so that no control character is printed raw
        click.echo(json.dumps(result.as_json(), indent=2, default=str).replace("\x7f", "\\u007f"))
    else:
        status_table(result, console)
    if result.exit_code:
        sys.exit(result.exit_code)


@cli.command()
@dsn_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document (status, exit_code, problems).")
def check(dsn: str | None, as_json: bool) -> None:
    """Health check for Nagios, Icinga or cron mail: one summary line, then one line per problem.

    Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (e.g. the database cannot be reached)."""
    from . import health, installer

    try:
        with connect(dsn, autocommit=True) as conn:
            if installer.installed(conn) is None:
                raise NotInstalled("autopilot is not installed in this database")
            if not health.available(conn):
                raise NotInstalled("the installed autopilot has no autopilot.health: run autopilot upgrade")
            found = health.problems(conn, dsn)
    except (psycopg.Error, AutopilotError) as exc:
        reason = " ".join(str(getattr(exc, "message", None) or exc).split())
        line = safe(
            f"AUTOPILOT UNKNOWN - {'cannot connect: ' if isinstance(exc, psycopg.OperationalError) else ''}"
            f"{reason}"
        )
        if as_json:
            click.echo(
                json.dumps(
                    {"status": "UNKNOWN", "exit_code": health.UNKNOWN, "summary": line, "problems": []},
                    indent=2,
                )
            )
        else:
            click.echo(line)
        sys.exit(health.UNKNOWN)
    code = health.exit_code(found)
    if as_json:
        document = {
            "status": health.STATUS_NAMES[code],
            "exit_code": code,
            "summary": safe(health.summary(found)),
            "problems": [p.as_json() for p in found],
        }
        click.echo(json.dumps(document, indent=2).replace("\x7f", "\\u007f"))
    else:
        click.echo(safe(health.summary(found)))
        for p in found:
            click.echo(safe(f"{p.severity.upper()} {p.check_name} {p.subject}: {p.message}"))
    sys.exit(code)


@cli.command()
@dsn_option
@click.argument("job")
@handled
def run(dsn: str | None, job: str) -> None:
    """Run JOB now (a runner-side job is enqueued); exits non-zero when it fails or times out."""
    from . import run_now
    from .cli_common import console
    from .render import duration

    with connect(dsn, autocommit=True) as conn:
        _require_installed(conn)
        ran = run_now.run_now(conn, job)
    line = safe(
        f"{job}: {ran['status']} in {duration(ran['duration'])}"
        f" ({ran['rows_affected'] if ran['rows_affected'] is not None else '-'} rows)"
        f" — {ran['message']} [ledger run {ran['id']}]"
    )
    if ran["status"] in ("failed", "timed_out"):
        raise JobFailed(f"{line}; SQLSTATE {safe(ran['error_sqlstate'])}")
    console.print(
        line, style="green" if ran["status"] == "succeeded" else "yellow", highlight=False, markup=False
    )


@cli.command()
@dsn_option
@click.argument("job")
@click.argument("cron", required=False)
@click.option(
    "--disable", "action", flag_value="disable", help="Disable the job (kept in pg_cron, inactive)."
)
@click.option("--enable", "action", flag_value="enable", help="Enable the job again.")
@click.option(
    "--reset",
    "action",
    flag_value="reset",
    help="Back to the catalog's schedule, enabled, timeout and retries.",
)
@click.option(
    "--timeout",
    metavar="INTERVAL",
    help="Cancel a run of JOB past this long, recorded timed_out (e.g. '30 minutes').",
)
@click.option(
    "--retries",
    type=int,
    metavar="N",
    help="Up to N attempts per run when a step fails transiently (serialization failure, deadlock, "
    "lock not available); 1: no retry.",
)
@click.option(
    "--backoff", metavar="INTERVAL", help="With --retries: the wait before the second attempt (it doubles)."
)
@handled
def schedule(
    dsn: str | None,
    job: str,
    cron: str | None,
    action: str | None,
    timeout: str | None,
    retries: int | None,
    backoff: str | None,
) -> None:
    """Change JOB's schedule to CRON (five fields, UTC), or --disable, --enable, --reset it; set its
    --timeout and --retries (function and batched jobs)."""
    from . import schedules
    from .cli_common import console

    policy = timeout is not None or retries is not None
    if backoff is not None and retries is None:
        raise click.UsageError("--backoff goes with --retries N")
    if (cron is not None and action is not None) or (cron is None and action is None and not policy):
        raise click.UsageError(
            "give either a CRON expression or one of --disable, --enable, --reset"
            " (and/or --timeout, --retries)"
        )
    if action == "reset" and policy:
        raise click.UsageError(
            "--reset returns the job to all its catalog defaults: give --timeout or --retries after it"
        )
    with connect(dsn) as conn:
        _require_installed(conn)
        changes_schedule = cron is not None or action is not None
        if changes_schedule:
            schedules.check_can_schedule(conn, dsn)  # the change is saved only when it can be synced
        with conn.transaction():
            messages = []
            if changes_schedule:
                messages.append(schedules.change_schedule(conn, job, cron, action))
            messages += schedules.change_run_policy(conn, job, timeout, retries, backoff)
        for message in messages:
            console.print(safe(message), highlight=False, markup=False)
        if changes_schedule:
            _report_sync(conn, dsn, after="the change is saved")


class _ValuesMayStartWithADash(click.Command):
    """`settings NAME '-1 day'`: an argument that starts with one dash and is not an option of the
    command is a VALUE (a negative number or interval), not an unknown option."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args:
            options = {opt for param in self.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)}
            dashed = [i for i, a in enumerate(args) if a[:1] == "-" and a[:2] != "--" and a not in options]
            if dashed:
                args = [a for i, a in enumerate(args) if i not in dashed] + ["--"] + [args[i] for i in dashed]
        return super().parse_args(ctx, args)


@cli.command(cls=_ValuesMayStartWithADash)
@dsn_option
@click.argument("name", required=False)
@click.argument("value", required=False)
@click.option("--reset", is_flag=True, help="Return NAME to its default.")
@handled
def settings(dsn: str | None, name: str | None, value: str | None, reset: bool) -> None:
    """List the settings, show NAME, set NAME to VALUE, or --reset NAME."""
    from rich.markup import escape

    from . import settings as settings_module
    from .cli_common import console

    with connect(dsn) as conn:
        _require_installed(conn)
        rows = settings_module.settings(conn, name, value, reset)
    for row in rows:
        setting, current, default, kind, description = safe_data(
            [row.name, row.value, row.default, row.value_type, row.description]
        )
        changed = f"  (default {default})" if row.changed else ""
        console.print(
            f"[bold]{escape(setting)}[/] = {escape(current)} "
            f"[dim]{escape(kind)}{escape(changed)} — {escape(description)}[/]",
            highlight=False,
        )


@cli.command()
@dsn_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only by default)."
)
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free one)."
)
@click.option(
    "--token",
    envvar="AUTOPILOT_SERVE_TOKEN",
    help="The token the retry and cancel forms ask for; default: AUTOPILOT_SERVE_TOKEN, else a new"
    " random one, printed.",
)
@handled
def serve(dsn: str | None, host: str, port: int, token: str | None) -> None:
    """Serve the web dashboard and Prometheus /metrics until interrupted."""
    import logging

    from .cli_common import console
    from .web.server import make_dashboard_server, new_token

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if token is not None and len(token) < 16:
        raise InvalidInput(
            "the token is too short", hint="give at least 16 characters, or none for a random one"
        )
    printed = token is None
    token = token or new_token()
    with connect(dsn, autocommit=True) as conn:
        _require_installed(conn)
    try:
        server, pool = make_dashboard_server(dsn, host, port, token)
    except OSError as exc:
        raise InvalidInput(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", hint="pick another --port or --host"
        ) from exc
    address = f"[{host}]" if ":" in host else host
    console.print(
        f"autopilot dashboard on http://{address}:{server.server_port}/ (metrics: /metrics)", highlight=False
    )
    if printed:
        console.print(f"token for retry and cancel: {token}", highlight=False, markup=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        pool.close()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
