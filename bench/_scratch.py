"""Shared by the benchmarks: a scratch database on a throwaway durable cluster (or on --dsn's server),
autopilot installed in it with the server described, a goal's verdict, and the error a failed correctness
check raises."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from rich.console import Console

from pg_autopilot.testing import Cluster


@contextlib.contextmanager
def scratch_database(
    dsn: str | None, name: str, console: Console, pg_cron: bool = False, keep: bool = False
) -> Iterator[str]:
    """Yields the DSN of a fresh database ``name``, dropped afterwards. Without ``dsn``, on a throwaway
    durable cluster (fsync on, as in production) that is destroyed afterwards. ``pg_cron``: the cluster
    loads pg_cron (``dsn`` must then be pg_cron's database), and the pg_cron jobs of ``name`` are
    unscheduled before it is dropped. ``keep``: on ``dsn``'s server, the database is left (for plans)."""
    cluster = None
    if dsn is None:
        with console.status("starting a throwaway durable cluster"):
            cluster = Cluster.create(durable=True, pg_cron=pg_cron)
        dsn = cluster.dsn()
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            if pg_cron:
                admin.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(dsn, dbname=name)
        finally:
            if cluster is None and not keep:
                with psycopg.connect(dsn, autocommit=True) as admin:
                    if pg_cron:
                        admin.execute(
                            "SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", [name]
                        )
                    admin.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                    )
    finally:
        if cluster is not None:
            cluster.destroy()


class CorrectnessError(Exception):
    """A benchmark's result is wrong (a job lost or run twice, a count off): it exits 1."""


SERVER_SETTINGS = (
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "shared_buffers",
    "work_mem",
)


def describe_server(conn: psycopg.Connection) -> str:
    """The settings the figures depend on, as ``name=value, ...``."""
    values = [
        conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(n))).fetchone()[0] for n in SERVER_SETTINGS
    ]
    return ", ".join(f"{n}={v}" for n, v in zip(SERVER_SETTINGS, values, strict=True))


def create_autopilot(dsn: str, console: Console) -> None:
    """``CREATE EXTENSION autopilot`` in the scratch database; prints its version and the server settings."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION autopilot")
        (version,) = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'autopilot'"
        ).fetchone()
        console.print(f"autopilot {version}; {describe_server(conn)}")


def verdict(ok: bool | None) -> str:
    """PASS or MISS for a goal; n/a when it could not be measured."""
    if ok is None:
        return "[yellow]n/a[/]"
    return "[bold green]PASS[/]" if ok else "[bold red]MISS[/]"
