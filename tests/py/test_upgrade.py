"""Upgrades give the same schema as a fresh install, and keep the data.

The comparison is tests/py/snapshot.py: the schema as the catalogs describe it (a plain pg_dump of
an extension prints only CREATE EXTENSION). With only one release there is nothing to upgrade from
yet: the parametrized upgrade test says so explicitly, and the same machinery is exercised on the
current version so that it is known to work the day 0.2.0 arrives.
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import flat
from sample_rows import FIXTURES, identities_behind, table_columns, table_digest, user_tables
from snapshot import DEFINITION_TABLES, extension_snapshot, schema_snapshot, snapshot_diff

from pg_autopilot import installer
from pg_autopilot.sqlfiles import bundle, parse_version

CURRENT = bundle().default_version
MODES = ("extension", "schema")
EARLIER = [v for v in bundle().versions if parse_version(v) < parse_version(CURRENT)]
UPGRADE_PARAMS = [pytest.param(v, mode, id=f"{v}-{mode}") for v in EARLIER for mode in MODES] or [
    pytest.param(
        None,
        None,
        id="no-earlier-release",
        marks=pytest.mark.skip(reason=f"no earlier release yet: {CURRENT} is the only version packaged"),
    )
]


def fresh(new_database, mode: str):
    database = new_database(f"fresh{mode[:3]}")
    database.install(mode)
    return database


def snapshot_of(database) -> dict:
    with database.connect() as conn:
        return schema_snapshot(conn)


# -- (a) the two install modes ----------------------------------------------------------------------


def test_extension_and_schema_mode_give_the_same_schema(new_database):
    ext, schema = fresh(new_database, "extension"), fresh(new_database, "schema")
    a, b = snapshot_of(ext), snapshot_of(schema)
    differences = snapshot_diff(a, b, ("extension mode", "schema mode"))
    # the differences by design: the compiled kernels (src/pagerank.c, src/vector.c) exist only in an
    # extension install; schema mode runs autopilot._pagerank_sql and sums inner products in SQL instead;
    # _code_tokens is compiled there (src/code_tokens.c), SQL here, with the same results
    # (tests/sql/_code_tokens.sql)
    compiled = ("_pagerank_kernel(", "_inner_product(")
    assert differences, "the compiled kernels are missing from the extension install"
    assert [
        d
        for d in differences
        if not (d.endswith("only in extension mode") and any(k in d for k in compiled))
        and not d.startswith("routines: autopilot._code_tokens(text) differs:")
    ] == []
    assert any("_inner_product(" in d for d in differences), "the compiled inner product is missing"
    assert any("_code_tokens(" in d for d in differences), "the compiled code tokenizer is missing"
    # and the snapshot is not vacuous
    assert len(a["relations"]) > 20 and len(a["routines"]) > 20 and len(a["comments"]) > 50
    assert {"job_catalog", "settings"} <= set(a["rows"])
    assert a["rows"]["job_catalog"] and a["rows"]["settings"]


def test_extension_members_and_dump_marks(new_database):
    """Extension mode: every object of the schema belongs to the extension, and every table and
    identity sequence except the version's own definition tables is dumped by pg_dump."""
    ext = fresh(new_database, "extension")
    with ext.connect() as conn:
        snap = extension_snapshot(conn)
        expected = {
            r[0]
            for r in conn.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'autopilot'::regnamespace "
                "AND relkind IN ('r', 'p', 'S') AND NOT relname = ANY(%s)",
                [list(DEFINITION_TABLES)],
            )
        }
    assert snap["strays"]["objects"] == []
    assert set(snap["config_tables"]) == expected
    assert set(snap["config_tables"].values()) == {""}, "every row of a user table is dumped"


# -- (b) the snapshot sees changes ------------------------------------------------------------------

