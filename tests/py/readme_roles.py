"""Login roles granted as the README's privileges block says, for tests that run the runner as its
own role (the block and the test of every role are tests/py/test_privileges.py)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import make_conninfo
from test_privileges import readme_grants

ROLES = ("autopilot_runner", "autopilot_readonly", "autopilot_app", "autopilot_instance")


@contextlib.contextmanager
def readme_roles(admin_dsn: str, database) -> Iterator[dict[str, str]]:
    """Yields a DSN to ``database`` per README role (keyed runner, readonly, app, instance), each a
    new login role granted as the README says; dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"ap_{role.removeprefix('autopilot_')}_{suffix}" for role in ROLES}
    grants = readme_grants()
    for role, name in names.items():
        grants = grants.replace(role, name)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f"CREATE ROLE {name} LOGIN")
    try:
        with database.connect() as conn:
            conn.execute(grants)
        yield {
            role.removeprefix("autopilot_"): make_conninfo(database.dsn, user=name)
            for role, name in names.items()
        }
    finally:
        with database.connect() as conn:
            for name in names.values():
                conn.execute(f"DROP OWNED BY {name}")
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f"DROP OWNED BY {name}")
                conn.execute(f"DROP ROLE {name}")
