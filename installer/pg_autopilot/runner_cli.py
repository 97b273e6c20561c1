"""`autopilot runner ...`: run the runner, take a backup now, restore one."""

from __future__ import annotations

import importlib
import signal

import click

from . import backups_cli
from .cli_common import dsn_option, handled
from .errors import InvalidInput


@click.group()
def runner() -> None:
    """The runner: drains autopilot.jobs (pg_dump backups and the other runner-side jobs)."""


@runner.command()
@dsn_option
@click.option(
    "--queues",
    default="default,backups",
    show_default=True,
    help="Comma-separated queues to drain.",
)
@click.option(
    "--concurrency", type=click.IntRange(1, 1000), default=10, show_default=True, help="Jobs at once."
)
@click.option("--node", help="This runner's name in autopilot.jobs.attempted_by (default: host:pid).")
@click.option(
    "--poll-interval",
    type=click.FloatRange(0.01),
    default=1.0,
    show_default=True,
    help="Seconds between polls when no NOTIFY arrives.",
)
@click.option(
    "--heartbeat-interval",
    type=click.FloatRange(0.1),
    default=5.0,
    show_default=True,
    help="Seconds between heartbeats of the running jobs (keep well under jobs.rescue_after).",
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, seconds the running jobs get to finish.",
)
@click.option(
    "--worker-module",
    "worker_modules",
    multiple=True,
    metavar="MODULE",
    help="Import MODULE, which registers more workers with pg_autopilot.workers.worker (repeatable).",
)
@click.option("--no-startup-jobs", is_flag=True, help="Do not enqueue the catalog's startup jobs.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info")
@handled
def start(
    dsn: str | None,
    queues: str,
    concurrency: int,
    node: str | None,
    poll_interval: float,
    heartbeat_interval: float,
    grace: float,
    worker_modules: tuple[str, ...],
    no_startup_jobs: bool,
    log_level: str,
) -> None:
    """Drain autopilot.jobs until SIGTERM or SIGINT; logs are JSON lines on stderr."""
    from .runner import Runner, RunnerConfig, configure_logging

    for module in worker_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise InvalidInput(f"cannot import worker module {module}: {exc}") from exc
    configure_logging(log_level)
    config = RunnerConfig(
        dsn=dsn,
        queues=tuple(q.strip() for q in queues.split(",") if q.strip()),
        concurrency=concurrency,
        poll_interval=poll_interval,
        heartbeat_interval=heartbeat_interval,
        grace=grace,
        enqueue_startup_jobs=not no_startup_jobs,
    )
    if node:
        config.node = node
    the_runner = Runner(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: the_runner.stop())
    the_runner.run()


runner.add_command(backups_cli.backup)
runner.add_command(backups_cli.restore)