MUTATIONS = {
    "table comment": ("COMMENT ON TABLE autopilot.jobs IS 'changed'", "comments"),
    "column comment": ("COMMENT ON COLUMN autopilot.jobs.state IS 'changed'", "comments"),
    "function comment": ("COMMENT ON FUNCTION autopilot.version() IS 'changed'", "comments"),
    "new column": ("ALTER TABLE autopilot.jobs ADD COLUMN extra integer", "columns"),
    "column type": ("ALTER TABLE autopilot.graph_nodes ALTER COLUMN kind TYPE varchar(40)", "columns"),
    "column default": ("ALTER TABLE autopilot.agents ALTER COLUMN capacity SET DEFAULT 2", "columns"),
    "not null": ("ALTER TABLE autopilot.agents ALTER COLUMN last_seen_at SET NOT NULL", "columns"),
    "constraint": ("ALTER TABLE autopilot.agents DROP CONSTRAINT agents_capacity_check", "constraints"),
    "check body": (
        "ALTER TABLE autopilot.agents DROP CONSTRAINT agents_capacity_check, "
        "ADD CONSTRAINT agents_capacity_check CHECK (capacity > 0)",
        "constraints",
    ),
    "index": ("CREATE INDEX agents_status_idx ON autopilot.agents (status)", "indexes"),
    "function body": (
        "CREATE OR REPLACE FUNCTION autopilot.version() RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        "SET search_path = pg_catalog, pg_temp AS $$ SELECT '0.0.0'::text $$",
        "routines",
    ),
    "proconfig": ("ALTER FUNCTION autopilot.version() RESET search_path", "routines"),
    "new function": (
        "CREATE FUNCTION autopilot.extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$",
        "routines",
    ),
    "grant": ("GRANT SELECT ON autopilot.jobs TO PUBLIC", "relations"),
    "execute grant": ("GRANT EXECUTE ON FUNCTION autopilot.version() TO PUBLIC", "routines"),
    "schema grant": ("GRANT USAGE ON SCHEMA autopilot TO PUBLIC", "schema"),
    "view": (
        "CREATE OR REPLACE VIEW autopilot.job_status AS SELECT * FROM autopilot.job_status WHERE name <> 'x'",
        "views",
    ),
    "type": ("ALTER TYPE autopilot.job_step ADD ATTRIBUTE extra int", "columns"),
    "sequence": ("ALTER SEQUENCE autopilot.jobs_id_seq INCREMENT BY 2", "sequences"),
    "catalog row": (
        "UPDATE autopilot.job_catalog SET schedule = '1 2 3 4 5' WHERE name = 'pagerank'",
        "rows",
    ),
    "setting row": (
        "UPDATE autopilot.settings SET default_value = '1 day' WHERE name = 'job_runs.retention'",
        "rows",
    ),
    "trigger": (
        "CREATE FUNCTION autopilot._t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$; "
        "CREATE TRIGGER agents_t BEFORE UPDATE ON autopilot.agents "
        "FOR EACH ROW EXECUTE FUNCTION autopilot._t()",
        "triggers",
    ),
    "policy": ("CREATE POLICY p ON autopilot.agents USING (true)", "policies"),
    "row security": ("ALTER TABLE autopilot.agents ENABLE ROW LEVEL SECURITY", "relations"),
}


@pytest.mark.parametrize("mode", MODES)
def test_snapshot_detects_changes(new_database, mode):
    database = fresh(new_database, mode)
    with database.connect(autocommit=False) as conn:
        base = schema_snapshot(conn)
        conn.rollback()
        missed = []
        for name, (statement, section) in MUTATIONS.items():
            with conn.transaction(force_rollback=True):
                conn.execute(statement)
                diff = snapshot_diff(base, schema_snapshot(conn))
            if not any(d.startswith(f"{section}:") for d in diff):
                missed.append(f"{name}: expected a difference in {section}, got {diff}")
        conn.rollback()
        # everything rolled back: the snapshot is stable
        assert snapshot_diff(base, schema_snapshot(conn)) == []
    assert not missed, "\n".join(missed)


def test_extension_snapshot_detects_membership_changes(new_database):
    database = fresh(new_database, "extension")
    with database.connect(autocommit=False) as conn:
        base = extension_snapshot(conn)
        conn.rollback()
        with conn.transaction(force_rollback=True):
            conn.execute(
                "CREATE TABLE autopilot.forgotten (id int)"
            )  # an upgrade that forgot ALTER EXTENSION
            assert snapshot_diff(base, extension_snapshot(conn)) == [
                "strays: objects differs:\n  a: []\n  b: ['relation forgotten']"
            ]
        with conn.transaction(force_rollback=True):
            conn.execute("CREATE TABLE autopilot.unmarked (id int)")
            conn.execute("ALTER EXTENSION autopilot ADD TABLE autopilot.unmarked")  # but no config dump mark
            diff = snapshot_diff(base, extension_snapshot(conn))
            assert [d.split(" differs")[0] for d in diff] == ["members: objects"]
        with conn.transaction(force_rollback=True):
            # as pg_extension_config_dump() would (it may only be called by an extension script)
            conn.execute(
                "UPDATE pg_extension SET extconfig = extconfig || 'autopilot.job_catalog'::regclass::oid, "
                "extcondition = extcondition || ''::text WHERE extname = 'autopilot'"
            )
            assert "config_tables: job_catalog only in b" in snapshot_diff(base, extension_snapshot(conn))


