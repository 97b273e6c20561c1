"""Install, upgrade and uninstall autopilot: as an extension, or as a plain schema from the same SQL.

Extension mode (``CREATE EXTENSION autopilot``) needs the extension files on the server
(``make install``). Schema mode, for a managed server where no files can be placed, runs the
same script as plain SQL; ``autopilot.version()`` records the version so that ``upgrade``
applies the same upgrade scripts later. Both run in one transaction under an advisory lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg import sql

from .errors import AutopilotError, NotInstalled, VersionError
from .sqlfiles import bundle, parse_version, strip_psql_guard

Mode = Literal["extension", "schema"]

# pg_advisory_xact_lock key: install, upgrade and uninstall never overlap
INSTALL_LOCK = 0x6175_7470_696E_7374  # "autpinst"


@dataclass(frozen=True)
class Installed:
    mode: Mode
    version: str


def installed(conn: psycopg.Connection) -> Installed | None:
    """What is installed in this database, if anything."""
    row = conn.execute(
        "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'autopilot'"
    ).fetchone()
    if row:
        return Installed("extension", row[0])
    has_schema = conn.execute("SELECT to_regnamespace('autopilot') IS NOT NULL").fetchone()[0]
    if not has_schema:
        return None
    has_version = conn.execute("SELECT to_regprocedure('autopilot.version()') IS NOT NULL").fetchone()[0]
    if not has_version:
        raise AutopilotError(
            "schema autopilot exists but was not created by autopilot",
            hint="Rename or drop that schema, then install again.",
        )
    return Installed("schema", conn.execute("SELECT autopilot.version()").fetchone()[0])


def server_versions(conn: psycopg.Connection) -> list[str]:
    """Versions whose extension files are installed on the server."""
    rows = conn.execute(
        "SELECT version FROM pg_catalog.pg_available_extension_versions WHERE name = 'autopilot'"
    ).fetchall()
    return sorted((r[0] for r in rows), key=parse_version)


def _lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_catalog.pg_advisory_xact_lock(%s)", [INSTALL_LOCK])


def _check_not_newer(current: Installed, target: str) -> None:
    if parse_version(current.version) > parse_version(target):
        raise VersionError(
            f"autopilot {current.version} is installed, newer than {target} (this package): nothing changed",
            hint="Use a pg-autopilot release that carries that version or newer.",
        )


def choose_mode(conn: psycopg.Connection, version: str, requested: str) -> Mode:
    if requested == "extension":
        if version not in server_versions(conn):
            raise AutopilotError(
                f"the autopilot {version} extension files are not installed on this server",
                hint="Run `make install` on the server (PGXS), or install with --mode schema.",
            )
        return "extension"
    if requested == "schema":
        return "schema"
    return "extension" if version in server_versions(conn) else "schema"


@dataclass
class InstallResult:
    mode: Mode
    version: str
    changed: bool
    message: str


def install(conn: psycopg.Connection, *, mode: str = "auto", version: str | None = None) -> InstallResult:
    """Install autopilot (idempotent). The connection must not be in autocommit mode."""
    version = version or bundle().default_version
    with conn.transaction():
        _lock(conn)
        current = installed(conn)
        if current is not None:
            _check_not_newer(current, version)
            if current.version != version:
                raise VersionError(
                    f"autopilot {current.version} is installed ({current.mode} mode): nothing changed",
                    hint=f"Run `autopilot upgrade` to go to {version}.",
                )
            if mode not in ("auto", current.mode):
                raise AutopilotError(
                    f"autopilot {current.version} is already installed in {current.mode} mode",
                    hint="Uninstall with --drop-data first to change the install mode.",
                )
            return InstallResult(current.mode, version, False, f"autopilot {version} is already installed")
        chosen = choose_mode(conn, version, mode)
        if chosen == "extension":
            conn.execute(sql.SQL("CREATE EXTENSION autopilot VERSION {}").format(sql.Literal(version)))
        else:
            conn.execute("CREATE SCHEMA autopilot")
            conn.execute(bundle().install_script(version))
    return InstallResult(chosen, version, True, f"installed autopilot {version} ({chosen} mode)")


def upgrade(conn: psycopg.Connection, *, to: str | None = None) -> InstallResult:
    """Upgrade to ``to`` (default: this package's version), through the upgrade scripts."""
    target = to or bundle().default_version
    if target not in bundle().versions:
        raise VersionError(
            f"unknown autopilot version {target}",
            hint=f"This package carries: {', '.join(bundle().versions)}.",
        )
    with conn.transaction():
        _lock(conn)
        current = installed(conn)
        if current is None:
            raise NotInstalled("autopilot is not installed in this database", hint="Run `autopilot install`.")
        _check_not_newer(current, target)
        if current.version == target:
            return InstallResult(current.mode, target, False, f"autopilot {target} is already installed")
        if current.mode == "extension":
            if target not in server_versions(conn):
                raise VersionError(
                    f"the autopilot {target} extension files are not installed on this server",
                    hint="Run `make install` on the server first (it installs every version's scripts).",
                )
            conn.execute(sql.SQL("ALTER EXTENSION autopilot UPDATE TO {}").format(sql.Literal(target)))
        else:
            for start, end in bundle().upgrade_path(current.version, target):
                conn.execute(strip_psql_guard(bundle().updates[(start, end)]))
        after = installed(conn)
        if after is None or after.version != target:
            raise VersionError(
                f"the upgrade scripts left version {after.version if after else 'none'}, expected {target}"
            )
    return InstallResult(
        current.mode, target, True, f"upgraded autopilot {current.version} → {target} ({current.mode} mode)"
    )


def drop(conn: psycopg.Connection) -> str:
    """Drop autopilot and all its data. The caller has removed the pg_cron jobs and asked for confirmation."""
    with conn.transaction():
        _lock(conn)
        current = installed(conn)
        if current is None:
            raise NotInstalled("autopilot is not installed in this database")
        if current.mode == "extension":
            conn.execute("DROP EXTENSION autopilot")
        leftovers = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_class WHERE relnamespace = 'autopilot'::regnamespace"
        ).fetchone()[0]
        if current.mode == "schema" or leftovers == 0:
            # schema mode: the schema is autopilot's; extension mode: only when nothing else is left
            conn.execute("DROP SCHEMA IF EXISTS autopilot CASCADE")
    return f"dropped autopilot {current.version} and its data ({current.mode} mode)"
