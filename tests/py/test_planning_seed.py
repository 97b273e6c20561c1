"""planning-seed on a real server: a YAML plan file becomes tasks once per item key, dependencies hold
back task assignment, progress survives any re-run or extension of the plan, and an invalid plan is
refused whole with the item named."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from helpers import wait_for
from readme_roles import readme_roles

from pg_autopilot.planning import PlanError, seed
from pg_autopilot.workers import REGISTRY, JobContext

PLAN = """\
# the first plan
items:
  - key: schema-audit
    title: Audit the schema
    required_skills: [sql]
    priority: 5
    details: {ticket: OPS-1}
  - key: index-review
    title: Review the indexes
    required_skills: [sql]
    depends_on: [schema-audit]
  - key: release-notes
    title: Write the release notes
    required_skills: [docs]
"""

EXTENSION = """\
  - key: dashboards
    title: Build the dashboards
    required_skills: [sql]
    depends_on: [index-review, release-notes]
  - key: retro
    title: Hold the retrospective
"""


@pytest.fixture
def plan_db(new_database, tmp_path):
    """An installed database whose planning.plan_file is a file in tmp_path (not written yet)."""
    database = new_database("plan")
    database.install("extension")
    database.plan = tmp_path / "plan.yaml"
    with database.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('planning.plan_file', %s)", [str(database.plan)])
    return database


def run_worker(database) -> str:
    """The planning_seed worker as the runner calls it."""
    context = JobContext(
        job_id=0, attempt=1, queue="default", node="test", dsn=database.dsn, deadline=time.monotonic() + 600
    )
    return REGISTRY["planning_seed"].function({}, context)


def tasks(database) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(
            "SELECT plan_key, title, required_skills, priority, status, details"
            " FROM autopilot.tasks ORDER BY id"
        ).fetchall()


def dependencies(database) -> set[tuple[str, str]]:
    with database.connect() as conn:
        return set(
            conn.execute(
                "SELECT t.plan_key, d.plan_key FROM autopilot.task_dependencies AS x"
                " JOIN autopilot.tasks AS t ON t.id = x.task_id"
                " JOIN autopilot.tasks AS d ON d.id = x.depends_on_task_id"
            ).fetchall()
        )


def test_seeding_twice_adds_each_item_once(plan_db) -> None:
    plan_db.plan.write_text(PLAN)
    first = run_worker(plan_db)
    assert first == f"{plan_db.plan}: plan of 3 items: 3 tasks added (1 dependency), 0 already seeded"
    assert tasks(plan_db) == [
        ("schema-audit", "Audit the schema", ["sql"], 5, "pending", {"ticket": "OPS-1"}),
        ("index-review", "Review the indexes", ["sql"], 0, "pending", {}),
        ("release-notes", "Write the release notes", ["docs"], 0, "pending", {}),
    ]
    assert dependencies(plan_db) == {("index-review", "schema-audit")}

    again = run_worker(plan_db)
    assert again == f"{plan_db.plan}: plan of 3 items: 0 tasks added (0 dependencies), 3 already seeded"
    assert len(tasks(plan_db)) == 3


def test_assignment_waits_for_dependencies_and_an_extended_plan_keeps_progress(plan_db) -> None:
    plan_db.plan.write_text(PLAN)
    run_worker(plan_db)
    with plan_db.connect() as conn:
        conn.execute(
            "INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at)"
            " VALUES ('dba', '{sql,docs}', 5, now())"
        )
        summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
        assert (summary["assigned"], summary["blocked"]) == (2, 1)
        held = conn.execute(
            "SELECT plan_key FROM autopilot.tasks WHERE status = 'assigned' ORDER BY plan_key"
        ).fetchall()
        assert held == [("release-notes",), ("schema-audit",)]  # index-review waits for schema-audit
        # the agent works: schema-audit succeeds, release-notes is running
        conn.execute(
            "UPDATE autopilot.tasks SET status = 'succeeded', started_at = now(), finished_at = now()"
            " WHERE plan_key = 'schema-audit'"
        )
        conn.execute(
            "UPDATE autopilot.tasks SET status = 'running', started_at = now()"
            " WHERE plan_key = 'release-notes'"
        )

    # the plan grows, and an existing item's title is edited in the file
    plan_db.plan.write_text(PLAN.replace("Audit the schema", "Audit the whole schema") + EXTENSION)
    line = run_worker(plan_db)
    assert line == (
        f"{plan_db.plan}: plan of 5 items: 2 tasks added (2 dependencies), 3 already seeded;"
        ' 1 of them differs from the plan and is kept as seeded: "schema-audit"'
    )
    assert [(key, title, status) for key, title, _, _, status, _ in tasks(plan_db)] == [
        ("schema-audit", "Audit the schema", "succeeded"),
        ("index-review", "Review the indexes", "pending"),
        ("release-notes", "Write the release notes", "running"),
        ("dashboards", "Build the dashboards", "pending"),
        ("retro", "Hold the retrospective", "pending"),
    ]
    assert dependencies(plan_db) == {
        ("index-review", "schema-audit"),
        ("dashboards", "index-review"),
        ("dashboards", "release-notes"),
    }
    with plan_db.connect() as conn:
        summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
        assigned = conn.execute(
            "SELECT plan_key FROM autopilot.tasks WHERE status = 'assigned' ORDER BY plan_key"
        ).fetchall()
    # schema-audit succeeded: index-review may go; dashboards waits for index-review and release-notes
    assert assigned == [("index-review",), ("retro",)]
    assert summary["blocked"] == 1


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (
            PLAN + "  - key: loop-a\n    title: A\n    depends_on: [loop-b]\n"
            "  - key: loop-b\n    title: B\n    depends_on: [loop-a]\n",
            'plan items form a dependency cycle: "loop-a" -> "loop-b" -> "loop-a"'
            ' (Each arrow reads "depends on". Items on a cycle: loop-a, loop-b.)',
        ),
        (
            PLAN + "  - key: typo\n    title: T\n    requried_skills: [sql]\n",
            'plan item "typo": unknown field "requried_skills"',
        ),
        (
            PLAN + "  - key: index-review\n    title: Review again\n",
            'plan item "index-review" appears more than once (items #2, #4)',
        ),
        (
            PLAN + "  - key: orphan\n    title: O\n    depends_on: [nowhere]\n",
            'plan item "orphan" depends on "nowhere", which is neither in the plan nor seeded before',
        ),
        (
            PLAN + "  - key: twice\n    title: One\n    title: Two\n",
            "is not valid YAML: while reading a mapping: found 'title' twice (first at line 16)"
            " (line 17, column 5)",
        ),
        (PLAN + "  - key: [unclosed\n", "is not valid YAML: "),
        ("tasks:\n  - key: a\n    title: A\n", "the document must be a mapping with one field, items"),
    ],
    ids=[
        "cycle",
        "unknown-field",
        "duplicate-key",
        "unknown-dependency",
        "yaml-duplicate",
        "yaml-syntax",
        "shape",
    ],
)
def test_an_invalid_plan_is_refused_whole_with_the_item_named(plan_db, plan: str, message: str) -> None:
    plan_db.plan.write_text(PLAN)
    run_worker(plan_db)
    before = tasks(plan_db)
    plan_db.plan.write_text(plan)
    with pytest.raises(PlanError) as raised:
        run_worker(plan_db)
    assert str(raised.value).startswith(f"plan file {plan_db.plan}")
    assert message in str(raised.value)
    assert tasks(plan_db) == before, "nothing was written"


def test_a_missing_plan_file(plan_db) -> None:
    # the setting's default path, without a file there: nothing to seed, the job succeeds
    with plan_db.connect() as conn:
        conn.execute("SELECT autopilot.reset_setting('planning.plan_file')")
        default = conn.execute("SELECT autopilot.get_setting('planning.plan_file')").fetchone()[0]
    assert not Path(default).exists()
    assert run_worker(plan_db) == f"no plan file at {default}: nothing to seed (set planning.plan_file)"
    # a path a DBA set, without a file there: the job fails and says which
    with plan_db.connect() as conn:
        conn.execute("SELECT autopilot.set_setting('planning.plan_file', %s)", [str(plan_db.plan)])
    with pytest.raises(PlanError, match=f"plan file {plan_db.plan} does not exist"):
        run_worker(plan_db)
    # a directory is not a plan
    with psycopg.connect(plan_db.dsn) as conn, pytest.raises(PlanError, match="is not a regular file"):
        seed(conn, str(plan_db.plan.parent))


def test_the_runner_seeds_the_plan_at_startup_as_a_runner_role(plan_db, admin_dsn) -> None:
    """The catalog ships planning-seed enabled: a runner started with the README's grants seeds the
    plan by itself (a startup job) and its summary is the run's message."""
    plan_db.plan.write_text(PLAN)
    with plan_db.connect() as conn:
        enabled = conn.execute(
            "SELECT enabled, disabled_reason FROM autopilot.job_definitions WHERE name = 'planning-seed'"
        ).fetchone()
        conn.execute("SELECT autopilot.set_setting('embeddings.model', 'hashing')")  # code-ingest starts too
    assert enabled == (True, None)
    with readme_roles(admin_dsn, plan_db) as roles:
        process = subprocess.Popen(
            [sys.executable, "-m", "pg_autopilot.cli", "runner", "start", "--dsn", roles["runner"],
             "--poll-interval", "0.2"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            with plan_db.connect() as conn:
                run = wait_for(
                    lambda: conn.execute(
                        "SELECT status, message FROM autopilot.job_runs WHERE job_name = 'planning-seed'"
                    ).fetchone(),
                    "planning-seed's run",
                    timeout=60,
                )
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    assert run[0] == "succeeded", run[1]
    assert run == (
        "succeeded",
        f"{plan_db.plan}: plan of 3 items: 3 tasks added (1 dependency), 0 already seeded",
    )
    assert len(tasks(plan_db)) == 3
