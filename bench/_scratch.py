"""Shared by the benchmarks: a scratch database on a throwaway durable cluster, or on --dsn's server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from rich.console import Console

from pg_autopilot.cluster import Cluster


@contextlib.contextmanager
def scratch_database(dsn: str | None, name: str, console: Console) -> Iterator[str]:
    """Yields the DSN of a fresh database ``name``, dropped afterwards. Without ``dsn``, on a throwaway
    durable cluster (fsync on, as in production) that is destroyed afterwards."""
    cluster = None
    if dsn is None:
        with console.status("starting a throwaway durable cluster"):
            cluster = Cluster.create(durable=True, pg_cron=False)
        dsn = cluster.dsn()
    try:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield make_conninfo(dsn, dbname=name)
        finally:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    finally:
        if cluster is not None:
            cluster.destroy()
