"""`autopilot run index-reindex`: the CLI plans a cycle and runs its statements itself, at top level
(REINDEX / DROP INDEX CONCURRENTLY cannot run inside a function), recording each and the run."""

from __future__ import annotations


def bloat_agents(database) -> None:
    """agents_pkey with nine entries in ten dead, and an invalid leftover of a failed rebuild."""
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.agents (name) "
            "SELECT 'reindex-agent-' || lpad(g::text, 6, '0') FROM generate_series(1, 30000) AS g"
        )
        conn.execute("DELETE FROM autopilot.agents WHERE id % 10 <> 0")
        conn.execute("VACUUM ANALYZE autopilot.agents")
        conn.execute("SELECT autopilot.set_setting('reindex.min_size_bytes', '0')")
        conn.execute("SELECT autopilot.set_setting('reindex.bloat_threshold', '0.5')")
        conn.execute("CREATE INDEX agents_pkey_ccnew ON autopilot.agents (id)")
        conn.execute(
            "UPDATE pg_index SET indisvalid = false "
            "WHERE indexrelid = 'autopilot.agents_pkey_ccnew'::regclass"
        )


def test_run_index_reindex_rebuilds_bloated_indexes_at_top_level(installed_db, autopilot):
    bloat_agents(installed_db)
    size_before = installed_db.scalar("SELECT pg_relation_size('autopilot.agents_pkey')")

    result = autopilot("run", "index-reindex", "--dsn", installed_db.dsn)
    assert result.exit_code == 0, result.output
    assert "index-reindex: succeeded" in result.stdout

    with installed_db.connect() as conn:
        items = conn.execute(
            "SELECT action, statement, state, message FROM autopilot.index_maintenance ORDER BY id"
        ).fetchall()
        run = conn.execute(
            "SELECT status, rows_affected, details FROM autopilot.job_runs "
            "WHERE job_name = 'index-reindex' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert items[0][:3] == (
        "drop_invalid",
        "DROP INDEX CONCURRENTLY IF EXISTS autopilot.agents_pkey_ccnew",
        "done",
    ), "the invalid leftover is dropped first"
    assert (
        "reindex",
        "REINDEX INDEX CONCURRENTLY autopilot.agents_pkey",
        "done",
        "ran at top level",
    ) in items
    assert all(state == "done" for _, _, state, _ in items)
    assert run[0] == "succeeded" and run[1] == len(items)
    assert run[2]["planned"] == len(items) and run[2]["failed"] == 0
    assert installed_db.scalar("SELECT to_regclass('autopilot.agents_pkey_ccnew')") is None
    assert installed_db.scalar("SELECT pg_relation_size('autopilot.agents_pkey')") < size_before / 3

    again = autopilot("run", "index-reindex", "--dsn", installed_db.dsn)
    assert again.exit_code == 0, again.output
    assert "no index needs a rebuild" in again.stdout


def test_run_index_reindex_step_is_refused(installed_db, autopilot):
    result = autopilot("run", "index-reindex-step", "--dsn", installed_db.dsn)
    assert result.exit_code != 0
    assert "index-reindex-step" in result.stderr
