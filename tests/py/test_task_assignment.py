"""task-assignment (autopilot.assign_pending_tasks) where one session is not enough: the result is the
sequential greedy on random inputs, concurrent runs (and the application writing meanwhile) never
break the invariants, notifications reach a listener at commit, and a run never waits on the
application's locks. The single-session behaviour is in tests/sql/assign_pending_tasks.sql."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import errors

SKILLS = ["elixir", "sql", "python", "rust", "review"]
CHANNEL = "autopilot_task_assigned"


# -- the world ----------------------------------------------------------------------------------


def make_world(conn: psycopg.Connection, rnd: random.Random, agents: int, tasks: int) -> None:
    """Agents with random skills, capacities (0 included), states and heartbeats; some tasks held
    already (some by silent agents); pending tasks with random skills (duplicates and an unknown
    skill included), priorities and ages."""
    conn.execute("TRUNCATE autopilot.tasks, autopilot.agents RESTART IDENTITY CASCADE")
    for i in range(agents):
        conn.execute(
            "INSERT INTO autopilot.agents (name, skills, capacity, status, last_seen_at) "
            "VALUES (%s, %s, %s, %s, now() - %s * interval '1 minute')",
            [
                f"agent-{i}",
                sorted(rnd.sample(SKILLS, rnd.randint(0, 4))),
                rnd.choice([0, 1, 2, 3, 5, 8, 50]),
                rnd.choice(["active"] * 6 + ["paused", "retired"]),
                rnd.choice([0, 1, 5, 9, 30, None]),
            ],
        )
    held = conn.execute(
        "SELECT id, skills FROM autopilot.agents WHERE capacity > 0 ORDER BY random() LIMIT %s",
        [max(1, agents // 3)],
    ).fetchall()
    for agent_id, skills in held:
        conn.execute(
            "INSERT INTO autopilot.tasks (title, required_skills, status, agent_id, created_at) "
            "VALUES ('held', %s, %s, %s, now() - interval '1 day')",
            [skills[: rnd.randint(0, len(skills))], rnd.choice(["assigned", "running"]), agent_id],
        )
    for i in range(tasks):
        required = rnd.sample([*SKILLS, "sql", "cobol"], rnd.choice([0, 0, 1, 1, 2, 3]))
        conn.execute(
            "INSERT INTO autopilot.tasks (title, required_skills, priority, created_at) "
            "VALUES (%s, %s, %s, now() - %s * interval '1 second')",
            [f"task-{i}", required, rnd.randint(0, 3), rnd.randint(0, 20)],
        )


def expected_assignment(conn: psycopg.Connection, timeout: str = "10 minutes") -> dict[int, int]:
    """The specification, computed in Python from the state before a run: assigned tasks of silent
    agents go back to pending; then, highest priority first, then oldest, then lowest id, each
    pending task goes to the capable agent with the lowest load ratio, then the lowest id."""
    agents = conn.execute(
        "SELECT id, skills, capacity, active_tasks, status, "
        "       coalesce(last_seen_at >= now() - %s::interval, false) "
        "FROM autopilot.agents ORDER BY id",
        [timeout],
    ).fetchall()
    silent = [a[0] for a in agents if not a[5]]
    load = {a[0]: a[3] for a in agents}
    for (agent_id,) in conn.execute(
        "SELECT agent_id FROM autopilot.tasks WHERE status = 'assigned' AND agent_id = ANY(%s)", [silent]
    ):
        load[agent_id] -= 1
    eligible = [(a[0], set(a[1]), a[2]) for a in agents if a[4] == "active" and a[5] and a[2] > 0]
    pending = conn.execute(
        "SELECT id, required_skills FROM autopilot.tasks "
        "WHERE status = 'pending' OR (status = 'assigned' AND agent_id = ANY(%s)) "
        "ORDER BY priority DESC, created_at, id",
        [silent],
    ).fetchall()
    plan: dict[int, int] = {}
    for task_id, required in pending:
        best = None
        for agent_id, skills, capacity in eligible:
            if set(required) <= skills and load[agent_id] < capacity:
                key = (load[agent_id] / capacity, agent_id)
                if best is None or key < best:
                    best = key
        if best is not None:
            plan[task_id] = best[1]
            load[best[1]] += 1
    return plan


def invariant_problems(conn: psycopg.Connection) -> list[str]:
    problems = []
    for row in conn.execute(
        "SELECT a.id, a.active_tasks, a.capacity, "
        "       (SELECT count(*) FROM autopilot.tasks AS t "
        "        WHERE t.agent_id = a.id AND t.status IN ('assigned', 'running')) "
        "FROM autopilot.agents AS a"
    ):
        agent_id, active, capacity, held = row
        if active != held:
            problems.append(f"agent {agent_id}: active_tasks {active}, but it holds {held} tasks")
        if held > capacity:
            problems.append(f"agent {agent_id}: holds {held} tasks, capacity {capacity}")
    for task_id, agent_id in conn.execute(
        "SELECT t.id, t.agent_id FROM autopilot.tasks AS t JOIN autopilot.agents AS a ON t.agent_id = a.id "
        "WHERE t.status IN ('assigned', 'running') AND NOT t.required_skills <@ a.skills"
    ):
        problems.append(f"task {task_id} is held by agent {agent_id}, who lacks a skill")
    for (task_id,) in conn.execute(
        "SELECT id FROM autopilot.tasks WHERE status IN ('assigned', 'running') AND agent_id IS NULL"
    ):
        problems.append(f"task {task_id} is held by nobody")
    return problems


def assigned_now(conn: psycopg.Connection) -> dict[int, int]:
    return dict(conn.execute("SELECT id, agent_id FROM autopilot.tasks WHERE status = 'assigned'").fetchall())


# -- the result is the specification's ------------------------------------------------------------


def test_the_assignment_is_the_sequential_greedy(installed_db):
    """On random inputs (skill sets competing for the same agents, capacities 0 to 50, silent,
    paused and retired agents, tasks held already), one run assigns exactly what the sequential
    rule of the specification assigns, task by task."""
    with installed_db.connect() as conn:
        for seed in range(40):
            rnd = random.Random(seed)
            make_world(conn, rnd, agents=rnd.randint(1, 15), tasks=rnd.randint(0, 80))
            before = set(assigned_now(conn))
            plan = expected_assignment(conn)
            summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
            after = assigned_now(conn)
            got = {t: a for t, a in after.items() if t not in before or t in plan}
            assert got == plan, f"seed {seed}: {summary}"
            assert summary["assigned"] == len(plan), seed
            assert invariant_problems(conn) == [], seed


# -- concurrency --------------------------------------------------------------------------------


@dataclass
class Outcome:
    summary: dict | None = None
    error: BaseException | None = None


def assign_in_thread(dsn: str, barrier: threading.Barrier, outcome: Outcome) -> None:
    try:
        with psycopg.connect(dsn) as conn:
            barrier.wait(timeout=30)
            outcome.summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
            time.sleep(0.05)  # hold the transaction open a little: the other run must wait for it
            conn.commit()
    except BaseException as exc:  # reported by the test
        outcome.error = exc


def test_two_concurrent_runs_never_double_assign(installed_db):
    """Two runs started together, repeatedly: each task is given once (the two summaries add up to
    what the single sequential rule gives), no agent ends over its capacity, skills match."""
    rnd = random.Random(7)
    with installed_db.connect() as conn:
        make_world(conn, rnd, agents=12, tasks=0)
        conn.execute("UPDATE autopilot.agents SET status = 'active', last_seen_at = now()")
        for round_ in range(6):
            for i in range(150):
                conn.execute(
                    "INSERT INTO autopilot.tasks (title, required_skills, priority) VALUES (%s, %s, %s)",
                    [f"r{round_}-{i}", rnd.sample(SKILLS, rnd.choice([0, 1, 2])), rnd.randint(0, 3)],
                )
            before = set(assigned_now(conn))
            plan = expected_assignment(conn)
            barrier = threading.Barrier(2)
            outcomes = [Outcome(), Outcome()]
            threads = [
                threading.Thread(target=assign_in_thread, args=(installed_db.dsn, barrier, o))
                for o in outcomes
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            for o in outcomes:
                assert o.error is None, repr(o.error)
            after = assigned_now(conn)
            new = {t: a for t, a in after.items() if t not in before}
            assert sum(o.summary["assigned"] for o in outcomes) == len(new), [o.summary for o in outcomes]
            assert sorted(o.summary["assigned"] for o in outcomes)[0] == 0, (
                "the second run found nothing left"
            )
            assert new == {t: a for t, a in plan.items() if t not in before}
            assert invariant_problems(conn) == [], round_
            # agents finish some work before the next round
            conn.execute(
                "UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now() "
                "WHERE id IN (SELECT id FROM autopilot.tasks WHERE status = 'assigned' "
                "ORDER BY random() LIMIT 40)"
            )


class Application(threading.Thread):
    """What agents and the application do while assignment runs: heartbeats, starting and finishing
    work, assigning tasks by hand (the schema may refuse), changing skills and capacities, adding
    tasks. Errors the schema raises on purpose are counted, anything else fails the test."""

    EXPECTED = (errors.CheckViolation, errors.DeadlockDetected)

    def __init__(self, dsn: str, seed: int) -> None:
        super().__init__(daemon=True)
        self.dsn = dsn
        self.rnd = random.Random(seed)
        self.stop = threading.Event()
        self.refused = 0
        self.statements = 0
        self.error: BaseException | None = None

    def step(self, conn: psycopg.Connection) -> None:
        r = self.rnd.random()
        if r < 0.2:
            conn.execute(
                "UPDATE autopilot.agents SET last_seen_at = now() WHERE id = "
                "(SELECT id FROM autopilot.agents ORDER BY random() LIMIT 1)"
            )
        elif r < 0.35:
            conn.execute(
                "UPDATE autopilot.tasks SET status = 'running', started_at = now() WHERE id = "
                "(SELECT id FROM autopilot.tasks WHERE status = 'assigned' ORDER BY random() LIMIT 1)"
            )
        elif r < 0.5:
            conn.execute(
                "UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now() WHERE id IN "
                "(SELECT id FROM autopilot.tasks WHERE status IN ('assigned', 'running') "
                "ORDER BY random() LIMIT 3)"
            )
        elif r < 0.65:
            # by hand, ignoring capacity and skills: the schema refuses what breaks them
            conn.execute(
                "UPDATE autopilot.tasks SET status = 'assigned', assigned_at = now(), agent_id = "
                "(SELECT id FROM autopilot.agents ORDER BY random() LIMIT 1) WHERE id = "
                "(SELECT id FROM autopilot.tasks WHERE status = 'pending' ORDER BY random() LIMIT 1)"
            )
        elif r < 0.75:
            conn.execute(
                "UPDATE autopilot.tasks SET required_skills = %s WHERE id = "
                "(SELECT id FROM autopilot.tasks WHERE status IN ('pending', 'assigned') "
                "ORDER BY random() LIMIT 1)",
                [self.rnd.sample(SKILLS, self.rnd.choice([0, 1, 2]))],
            )
        elif r < 0.85:
            conn.execute(
                "UPDATE autopilot.agents SET capacity = %s, skills = %s WHERE id = "
                "(SELECT id FROM autopilot.agents ORDER BY random() LIMIT 1)",
                [self.rnd.choice([0, 1, 3, 6]), sorted(self.rnd.sample(SKILLS, self.rnd.randint(1, 5)))],
            )
        else:
            conn.execute(
                "INSERT INTO autopilot.tasks (title, required_skills, priority) "
                "SELECT 'app-' || g, %s, %s FROM generate_series(1, 5) AS g",
                [self.rnd.sample(SKILLS, self.rnd.choice([0, 1])), self.rnd.randint(0, 3)],
            )

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self.stop.is_set():
                    self.statements += 1
                    try:
                        self.step(conn)
                    except self.EXPECTED:
                        self.refused += 1
        except BaseException as exc:
            self.error = exc


def assign_repeatedly(dsn: str, until: float, outcome: Outcome, counts: list[int]) -> None:
    try:
        with psycopg.connect(dsn) as conn:
            while time.monotonic() < until:
                try:
                    summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
                    conn.commit()
                    counts.append(summary["assigned"])
                except errors.DeadlockDetected:
                    conn.rollback()
    except BaseException as exc:
        outcome.error = exc


def test_concurrent_runs_while_the_application_writes(installed_db):
    """Two runs in a loop and the application changing tasks and agents at the same time, for a few
    seconds: afterwards every agent's count is exact and within capacity, and skills match."""
    with installed_db.connect() as conn:
        make_world(conn, random.Random(11), agents=10, tasks=300)
        conn.execute("UPDATE autopilot.agents SET status = 'active', last_seen_at = now()")
    apps = [Application(installed_db.dsn, seed) for seed in (1, 2)]
    for app in apps:
        app.start()
    until = time.monotonic() + 4
    outcomes = [Outcome(), Outcome()]
    counts: list[int] = []
    runners = [
        threading.Thread(target=assign_repeatedly, args=(installed_db.dsn, until, o, counts))
        for o in outcomes
    ]
    for t in runners:
        t.start()
    for t in runners:
        t.join(timeout=60)
    for app in apps:
        app.stop.set()
        app.join(timeout=30)
    for o in outcomes:
        assert o.error is None, repr(o.error)
    for app in apps:
        assert app.error is None, repr(app.error)
        assert app.statements > 20
    assert len(counts) > 4 and sum(counts) > 0
    with installed_db.connect() as conn:
        assert invariant_problems(conn) == []