# -- (c) upgrades from every earlier release --------------------------------------------------------


def data_digests(database, columns: dict[str, list[str]] | None = None) -> dict[str, tuple[int, str]]:
    """Per table, its rows; with ``columns``, only those columns (the ones that existed before an upgrade,
    which may add columns with defaults to existing rows)."""
    with database.connect() as conn:
        return {
            t: table_digest(conn, t, columns[t] if columns else None)
            for t in user_tables(conn)
            if t not in DEFINITION_TABLES and (columns is None or t in columns)
        }


def fill_existing(database) -> None:
    """The dump/restore fixtures, for the tables this (possibly older) version has."""
    with database.connect(autocommit=False) as conn, conn.transaction():
        present = set(user_tables(conn))
        for table, statements in FIXTURES.items():
            if table in present:
                for statement in statements:
                    conn.execute(statement, {"tag": "pre-upgrade"})


def upgrade_and_compare(new_database, autopilot, start: str, mode: str) -> None:
    # both databases first: new_database may wait for the top of the hour to pass, which must not
    # happen once the upgrade has registered the old database's jobs with pg_cron
    new = fresh(new_database, mode)
    old = new_database(f"up{mode[:3]}")
    with old.connect(autocommit=False) as conn:
        result = installer.install(conn, mode=mode, version=start)
    assert (result.version, result.mode) == (start, mode)
    fill_existing(old)
    with old.connect() as conn:
        columns_before = table_columns(conn)
    before = data_digests(old, columns_before)
    assert all(count > 0 for count, _ in before.values()), before

    upgraded = autopilot("upgrade", "--dsn", old.dsn)
    assert upgraded.exit_code == 0, upgraded.output
    if start == CURRENT:
        assert f"autopilot {CURRENT} is already installed" in upgraded.stdout
    else:
        assert f"upgraded autopilot {start} → {CURRENT} ({mode} mode)" in upgraded.stdout
    with old.connect() as conn:
        assert installer.installed(conn) == installer.Installed(mode, CURRENT)

    assert snapshot_diff(snapshot_of(old), snapshot_of(new), ("upgraded", "fresh")) == []
    if mode == "extension":
        with old.connect() as a, new.connect() as b:
            assert snapshot_diff(extension_snapshot(a), extension_snapshot(b), ("upgraded", "fresh")) == []

    # the data survived: every table that existed before holds the same rows
    after = data_digests(old, columns_before)
    for table, digest in before.items():
        assert after.get(table) == digest, f"{table}: rows changed by the upgrade"
    # and the upgraded database works: jobs run, identities go on
    with old.connect() as conn:
        assert (
            conn.execute("SELECT (autopilot.run_job('table-statistics')).status").fetchone()[0] == "succeeded"
        )
        assert identities_behind(conn) == []


@pytest.mark.parametrize(("start", "mode"), UPGRADE_PARAMS)
def test_upgrade_from_earlier_release(new_database, autopilot, start, mode):
    upgrade_and_compare(new_database, autopilot, start, mode)


@pytest.mark.parametrize("mode", MODES)
def test_upgrade_machinery_on_the_current_version(new_database, autopilot, mode):
    """The same steps with nothing to upgrade: proves the comparison and the data checks work."""
    upgrade_and_compare(new_database, autopilot, CURRENT, mode)


def test_every_earlier_version_has_a_path(admin_dsn):
    """Each packaged version reaches the current one through update scripts, and every packaged version
    is installed on the server (extension mode needs the files there)."""
    for version in EARLIER:
        assert bundle().upgrade_path(version, CURRENT), version
    assert CURRENT in bundle().scripts
    with psycopg.connect(admin_dsn) as conn:
        on_server = installer.server_versions(conn)
    assert CURRENT in on_server, "run `make install`: the extension files are not on the server"
    missing = sorted(set(bundle().versions) - set(on_server), key=parse_version)
    assert not missing, f"packaged versions whose extension files are not installed on the server: {missing}"


