"""Pattern learning and agent knowledge with real sessions: every analysis row counted exactly once.

What one pgTAP transaction cannot show: rows whose transactions commit out of id order, two runs at
once, a run killed mid-way, writers and runs racing, a restore into another cluster, and agents
recomputed only after the transaction that changed their tasks has committed.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time

import psycopg
from helpers import PG_BINDIR, wait_for

INSERT_ROW = (
    "INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome, score) "
    "VALUES (%s, 'pytest', 'naming', %s, %s, %s) RETURNING id"
)


def learn(conn: psycopg.Connection) -> dict:
    return conn.execute("SELECT autopilot.learn_patterns_from_analysis()").fetchone()[0]


def occurrences(db, key: str) -> int:
    return db.scalar(
        "SELECT coalesce(sum(occurrences), 0) FROM autopilot.learned_patterns WHERE pattern_key = %s", [key]
    )


def assert_counted_once(db) -> None:
    """Every analysis row is in learned_patterns exactly once, and the watermark agrees."""
    with db.connect() as conn:
        rows, by_pattern = conn.execute(
            "SELECT count(*), count(DISTINCT (pattern_type, pattern_key)) FROM autopilot.analysis_results"
        ).fetchone()
        learned, patterns, total = conn.execute(
            "SELECT coalesce(sum(occurrences), 0), count(*), "
            "(SELECT rows_total FROM autopilot.learning_watermarks WHERE name = 'pattern-learning') "
            "FROM autopilot.learned_patterns"
        ).fetchone()
        mismatched = conn.execute(
            "SELECT r.pattern_key, r.n, p.occurrences FROM ("
            "  SELECT pattern_type, pattern_key, count(*) AS n FROM autopilot.analysis_results GROUP BY 1, 2"
            ") AS r FULL JOIN autopilot.learned_patterns AS p USING (pattern_type, pattern_key) "
            "WHERE r.n IS DISTINCT FROM p.occurrences"
        ).fetchall()
    assert mismatched == []
    assert (learned, patterns, total) == (rows, by_pattern, rows)


def blocked_pid(db, query_like: str) -> int | None:
    with db.connect() as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE %s",
            [query_like],
        ).fetchone()
    return row[0] if row else None


# -- commit order ---------------------------------------------------------------------------------


def test_rows_committed_out_of_id_order(installed_db):
    """A inserts first (lower id) but commits after B; a run between the two commits loses nothing."""
    db = installed_db
    with db.connect() as c:
        c.execute(INSERT_ROW, ["app", "before", "success", 0.5])  # committed before A began
    a = db.connect(autocommit=False)
    try:
        (a_id,) = a.execute(INSERT_ROW, ["app", "from-a", "success", 1.0]).fetchone()
        a_xid = a.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        with db.connect() as b:
            (b_id,) = b.execute(INSERT_ROW, ["lib", "from-b", "failure", 0.0]).fetchone()
        assert a_id < b_id

        with db.connect() as runner:
            first = learn(runner)
        # the open transaction A holds the horizon back: B's row (a later transaction) waits with it
        assert int(first["horizon"]) <= a_xid
        assert (occurrences(db, "before"), occurrences(db, "from-a"), occurrences(db, "from-b")) == (1, 0, 0)
        assert first["rows_affected"] == 1

        a.commit()
    finally:
        a.close()

    with db.connect() as runner:
        second = learn(runner)
        third = learn(runner)
    assert second["rows_affected"] == 2
    assert third["rows_affected"] == 0
    assert (occurrences(db, "before"), occurrences(db, "from-a"), occurrences(db, "from-b")) == (1, 1, 1)
    assert_counted_once(db)


def test_rolled_back_rows_are_never_counted(installed_db):
    db = installed_db
    with db.connect(autocommit=False) as conn:
        conn.execute(INSERT_ROW, ["app", "ghost", "success", None])
        conn.rollback()
    with db.connect() as runner:
        assert learn(runner)["rows_affected"] == 0
    assert occurrences(db, "ghost") == 0


# -- two runs at once -----------------------------------------------------------------------------


def test_two_concurrent_runs(installed_db):
    """The second run waits for the first's watermark lock, then folds only what the first left."""
    db = installed_db
    with db.connect() as c:
        c.execute(
            "INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome) "
            "SELECT 'app', 'pytest', 'naming', 'k' || (g % 50), 'success' FROM generate_series(1, 500) AS g"
        )
    first = db.connect(autocommit=False)
    results: dict[str, object] = {}
    try:
        assert learn(first)["rows_affected"] == 500  # not committed yet

        def second_run() -> None:
            try:
                with db.connect() as conn:
                    results["second"] = learn(conn)
            except BaseException as exc:  # reported below
                results["second"] = exc

        thread = threading.Thread(target=second_run, daemon=True)
        thread.start()
        wait_for(lambda: blocked_pid(db, "%learn_patterns_from_analysis%"), "the second run to wait")
        with db.connect() as c:  # written while both runs are in flight
            c.execute(
                "INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, "
                "outcome) SELECT 'lib', 'pytest', 'naming', 'k' || (g % 50), 'failure' "
                "FROM generate_series(1, 70) AS g"
            )
        first.commit()
        thread.join(timeout=30)
    finally:
        first.close()
    assert not thread.is_alive()
    assert isinstance(results["second"], dict), results
    assert results["second"]["rows_affected"] == 70
    assert_counted_once(db)


