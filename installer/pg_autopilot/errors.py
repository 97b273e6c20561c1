"""The package's own exceptions, and the one place database errors are translated into them."""

from __future__ import annotations

import psycopg


class AutopilotError(Exception):
    """An error a DBA can act on: printed by the CLI without a traceback."""

    def __init__(self, message: str, hint: str | None = None, sqlstate: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.sqlstate = sqlstate

    def __str__(self) -> str:
        return self.message


class ConnectionFailed(AutopilotError):
    """The database could not be reached."""


class NotInstalled(AutopilotError):
    """autopilot is not installed in the database."""


class VersionError(AutopilotError):
    """A version problem: newer installed than packaged, no upgrade path, unknown version."""


class InvalidInput(AutopilotError):
    """The database rejected a value (invalid cron expression, unknown job, bad setting)."""


class JobFailed(AutopilotError):
    """A job ran and failed; its run is in autopilot.job_runs."""


class BackupFailed(AutopilotError):
    """A pg_dump backup failed (or did not verify): no complete-looking file is left, the record says why.

    ``result`` holds what the run did achieve (the other databases' backups), when it got that far.
    """

    result: object | None = None


class RestoreFailed(AutopilotError):
    """A backup could not be restored; the hint says whether the new database was dropped again (or, the
    server unreachable, is left for the next restore or backup to drop)."""


# SQLSTATE classes that mean "your input was wrong" rather than "the server failed"
_INPUT_SQLSTATES = {"22023", "42704", "0A000", "42710", "23502", "22P02", "22007", "22008"}


def translate(exc: psycopg.Error) -> AutopilotError:
    """Turn a psycopg error into an AutopilotError, keeping the server's message, hint and SQLSTATE."""
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return ConnectionFailed(
            f"cannot connect to the database: {_first_line(str(exc))}",
            hint="Check --dsn, AUTOPILOT_DSN or the PG* variables (PGHOST, PGPORT, PGUSER, PGDATABASE).",
        )
    diag = exc.diag
    sqlstate = diag.sqlstate or getattr(exc, "sqlstate", None)
    message = diag.message_primary or _first_line(str(exc))
    if diag.message_detail:
        message = f"{message}\n  detail: {diag.message_detail}"
    cls = InvalidInput if sqlstate in _INPUT_SQLSTATES else AutopilotError
    return cls(message, hint=diag.message_hint, sqlstate=sqlstate)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