# -- notifications ------------------------------------------------------------------------------


def test_a_listener_hears_each_assignment_at_commit(installed_db):
    with installed_db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.agents (name, capacity, last_seen_at) "
            "VALUES ('many', 300, now()), ('few', 2, now()), ('asleep', 5, NULL)"
        )
        conn.execute(
            "INSERT INTO autopilot.tasks (title) SELECT 'job ' || g FROM generate_series(1, 302) AS g"
        )

    with installed_db.connect() as listener, installed_db.connect(autocommit=False) as worker:
        listener.execute(f"LISTEN {CHANNEL}")
        summary = worker.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
        assert summary["assigned"] == 302
        assert list(listener.notifies(timeout=0.5)) == [], "nothing is announced before the commit"
        worker.commit()
        heard = list(listener.notifies(timeout=5, stop_after=summary["notifications"]))

        assert summary["notifications"] == 3  # 'many': 256 + 44 task ids; 'few': 2
        assert {n.channel for n in heard} == {CHANNEL}
        payloads = [json.loads(n.payload) for n in heard]
        assert all(set(p) == {"agent_id", "task_ids"} for p in payloads)
        assert max(len(p["task_ids"]) for p in payloads) == 256
        told: dict[int, set[int]] = {}
        for p in payloads:
            told.setdefault(p["agent_id"], set()).update(p["task_ids"])
        actual: dict[int, set[int]] = {}
        for task_id, agent_id in listener.execute(
            "SELECT id, agent_id FROM autopilot.tasks WHERE status = 'assigned'"
        ):
            actual.setdefault(agent_id, set()).add(task_id)
        assert told == actual, "every assigned task is announced once, to its agent"

        # a run that rolls back announces nothing
        worker.execute("INSERT INTO autopilot.tasks (title) VALUES ('rolled back')")
        worker.execute("UPDATE autopilot.tasks SET status = 'succeeded', finished_at = now() WHERE id = 1")
        assert worker.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]["assigned"] == 1
        worker.rollback()
        assert list(listener.notifies(timeout=0.5)) == []


