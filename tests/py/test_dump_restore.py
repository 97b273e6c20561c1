"""pg_dump / pg_restore keeps every row of autopilot, in both install modes.

Every table of schema autopilot is discovered from pg_class, so a table added later cannot be
forgotten: the test fails until FIXTURES (sample_rows.py) fills it. In extension mode pg_dump writes only
CREATE EXTENSION plus the rows of the tables marked with pg_extension_config_dump; this proves
that the marks are complete.
"""

from __future__ import annotations

import subprocess

from helpers import PG_BINDIR
from sample_rows import FIXTURES, fill, identities_behind, identity_columns, table_digest, user_tables
from snapshot import DEFINITION_TABLES, extension_snapshot, schema_snapshot, snapshot_diff

QUEUED = "SELECT changed_xid::text, agent_id FROM autopilot.agent_knowledge_pending"
QUEUED_HOURS = "SELECT changed_xid::text, subject_kind, hour FROM autopilot.performance_metrics_pending"


def test_fixtures_cover_every_table(installed_db):
    with installed_db.connect() as conn:
        tables = user_tables(conn)
    missing = sorted(set(tables) - set(FIXTURES))
    assert not missing, f"tables of schema autopilot without fixture rows in FIXTURES: {missing}"
    assert not set(FIXTURES) - set(tables), "FIXTURES names a table that does not exist"
    assert all(FIXTURES[t] for t in tables if t not in DEFINITION_TABLES)


def test_dump_and_restore_keeps_every_row(installed_db, new_database, tmp_path):
    db = installed_db
    with db.connect(autocommit=False) as conn:
        fill(conn, "before")
        tables = user_tables(conn)
        empty = [t for t in tables if table_digest(conn, t)[0] == 0]
        assert not empty, f"tables left empty by the fixtures: {empty}"
        assert conn.execute("SELECT count(*) FROM autopilot.backup_metadata_archive").fetchone()[0] == 1
        digests = {t: table_digest(conn, t) for t in tables}
        pending = conn.execute(QUEUED).fetchall()
        pending_hours = conn.execute(QUEUED_HOURS).fetchall()
        snapshot = schema_snapshot(conn)
        ext_snapshot = extension_snapshot(conn) if db.mode == "extension" else None

    dump = tmp_path / "autopilot.dump"
    done = subprocess.run(
        [str(PG_BINDIR / "pg_dump"), "-Fc", "-f", str(dump), "-d", db.dsn], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    listing = subprocess.run([str(PG_BINDIR / "pg_restore"), "-l", str(dump)], capture_output=True, text=True)
    if db.mode == "extension":
        assert "EXTENSION - autopilot" in listing.stdout
        assert "TABLE autopilot" not in listing.stdout  # the tables come from CREATE EXTENSION

    target = new_database("restored")
    done = subprocess.run(
        [str(PG_BINDIR / "pg_restore"), "--exit-on-error", "-d", target.dsn, str(dump)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""

    with target.connect(autocommit=False) as conn:
        assert user_tables(conn) == tables
        restored = {t: table_digest(conn, t) for t in tables}
        # in extension mode the tasks triggers exist while pg_restore loads autopilot.tasks, so the
        # agents with finished tasks are queued once more for agent-knowledge-update: a superset
        assert set(conn.execute(QUEUED).fetchall()) >= set(pending)
        # likewise the hours of finished tasks, jobs and failed runs, for metrics-refresh
        assert set(conn.execute(QUEUED_HOURS).fetchall()) >= set(pending_hours)
        queues = ("agent_knowledge_pending", "performance_metrics_pending")
        assert {t: d for t, d in restored.items() if t not in queues} == {
            t: d for t, d in digests.items() if t not in queues
        }
        assert snapshot_diff(snapshot, schema_snapshot(conn), ("dumped", "restored")) == []
        if ext_snapshot is not None:
            assert snapshot_diff(ext_snapshot, extension_snapshot(conn), ("dumped", "restored")) == []
        assert (
            conn.execute("SELECT autopilot.get_setting('jobs.completed_retention')").fetchone()[0] == "3 days"
        )
        assert (
            conn.execute(
                "SELECT schedule FROM autopilot.job_definitions WHERE name = 'table-statistics'"
            ).fetchone()[0]
            == "*/7 * * * *"
        )
        conn.commit()

        # identity sequences came back with the rows: none would hand out a value already taken
        assert identities_behind(conn) == []
        # and new rows go in beside the restored ones in every table with an identity (no collision)
        fill(conn, "after")
        grown = {t for t in tables if table_digest(conn, t)[0] > digests[t][0]}
        assert grown >= {t for t, _ in identity_columns(conn)}
