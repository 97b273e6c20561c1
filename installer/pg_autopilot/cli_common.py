"""What every `autopilot` subcommand shares: the consoles, --dsn, and the error boundary."""

from __future__ import annotations

import functools
import sys

import click
from rich.console import Console
from rich.markup import escape

from .db import translated_errors
from .errors import AutopilotError
from .render import safe

# not a terminal (a pipe, CI): a wide fixed width instead of rich's 80 columns
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

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
            message = "\n".join(safe(line) for line in exc.message.split("\n"))
            err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            if exc.hint:
                err_console.print(f"[bold]hint:[/] {escape(safe(exc.hint))}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper
