"""What every `autopilot` subcommand shares: the consoles, --dsn, and the error boundary."""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING

import click

from .db import translated_errors
from .errors import AutopilotError
from .terminal import safe

if TYPE_CHECKING:
    from rich.console import Console

    console: Console
    err_console: Console


def _console(name: str) -> Console:
    """``console`` (stdout) or ``err_console`` (stderr), made on first use: rich is imported by the
    commands that print through it, not by every start of the CLI (`autopilot check` prints plain lines).
    Not a terminal (a pipe, CI): a wide fixed width instead of rich's 80 columns."""
    made = globals().get(name)
    if made is None:
        from rich.console import Console

        stderr = name == "err_console"
        made = Console(stderr=stderr, width=None if (sys.stderr if stderr else sys.stdout).isatty() else 160)
        globals()[name] = made
    return made


def __getattr__(name: str) -> Console:
    """``from .cli_common import console, err_console`` (PEP 562)."""
    if name in ("console", "err_console"):
        return _console(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


dsn_option = click.option(
    "--dsn",
    envvar="AUTOPILOT_DSN",
    help="libpq connection string or URI; default: AUTOPILOT_DSN, then the PG* variables.",
)


def handled(func):
    """The CLI's error boundary: an AutopilotError is a message and a non-zero exit, no traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with translated_errors():
                return func(*args, **kwargs)
        except AutopilotError as exc:
            # soft_wrap: one message, one line, whatever the width (greppable in logs); the message's
            # own lines (a server error's detail) are kept, the data in them made safe for a terminal
            from rich.markup import escape

            err_console = _console("err_console")
            message = "\n".join(safe(line) for line in exc.message.split("\n"))
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[bold]hint:[/] {escape(safe(exc.hint))}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper
