"""Connections: settings from --dsn, AUTOPILOT_DSN, or libpq's PG* variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from .errors import translate

APPLICATION_NAME = "autopilot"


def resolve_dsn(dsn: str | None) -> str:
    """--dsn wins, then AUTOPILOT_DSN; an empty string lets libpq read PGHOST, PGDATABASE, ..."""
    return dsn or os.environ.get("AUTOPILOT_DSN", "")


def connect(dsn: str | None = None, *, autocommit: bool = False, **overrides: str) -> psycopg.Connection:
    conninfo = make_conninfo(resolve_dsn(dsn), **overrides)
    if "application_name" not in conninfo_to_dict(conninfo):
        conninfo = make_conninfo(conninfo, application_name=APPLICATION_NAME)
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise translate(exc) from exc


@contextmanager
def translated_errors() -> Iterator[None]:
    """The boundary where database errors become the package's own exceptions."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from exc


def other_database(dsn: str | None, dbname: str, **kwargs) -> psycopg.Connection:
    """A connection with the same settings to another database of the same server."""
    return connect(dsn, dbname=dbname, **kwargs)
