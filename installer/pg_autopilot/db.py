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


# Every session autopilot opens resolves names in pg_catalog only (and its own pg_temp, last).
# The CLI and the runner often connect as a superuser, and a database's owner can make
# `public` come first for every session (ALTER DATABASE ... SET search_path), where a function
# such as public.format(text, text) would outrank pg_catalog's variadic one. Sent as a startup
# option, the setting wins over the database's and the role's defaults.
SEARCH_PATH = "pg_catalog, pg_temp"


def conninfo(dsn: str | None = None, **overrides: str) -> str:
    """The connection string autopilot connects with: the user's settings, overrides, its
    application_name unless one is set, and the pinned search_path added to any libpq options
    (the DSN's, else PGOPTIONS), after them so that it wins."""
    info = make_conninfo(resolve_dsn(dsn), **overrides)
    params = conninfo_to_dict(info)
    if "application_name" not in params:
        info = make_conninfo(info, application_name=APPLICATION_NAME)
    options = params.get("options") or os.environ.get("PGOPTIONS", "")
    pin = "-c search_path=" + SEARCH_PATH.replace(" ", "\\ ")
    return make_conninfo(info, options=f"{options} {pin}".strip())


def connect(dsn: str | None = None, *, autocommit: bool = False, **overrides: str) -> psycopg.Connection:
    info = conninfo(dsn, **overrides)
    try:
        return psycopg.connect(info, autocommit=autocommit, connect_timeout=10)
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
