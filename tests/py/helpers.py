"""Helpers shared by the pytest modules (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import psycopg
from click.testing import Result
from psycopg.rows import dict_row

PG_BINDIR = Path(os.environ.get("AUTOPILOT_TEST_PG_BINDIR", "/usr/lib/postgresql/15/bin"))


def wait_for(condition: Callable[[], object], what: str, timeout: float = 20) -> object:
    """Polls ``condition`` until it returns something true (returned), or fails after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def flat(text: str) -> str:
    """Whitespace collapsed: rich wraps long messages at the console width."""
    return " ".join(text.split())


def assert_no_traceback(result: Result | subprocess.CompletedProcess) -> None:
    if isinstance(result, Result):
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            shown = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
            raise AssertionError(f"the command raised {result.exception!r}:\n{shown}\n{result.output}")
        text = result.output
    else:
        text = result.stdout + result.stderr
    assert "Traceback" not in text, text


def autopilot_argv() -> list[str]:
    """The `autopilot` command as a real process: the console script of this venv, else `python -m`."""
    script = Path(sys.executable).with_name("autopilot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pg_autopilot.cli"]


def run_subprocess(*args: str, env: dict[str, str] | None = None, input: str | None = None):
    """`autopilot ARGS` in a separate process, without the caller's AUTOPILOT_DSN and PG* variables."""
    argv = autopilot_argv()
    full_env = {k: v for k, v in os.environ.items() if k != "AUTOPILOT_DSN" and not k.startswith("PG")}
    full_env.update(env or {})
    result = subprocess.run(
        [*argv, *args], capture_output=True, text=True, env=full_env, input=input, timeout=120
    )
    assert_no_traceback(result)
    return result


def cron_jobs(cron_conn: psycopg.Connection, database: str) -> dict[str, dict]:
    """The autopilot:* rows of cron.job for one database, by job name."""
    with cron_conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT jobid, jobname, schedule, command, database, username, active FROM cron.job "
            "WHERE database = %s AND starts_with(jobname, 'autopilot:') ORDER BY jobname",
            [database],
        ).fetchall()
    return {r["jobname"]: r for r in rows}


def all_cron_jobs(cron_conn: psycopg.Connection) -> list[dict]:
    with cron_conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT jobid, jobname, schedule, command, database, username, active "
            "FROM cron.job ORDER BY jobid"
        ).fetchall()


def dict_rows(conn: psycopg.Connection, query: str, params: list | None = None) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params or []).fetchall()


def assert_status_exit(result: Result) -> None:
    """`autopilot status` exits 2 exactly when it shows a critical problem of autopilot.health (a table line
    "CRITICAL ...", or a critical entry of --json's problems), else 1 exactly when it says pg_cron is out
    of sync with the catalog, else 0."""
    critical = '"severity": "critical"' in result.stdout or any(
        line.lstrip().startswith("CRITICAL ") for line in result.stdout.splitlines()
    )
    out_of_sync = "pg_cron is out of sync with the catalog" in result.stdout
    assert result.exit_code == (2 if critical else 1 if out_of_sync else 0), result.output
