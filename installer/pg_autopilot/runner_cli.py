"""`autopilot runner ...`: run the runner; `runner backup` and `runner restore` are `autopilot backups run`
and `autopilot backups restore` under their earlier names."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from . import backups_cli
from .cli_common import dsn_option, handled
from .db import translated_errors
from .errors import AutopilotError, InvalidInput

if TYPE_CHECKING:
    from .runner import Runner

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: nothing (the wakeup fd carries the signal, see _stop_on_signals)."""


@contextmanager
def _stop_on_signals(the_runner: Runner) -> Iterator[None]:
    """SIGTERM and SIGINT stop the runner, without running runner code in a signal handler.

    A Python signal handler runs in the main thread between two bytecodes -- possibly while that very
    thread holds a lock the handler would take (Runner.stop() sets threading.Events, each behind a lock
    the main loop takes many times a second): a deadlock. So the handler does nothing; the interpreter's
    C-level handler writes the signal's number to a pipe (signal.set_wakeup_fd, async-signal-safe), and
    a thread of its own reads it and calls stop()."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    wanted = {int(s) for s in _STOP_SIGNALS}

    def watch() -> None:
        while data := os.read(read_fd, 512):  # b"": the write end is closed, the run is over
            if wanted.intersection(data):
                the_runner.stop()

    previous = {signum: signal.signal(signum, _ignore) for signum in _STOP_SIGNALS}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="autopilot-signals", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous_fd)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(write_fd)
        watcher.join(timeout=5)
        os.close(read_fd)


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
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="AUTOPILOT_METRICS_PORT",
    help="Serve Prometheus /metrics on this port (default: AUTOPILOT_METRICS_PORT; none: not served).",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address /metrics listens on (with --metrics-port).",
)
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
    metrics_port: int | None,
    metrics_host: str,
    log_level: str,
) -> None:
    """Drain autopilot.jobs until SIGTERM or SIGINT; logs are JSON lines on stderr."""
    from .runner import Runner, RunnerConfig, configure_logging, event

    # from here on every line on stderr is JSON, a failure to start included
    configure_logging(log_level)
    try:
        with translated_errors():
            for module in worker_modules:
                try:
                    importlib.import_module(module)
                except ImportError as exc:
                    raise InvalidInput(f"cannot import worker module {module}: {exc}") from exc
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
            metrics_server = None
            if metrics_port is not None:
                from .web.metrics import serve_metrics

                try:
                    metrics_server = serve_metrics(dsn, metrics_host, metrics_port)
                except OSError as exc:
                    raise InvalidInput(
                        f"cannot serve metrics on {metrics_host}:{metrics_port}: {exc.strerror or exc}",
                        hint="pick another --metrics-port",
                    ) from exc
                event(logging.INFO, "metrics served", host=metrics_host, port=metrics_port, path="/metrics")
            try:
                with _stop_on_signals(the_runner):
                    the_runner.run()
            finally:
                if metrics_server is not None:
                    metrics_server.shutdown()
                    metrics_server.server_close()
    except AutopilotError as exc:
        event(logging.ERROR, "runner failed", error=exc.message, hint=exc.hint, sqlstate=exc.sqlstate)
        sys.exit(1)


# the earlier names of `autopilot backups run` and `autopilot backups restore`, kept
runner.add_command(backups_cli.run, name="backup")
runner.add_command(backups_cli.restore, name="restore")
