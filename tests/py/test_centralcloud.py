"""CentralCloud: instance databases push their learned patterns into a central database through
postgres_fdw (centralcloud-sync) and the central database merges them (centralcloud-merge), here with
every database in one cluster, run the way pg_cron or a DBA runs them (the CLI).

The central database's global patterns must always equal the sum of what the instances have learned:
after re-sends, after an outage, and when pattern-learning commits while a push is running.
"""

from __future__ import annotations

import psycopg
import pytest
from helpers import flat
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from pg_autopilot import installer

PATTERN_COLUMNS = "pattern_type, pattern_key, occurrences, successes, failures"


def analyse(db, rows: int, seed: int) -> None:
    """rows analysis results over 40 keys, outcomes and codebases varying with seed."""
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.analysis_results"
            " (codebase, analyzer, pattern_type, pattern_key, outcome, score)"
            " SELECT 'cb' || ((i + %(s)s) %% 3), 'pytest', 'style', 'rule-' || ((i * 7 + %(s)s) %% 40),"
            " (ARRAY['success', 'failure', 'neutral'])[1 + (i + %(s)s) %% 3], (i %% 10) / 10.0"
            " FROM generate_series(1, %(n)s) AS i",
            {"s": seed, "n": rows},
        )


def connect_to_central(instance, central, instance_id: str) -> None:
    """What the README tells a DBA to do in an instance database."""
    params = conninfo_to_dict(central.dsn)
    with instance.connect() as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
        conn.execute("DROP SERVER IF EXISTS autopilot_central CASCADE")
        conn.execute(
            sql.SQL(
                "CREATE SERVER autopilot_central FOREIGN DATA WRAPPER postgres_fdw"
                " OPTIONS (host {}, port {}, dbname {})"
            ).format(*(sql.Literal(params[k]) for k in ("host", "port", "dbname")))
        )
        conn.execute(
            sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER autopilot_central OPTIONS (user {})").format(
                sql.Literal(params["user"])
            )
        )
        conn.execute("SELECT autopilot.set_setting('centralcloud.instance_id', %s)", [instance_id])


def learned(db) -> dict[tuple[str, str], tuple[int, int, int]]:
    with db.connect() as conn:
        rows = conn.execute(f"SELECT {PATTERN_COLUMNS} FROM autopilot.learned_patterns").fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def global_patterns(central) -> dict[tuple[str, str], tuple[int, int, int]]:
    with central.connect() as conn:
        rows = conn.execute(f"SELECT {PATTERN_COLUMNS} FROM autopilot.global_patterns").fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def summed(*instances) -> dict[tuple[str, str], tuple[int, int, int]]:
    total: dict[tuple[str, str], tuple[int, int, int]] = {}
    for db in instances:
        for key, counts in learned(db).items():
            old = total.get(key, (0, 0, 0))
            total[key] = tuple(a + b for a, b in zip(old, counts, strict=True))
    return total


def run(autopilot, db, job: str):
    return autopilot("run", job, "--dsn", db.dsn)


def ok(result) -> str:
    """The CLI's output, its lines (wrapped to the terminal) joined again."""
    assert result.exit_code == 0, result.output
    return flat(result.output)


@pytest.fixture
def central(new_database):
    database = new_database("central")
    database.install("extension")
    return database


@pytest.fixture
def instances(new_database):
    """Two instance databases, one in each install mode."""
    made = []
    for mode in ("extension", "schema"):
        database = new_database(f"inst{mode[:3]}")
        database.install(mode)
        made.append(database)
    return made


def test_instances_feed_the_central_database(instances, central, autopilot):
    a, b = instances
    for i, db in enumerate(instances):
        connect_to_central(db, central, f"instance-{i}")
        analyse(db, 600, seed=i + 1)
        ok(run(autopilot, db, "pattern-learning"))
        assert "sent 40 changed patterns" in ok(run(autopilot, db, "centralcloud-sync"))
    assert "merged 80 pushed rows: 40 global patterns recomputed" in ok(
        run(autopilot, central, "centralcloud-merge")
    )
    assert global_patterns(central) == summed(a, b)
    with central.connect() as conn:
        spread = conn.execute("SELECT min(instances), max(instances) FROM autopilot.global_patterns")
        assert spread.fetchone() == (2, 2)

    # more learning in one instance: only its changed patterns travel, and the sums follow
    analyse(a, 10, seed=7)
    ok(run(autopilot, a, "pattern-learning"))
    # ten analysis rows, ten distinct keys: ten of the forty patterns changed
    assert "sent 10 changed patterns" in ok(run(autopilot, a, "centralcloud-sync"))
    ok(run(autopilot, central, "centralcloud-merge"))
    assert global_patterns(central) == summed(a, b)

    # nothing new: nothing sent, nothing merged
    assert "sent 0 changed patterns" in ok(run(autopilot, b, "centralcloud-sync"))
    assert "merged 0 pushed rows" in ok(run(autopilot, central, "centralcloud-merge"))