# -- the application's locks --------------------------------------------------------------------


def test_a_run_never_waits_on_the_application(installed_db):
    """A task or an agent another transaction is changing is left for the next run instead of
    making the run wait (FOR NO KEY UPDATE SKIP LOCKED)."""
    with installed_db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.agents (name, capacity, last_seen_at) "
            "VALUES ('beating', 5, now()), ('free', 1, now())"
        )
        conn.execute(
            "INSERT INTO autopilot.tasks (title, created_at) "
            "VALUES ('locked', now() - interval '1 hour'), ('next', now())"
        )
    with installed_db.connect(autocommit=False) as app, installed_db.connect() as conn:
        # a heartbeat and an edit of a task, both uncommitted
        app.execute("UPDATE autopilot.agents SET last_seen_at = now() WHERE name = 'beating'")
        app.execute("SELECT * FROM autopilot.tasks WHERE title = 'locked' FOR UPDATE")
        conn.execute("SET statement_timeout = '5s'")
        started = time.monotonic()
        summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
        assert time.monotonic() - started < 2
        assert summary["skipped_busy_agents"] == 1
        assert summary["skipped_busy_tasks"] == 1
        assert summary["assigned"] == 0
        rows = dict(conn.execute("SELECT title, status FROM autopilot.tasks").fetchall())
        assert rows == {"locked": "pending", "next": "pending"}
        app.commit()
        summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
        assert summary["assigned"] == 2, summary


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_run_in_a_stricter_isolation_level_errs_rather_than_double_assigns(installed_db, isolation):
    """The runs are meant for READ COMMITTED (pg_cron's). Called in a snapshot that predates another
    run's commit, the second run fails with a serialization error; it never assigns twice."""
    with installed_db.connect() as conn:
        conn.execute("INSERT INTO autopilot.agents (name, capacity, last_seen_at) VALUES ('a', 10, now())")
        conn.execute("INSERT INTO autopilot.tasks (title) SELECT 't' || g FROM generate_series(1, 5) AS g")
    with installed_db.connect(autocommit=False) as late, installed_db.connect() as first:
        late.execute(f"SET TRANSACTION ISOLATION LEVEL {isolation}")
        late.execute("SELECT count(*) FROM autopilot.tasks")  # the snapshot is taken here
        assert first.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]["assigned"] == 5
        with pytest.raises(errors.SerializationFailure):
            late.execute("SELECT autopilot.assign_pending_tasks()")
        late.rollback()
        assert invariant_problems(first) == []
        assert first.execute("SELECT active_tasks FROM autopilot.agents").fetchone()[0] == 5
