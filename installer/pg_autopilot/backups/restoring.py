"""The databases restores restore into: their temporary name, the advisory lock that marks a restore into
one live, and the half-restored ones (listed by `autopilot status`, dropped by the next restore or backup)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ..errors import translate

# restore: the new database has this name (plus the autopilot database's oid and a random token) until
# pg_restore has finished; a database of that name whose restore lock is free is half-restored
RESTORING_PREFIX = "autopilot_restoring_"
RESTORE_LOCK_CLASS = 0x6170_7273  # "aprs": (this class, hashtext(temporary name)) held while a restore runs


def _restoring_prefix(conn: psycopg.Connection) -> str:
    """The name a restore gives its new database until pg_restore has finished: per autopilot database
    (its oid), so that one autopilot database never takes another's running restore for a dead one."""
    oid = conn.execute(
        "SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()"
    ).fetchone()[0]
    return f"{RESTORING_PREFIX}{oid}_"


def half_restored(conn: psycopg.Connection) -> list[dict]:
    """The databases restores from this autopilot database are restoring into, or left half-restored: name,
    what it was for (its comment), whether a restore still runs into it (its lock is held), whether this
    role may drop it."""
    rows = conn.execute(
        "SELECT d.datname::text, pg_catalog.shobj_description(d.oid, 'pg_database'), "
        "EXISTS (SELECT 1 FROM pg_catalog.pg_locks AS l WHERE l.locktype = 'advisory' AND l.granted "
        "AND l.database = (SELECT o.oid FROM pg_catalog.pg_database AS o "
        "WHERE o.datname = pg_catalog.current_database()) "
        "AND l.classid = %s::oid AND l.objid = pg_catalog.hashtext(d.datname::text)::oid "
        "AND l.objsubid = 2), "
        "pg_catalog.pg_has_role(d.datdba, 'MEMBER') "
        "FROM pg_catalog.pg_database AS d WHERE pg_catalog.starts_with(d.datname::text, %s) ORDER BY 1",
        [RESTORE_LOCK_CLASS, _restoring_prefix(conn)],
    ).fetchall()
    return [{"database": r[0], "about": r[1], "restoring": r[2], "owned": r[3]} for r in rows]


def drop_half_restored(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """Drop the databases earlier restores from this autopilot database left half-restored (their restore is
    gone: its lock is free, e.g. after a server restart or a SIGKILL), where this role may: (dropped,
    problems). Called by every restore and backup."""
    dropped, problems = [], []
    for entry in half_restored(conn):
        name = entry["database"]
        if entry["restoring"] or not entry["owned"]:
            continue
        if not conn.execute(
            "SELECT pg_catalog.pg_try_advisory_lock(%s, pg_catalog.hashtext(%s))", [RESTORE_LOCK_CLASS, name]
        ).fetchone()[0]:
            continue
        try:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            dropped.append(name)
        except psycopg.Error as exc:
            problems.append(f'cannot drop the half-restored database "{name}": {translate(exc).message}')
        finally:
            conn.execute(
                "SELECT pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))",
                [RESTORE_LOCK_CLASS, name],
            )
    return dropped, problems