def test_resending_never_double_counts(instances, central, autopilot):
    a = instances[0]
    connect_to_central(a, central, "instance-a")
    analyse(a, 300, seed=3)
    ok(run(autopilot, a, "pattern-learning"))
    ok(run(autopilot, a, "centralcloud-sync"))
    ok(run(autopilot, central, "centralcloud-merge"))
    before = global_patterns(central)
    assert before == learned(a)

    # the instance forgets it ever pushed (a lost acknowledgement, a watermark reset): it sends
    # everything again, twice; the central totals do not move
    for _ in range(2):
        with a.connect() as conn:
            conn.execute("DELETE FROM autopilot.learning_watermarks WHERE name = 'centralcloud-sync'")
        assert "first push from this cluster: every pattern" in ok(run(autopilot, a, "centralcloud-sync"))
    assert "merged 80 pushed rows" in ok(run(autopilot, central, "centralcloud-merge"))
    assert global_patterns(central) == before


def test_unreachable_central_loses_nothing(instances, central, autopilot):
    a = instances[0]
    connect_to_central(a, central, "instance-a")
    analyse(a, 300, seed=5)
    ok(run(autopilot, a, "pattern-learning"))
    ok(run(autopilot, a, "centralcloud-sync"))

    # the central database goes away; the instance keeps learning and its pushes fail, clearly
    with a.connect() as conn:
        conn.execute("ALTER SERVER autopilot_central OPTIONS (SET port '1')")
    analyse(a, 100, seed=11)
    ok(run(autopilot, a, "pattern-learning"))
    for _ in range(2):
        result = run(autopilot, a, "centralcloud-sync")
        assert result.exit_code != 0
        assert "cannot reach the central database through foreign server autopilot_central" in flat(
            result.output
        )
    with a.connect() as conn:
        runs = conn.execute(
            "SELECT status, error_sqlstate, message FROM autopilot.job_runs"
            " WHERE job_name = 'centralcloud-sync' ORDER BY id"
        ).fetchall()
    assert [r[0] for r in runs] == ["succeeded", "failed", "failed"]
    assert runs[1][1] == "08001"
    assert "(nothing sent; the next run sends it)" in runs[1][2] and "Connection refused" in runs[1][2]

    # back: one run catches up, and the central totals are right
    port = conninfo_to_dict(central.dsn)["port"]
    with a.connect() as conn:
        conn.execute(f"ALTER SERVER autopilot_central OPTIONS (SET port '{port}')")
    ok(run(autopilot, a, "centralcloud-sync"))
    ok(run(autopilot, central, "centralcloud-merge"))
    assert global_patterns(central) == learned(a)


def test_learning_committed_during_a_push_is_sent_later(instances, central, autopilot):
    """A pattern-learning transaction still open when a push starts commits afterwards: the push
    cannot see its changes, and the next push sends them."""
    a = instances[0]
    connect_to_central(a, central, "instance-a")
    analyse(a, 200, seed=2)
    ok(run(autopilot, a, "pattern-learning"))
    ok(run(autopilot, a, "centralcloud-sync"))

    analyse(a, 200, seed=9)
    with a.connect(autocommit=False) as learner:
        learner.execute("SELECT autopilot.learn_patterns_from_analysis()")  # open, not committed
        assert "sent 0 changed patterns" in ok(run(autopilot, a, "centralcloud-sync"))
        learner.commit()
    output = ok(run(autopilot, a, "centralcloud-sync"))
    assert "sent 0 changed patterns" not in output
    ok(run(autopilot, central, "centralcloud-merge"))
    assert global_patterns(central) == learned(a)


def test_central_database_of_the_wrong_version(instances, new_database, autopilot):
    a = instances[0]
    old = new_database("old")
    with psycopg.connect(old.dsn) as conn:
        installer.install(conn, mode="extension", version="0.1.0")
    connect_to_central(a, old, "instance-a")
    analyse(a, 50, seed=1)
    ok(run(autopilot, a, "pattern-learning"))
    result = run(autopilot, a, "centralcloud-sync")
    assert result.exit_code != 0
    assert "has no autopilot 0.2.0 or later to receive patterns (nothing sent)" in flat(result.output)

    # a central database speaking another centralcloud protocol
    with old.connect() as conn:
        conn.execute(
            "CREATE VIEW autopilot.centralcloud_info AS"
            " SELECT '9.0.0'::text AS extension_version, 2 AS protocol"
        )
    result = run(autopilot, a, "centralcloud-sync")
    assert result.exit_code != 0
    assert "the central database runs autopilot 9.0.0 (centralcloud protocol 2)" in flat(result.output)
    assert (
        a.scalar("SELECT count(*) FROM autopilot.learning_watermarks WHERE name = 'centralcloud-sync'") == 0
    )


def test_instance_without_an_id_is_refused(instances, central, autopilot):
    a = instances[0]
    connect_to_central(a, central, "instance-a")
    with a.connect() as conn:
        conn.execute("SELECT autopilot.reset_setting('centralcloud.instance_id')")
    result = run(autopilot, a, "centralcloud-sync")
    assert result.exit_code != 0
    assert "centralcloud.instance_id is not set" in flat(result.output)