def test_racing_writers_and_runs(installed_db):
    """Writers committing in random order, some slowly, while several sessions run pattern learning
    in a loop: after a last run, every row is counted exactly once."""
    db = installed_db
    stop = threading.Event()
    errors: list[BaseException] = []
    written = [0]
    lock = threading.Lock()

    def writer(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            with db.connect(autocommit=False) as conn:
                while not stop.is_set():
                    n = rnd.randint(1, 5)
                    for _ in range(n):
                        conn.execute(
                            INSERT_ROW,
                            [
                                rnd.choice(["app", "lib", "web"]),
                                f"k{rnd.randint(1, 30)}",
                                rnd.choice(["success", "failure", "neutral"]),
                                rnd.choice([None, 0.25, 0.5, 1.0]),
                            ],
                        )
                    time.sleep(rnd.choice([0, 0, 0.01, 0.05]))  # commit late, out of id order
                    if rnd.random() < 0.1:
                        conn.rollback()
                    else:
                        conn.commit()
                        with lock:
                            written[0] += n
        except BaseException as exc:
            errors.append(exc)

    def learner() -> None:
        try:
            with db.connect() as conn:
                while not stop.is_set():
                    learn(conn)
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(4)]
    threads += [threading.Thread(target=learner, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    with db.connect() as conn:
        learn(conn)
        runs = conn.execute("SELECT runs FROM autopilot.learning_watermarks WHERE name = 'pattern-learning'")
        assert runs.fetchone()[0] > 10
    assert db.scalar("SELECT count(*) FROM autopilot.analysis_results") == written[0] > 0
    assert_counted_once(db)


# -- crashes --------------------------------------------------------------------------------------


def test_run_killed_mid_way(installed_db, admin_dsn):
    """A run terminated while blocked inside its upsert leaves the watermark and the patterns as they
    were; the next run counts every row once."""
    db = installed_db
    with db.connect() as c:
        c.execute(INSERT_ROW, ["app", "locked", "success", 0.5])
        learn(c)
        c.execute(
            "INSERT INTO autopilot.analysis_results (codebase, analyzer, pattern_type, pattern_key, outcome) "
            "SELECT 'app', 'pytest', 'naming', k, 'failure' FROM unnest(ARRAY['a', 'locked', 'z']) AS k"
        )
        before = c.execute(
            "SELECT horizon::text, rows_total, runs FROM autopilot.learning_watermarks "
            "WHERE name = 'pattern-learning'"
        ).fetchone()

    locker = db.connect(autocommit=False)
    outcome: dict[str, object] = {}
    try:
        locker.execute("SELECT 1 FROM autopilot.learned_patterns WHERE pattern_key = 'locked' FOR UPDATE")

        def run() -> None:
            try:
                with db.connect() as conn:
                    outcome["result"] = learn(conn)
            except psycopg.Error as exc:
                outcome["result"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        pid = wait_for(lambda: blocked_pid(db, "%learn_patterns_from_analysis%"), "the run to block mid-way")
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", [pid]).fetchone()[0]
        thread.join(timeout=15)
    finally:
        locker.rollback()
        locker.close()
    assert isinstance(outcome["result"], psycopg.OperationalError), outcome

    with db.connect() as c:
        after = c.execute(
            "SELECT horizon::text, rows_total, runs FROM autopilot.learning_watermarks "
            "WHERE name = 'pattern-learning'"
        ).fetchone()
        assert after == before, "the killed run left the watermark as it was"
        assert occurrences(db, "a") == 0 and occurrences(db, "locked") == 1
        assert learn(c)["rows_affected"] == 3
    assert_counted_once(db)


def test_run_failing_mid_way(installed_db):
    """A run whose transaction fails after the fold (an injected error) rolls back with its watermark."""
    db = installed_db
    with db.connect() as c:
        c.execute(INSERT_ROW, ["app", "boom", "success", None])
    with db.connect(autocommit=False) as conn:
        assert learn(conn)["rows_affected"] == 1
        try:
            conn.execute("SELECT 1 / 0")
        except psycopg.errors.DivisionByZero:
            conn.rollback()
    assert db.scalar("SELECT count(*) FROM autopilot.learning_watermarks") == 0
    assert occurrences(db, "boom") == 0
    with db.connect() as conn:
        assert learn(conn)["rows_affected"] == 1
    assert_counted_once(db)


def test_the_job_through_the_ledger(installed_db, autopilot):
    """`autopilot run pattern-learning`: the function job succeeds and the ledger says what it did."""
    db = installed_db
    with db.connect() as c:
        c.execute(INSERT_ROW, ["app", "ledger", "success", 0.5])
        c.execute(INSERT_ROW, ["lib", "ledger", "neutral", None])
    result = autopilot("run", "pattern-learning", "--dsn", db.dsn)
    assert result.exit_code == 0, result.output
    assert "pattern-learning: succeeded" in result.stdout
    with db.connect() as c:
        rows, message, details = c.execute(
            "SELECT rows_affected, message, details FROM autopilot.job_runs "
            "WHERE job_name = 'pattern-learning' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert (rows, message) == (2, "2 analysis rows folded into 1 learned pattern")
    assert details["patterns"] == 1 and details["rebased"] is False


# -- restore into another cluster -----------------------------------------------------------------


def test_restore_into_another_cluster(installed_db, nocron_db, tmp_path):
    """A dump restored into another cluster (other transaction ids, usually far younger): the first
    run there rebases, and every row -- folded before the dump, written before it but not folded,
    written after the restore -- is counted exactly once."""
    source = installed_db
    target = nocron_db
    with target.connect() as c:
        target_xid = int(c.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
    with source.connect() as c:
        # the hard case: the source's transaction ids run ahead of the target's, so rows written
        # after the restore get ids *below* the restored horizon
        c.execute(
            "DO $$ BEGIN WHILE pg_current_xact_id()::text::bigint < %s LOOP COMMIT; END LOOP; END $$"
            % (target_xid + 1000)
        )
        for i in range(30):
            c.execute(INSERT_ROW, ["app", f"r{i % 7}", "success", 0.5])
        learn(c)
        for i in range(20):
            c.execute(INSERT_ROW, ["lib", f"r{i % 9}", "failure", None])  # dumped, not folded yet
    dump = tmp_path / "autopilot.dump"
    done = subprocess.run(
        [str(PG_BINDIR / "pg_dump"), "-Fc", "-f", str(dump), "-d", source.dsn], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [str(PG_BINDIR / "pg_restore"), "--exit-on-error", "-d", target.dsn, str(dump)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr

    with target.connect() as c:
        for i in range(10):
            c.execute(INSERT_ROW, ["web", f"r{i % 4}", "success", 1.0])  # written here, before any run
        assert c.execute(
            "SELECT max(created_xid::text::bigint) < (SELECT horizon::text::bigint "
            "FROM autopilot.learning_watermarks WHERE name = 'pattern-learning') "
            "FROM autopilot.analysis_results WHERE codebase = 'web'"
        ).fetchone()[0], "the rows written here lie below the restored horizon"
        knowledge = c.execute("SELECT autopilot.update_agent_knowledge()").fetchone()[0]
        assert knowledge["message"].startswith("waiting for pattern-learning"), knowledge
        first = learn(c)
        assert first["rebased"] is True
        assert first["rows_affected"] == 30, first  # the 20 not folded there and the 10 written here
    assert_counted_once(target)

    with target.connect() as c:
        for i in range(5):
            c.execute(INSERT_ROW, ["web", f"r{i}", "neutral", None])
        second = learn(c)
        assert (second["rebased"], second["rows_affected"]) == (False, 5)
        knowledge = c.execute("SELECT autopilot.update_agent_knowledge()").fetchone()[0]
        assert knowledge["full"] is True
    assert_counted_once(target)


# -- agent knowledge ------------------------------------------------------------------------------


def test_agent_recomputed_only_after_its_task_change_commits(installed_db):
    db = installed_db
    with db.connect() as c:
        ada, bob = (
            r[0]
            for r in c.execute(
                "INSERT INTO autopilot.agents (name, skills) VALUES ('ada', '{sql}'), ('bob', '{sql}') "
                "RETURNING id"
            ).fetchall()
        )
        c.execute(
            "INSERT INTO autopilot.tasks (title, required_skills, status, agent_id, assigned_at) "
            "VALUES ('t-ada', '{sql}', 'running', %s, now()), ('t-bob', '{sql}', 'succeeded', %s, now())",
            [ada, bob],
        )
        first = c.execute("SELECT autopilot.update_agent_knowledge()").fetchone()[0]
        assert first["full"] is True and first["rows_affected"] == 2
        c.execute("UPDATE autopilot.agent_knowledge SET computed_at = '2000-01-01 00:00+00'")

    def computed() -> dict[int, tuple[bool, str]]:
        """agent -> (recomputed since the reset, succeeded tasks in its summary)"""
        with db.connect() as conn:
            rows = conn.execute(
                "SELECT agent_id, computed_at > '2000-01-01', summary -> 'tasks' ->> 'succeeded' "
                "FROM autopilot.agent_knowledge"
            ).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    writer = db.connect(autocommit=False)
    try:
        writer.execute(
            "UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now() WHERE agent_id = %s", [ada]
        )
        with db.connect() as c:
            run = c.execute("SELECT autopilot.update_agent_knowledge()").fetchone()[0]
        assert run["rows_affected"] == 0, "the change is not committed yet"
        writer.commit()
    finally:
        writer.close()

    with db.connect() as c:
        run = c.execute("SELECT autopilot.update_agent_knowledge()").fetchone()[0]
        again = c.execute("SELECT autopilot.update_agent_knowledge()").fetchone()[0]
    assert run["agents"] == [ada]
    assert again["rows_affected"] == 0
    state = computed()
    assert state[ada] == (True, "1")
    assert state[bob] == (False, "1"), "an agent whose inputs did not change is left alone"
    assert db.scalar("SELECT count(*) FROM autopilot.agent_knowledge_pending") == 0
