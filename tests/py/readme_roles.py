"""Login roles granted as the README's privileges block says, for tests that run the runner as its
own role (the block and the test of every role are tests/py/test_privileges.py); and the README's
block for the role that installs and schedules without being a superuser (tests/py/test_managed.py)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import make_conninfo
from test_privileges import README, readme_grants

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


def readme_owner_grants(role: str, database: str) -> str:
    """The README's grants for the role that installs autopilot and owns its pg_cron jobs (autopilot_owner,
    application database app), for ``role`` and ``database``: to run in the database pg_cron lives in."""
    blocks = re.findall(r"```sql\n(.*?)```", README.read_text(), re.S)
    grants = [b for b in blocks if "GRANT" in b and "autopilot_owner" in b]
    assert len(grants) == 1, "README.md has one sql block with the grants for autopilot_owner"
    block = grants[0]
    assert "ON DATABASE app " in block
    return block.replace("autopilot_owner", role).replace("ON DATABASE app ", f'ON DATABASE "{database}" ')