def test_server_scripts_are_the_packaged_ones(admin_dsn):
    """Extension mode runs the server's files, schema mode the package's: they must be the same SQL,
    or the two modes (and these tests) silently disagree. After a change to sql/: `make build &&
    make install`, then `pip install .`."""
    with psycopg.connect(admin_dsn) as conn:
        sharedir = conn.execute("SELECT setting FROM pg_config WHERE name = 'SHAREDIR'").fetchone()[0]
        stale = []
        for name, text in [
            *((f"autopilot--{v}.sql", t) for v, t in bundle().scripts.items()),
            *((f"autopilot--{a}--{b}.sql", t) for (a, b), t in bundle().updates.items()),
        ]:
            on_server = conn.execute(
                "SELECT pg_read_file(%s, 0, 100000000, true)", [f"{sharedir}/extension/{name}"]
            ).fetchone()[0]
            if on_server != text:
                stale.append(name)
    assert not stale, f"the server's copy differs from the packaged one (or is missing): {stale}"


# -- (d) the README's invariants hold on the data an upgrade accepts ---------------------------------


def _hold_task_without_its_skills(conn: psycopg.Connection, start: str) -> None:
    """Agent py-only (skills {py}) holds task 'build' (needs {go}) and task 'port' (needs {go, py, rust}),
    plus an innocent held task and an innocent agent. 0.1.0 enforced nothing, so the rows go straight
    in; 0.2.0 and later refuse them (autopilot._track_agent_load, _guard_agent), so the agent gets the
    tasks while it has the skills and loses them behind the triggers' back (session_replication_role
    replica, as a careless restore or a hand repair would)."""
    with conn.transaction():
        py_only = conn.execute(
            "INSERT INTO autopilot.agents (name, skills, capacity) VALUES ('py-only', %s, 5) RETURNING id",
            [["py"] if start == "0.1.0" else ["go", "py", "rust"]],
        ).fetchone()[0]
        conn.execute("INSERT INTO autopilot.agents (name, skills) VALUES ('polyglot', '{go,py}')")
        conn.execute(
            "INSERT INTO autopilot.tasks (title, required_skills, status, agent_id) VALUES "
            "('build', '{go}', 'running', %(a)s), ('lint', '{py}', 'assigned', %(a)s), "
            "('port', '{rust,go,py}', 'assigned', %(a)s), ('later', '{cobol}', 'pending', NULL)",
            {"a": py_only},
        )
        if start != "0.1.0":
            conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute("UPDATE autopilot.agents SET skills = '{py}' WHERE id = %s", [py_only])


@pytest.mark.parametrize(
    ("start", "mode"), [pytest.param(v, m, id=f"{v}-{m}") for v in ("0.1.0", EARLIER[-1]) for m in MODES]
)
def test_upgrade_refuses_a_task_held_by_an_agent_without_its_skills(new_database, autopilot, start, mode):
    database = new_database(f"skills{mode[:3]}")
    with database.connect(autocommit=False) as conn:
        installer.install(conn, mode=mode, version=start)
    with database.connect() as conn:
        _hold_task_without_its_skills(conn, start)
    before = data_digests(database)

    refused = autopilot("upgrade", "--dsn", database.dsn)
    assert refused.exit_code == 1, refused.output
    error = flat(refused.stderr)
    assert "held by an agent with all its required skills, and 2 tasks are not" in error, error
    task = "SELECT id FROM autopilot.tasks WHERE title = %s"
    build, port = database.scalar(task, ["build"]), database.scalar(task, ["port"])
    agent = database.scalar("SELECT id FROM autopilot.agents WHERE name = 'py-only'")
    assert f"task {build} (running) held by agent py-only (id {agent}) lacks go;" in error, error
    assert f"task {port} (assigned) held by agent py-only (id {agent}) lacks go, rust" in error, error
    assert "lint" not in error and "polyglot" not in error
    assert "hint: Give those agents the missing skills" in error, error
    # nothing changed: the version, and every row
    with database.connect() as conn:
        assert installer.installed(conn) == installer.Installed(mode, start)
    assert data_digests(database) == before

    # doing what the hint says lets the upgrade through
    with database.connect() as conn:
        conn.execute("UPDATE autopilot.tasks SET status = 'pending', agent_id = NULL WHERE id = %s", [port])
        conn.execute("UPDATE autopilot.agents SET skills = '{py,go}' WHERE id = %s", [agent])
    upgraded = autopilot("upgrade", "--dsn", database.dsn)
    assert upgraded.exit_code == 0, upgraded.output
    with database.connect() as conn:
        assert installer.installed(conn) == installer.Installed(mode, CURRENT)
