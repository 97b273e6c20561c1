"""Benchmark: task-assignment (autopilot.assign_pending_tasks) over 100,000 pending tasks and 1,000 agents.

Goals (from the issue): 100,000 pending tasks over 1,000 agents assigned in <= 3x the time of ONE plain
UPDATE of the same 100,000 rows measured in the same run; a typical run (1,000 new tasks) <= 200 ms.

What is measured, and how:

* A throwaway *durable* cluster (fsync on, synchronous_commit on, full_page_writes on) is started
  with ``pg_autopilot.testing.Cluster`` (or ``--dsn`` names an existing server); the extension is
  created in a scratch database ``autopilot_bench_tasks``. pg_cron is not needed.
* The data, loaded server-side with ``INSERT ... SELECT generate_series``: 1,000 active agents seen
  just now, each with 3 to 5 of 8 skills and a capacity of 100 to 200 (about 150,000 free slots in
  all); 100,000 pending tasks requiring 0 to 2 of those skills (written in any order, so ``{a,b}``
  and ``{b,a}`` both occur), priorities 0-9, created over the last day, and one task in 1,000
  requiring a skill no agent has (unassignable). Then ``VACUUM ANALYZE`` and ``CHECKPOINT``.
* The reference: ONE plain UPDATE of the same 100,000 rows,
  ``UPDATE autopilot.tasks SET assigned_at = now() WHERE status = 'pending'``, timed from the
  statement to the end of its COMMIT, on the table as it is (its triggers included). The same
  UPDATE with the tables' triggers disabled is printed beside it, for information.
* The full run: ``SELECT autopilot.assign_pending_tasks()`` and its COMMIT, timed the same way, on a
  fresh load. Each of the two is measured ``--repeat`` times (a fresh load before each) and the
  median is compared; every run is printed.
* A listening connection (``LISTEN autopilot_task_assigned``) collects the notifications of the
  full run after its commit: one per agent (at most 256 task ids each), every assigned task once.
* The typical run: after a full run, 1,000 random assigned tasks finish and 1,000 new tasks arrive;
  ``assign_pending_tasks()`` is timed, ``--typical-runs`` times.
* Correctness after every run (a failure exits 1; a missed goal is printed as MISS, exit 0):
  every agent's active_tasks equals the tasks it holds and is within its capacity, every held task's
  skills are its agent's, the summary's counts match the table, the unassignable tasks are exactly
  the ones no agent can do, no waiting task was passed over for a later one by an agent that could
  have taken it, and each typical run gives exactly what the sequential rule of the specification
  gives (computed in Python from the state before the run).

Run:  PYTHONPATH=installer .venv/bin/python bench/task_assignment.py [--dsn DSN] [--tasks 100000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field

import psycopg
from _scratch import CorrectnessError, create_autopilot, scratch_database, verdict  # bench/_scratch.py
from rich.console import Console
from rich.table import Table

SCRATCH_DB = "autopilot_bench_tasks"
CHANNEL = "autopilot_task_assigned"
GOAL_RATIO = 3.0
GOAL_TYPICAL_MS = 200.0

console = Console(highlight=False, width=140)

SKILLS = "ARRAY['elixir', 'sql', 'python', 'rust', 'review', 'docs', 'infra', 'ml']"

LOAD_AGENTS_SQL = f"""
INSERT INTO autopilot.agents (name, skills, capacity, last_seen_at)
SELECT 'agent-' || g,
       ARRAY(SELECT s FROM unnest({SKILLS}) AS u (s) ORDER BY md5(g || s) LIMIT 3 + g %% 3),
       100 + (g * 37) %% 101,
       now()
FROM generate_series(1, %(agents)s) AS g
"""

# one task in 1,000 needs 'cobol', which no agent has; the others 0, 1 or 2 skills in a random order
LOAD_TASKS_SQL = f"""
INSERT INTO autopilot.tasks (title, required_skills, priority, created_at)
SELECT 'task ' || g,
       CASE WHEN g %% 1000 = 0 THEN ARRAY['cobol']
            ELSE ARRAY(SELECT s FROM unnest({SKILLS}) AS u (s) ORDER BY md5(g || s) LIMIT (g %% 7) / 3) END,
       (g::bigint * 7919) %% 10,
       now() - interval '1 day' + interval '1 millisecond' * ((g::bigint * 104729) %% 86400000)
FROM generate_series(1, %(tasks)s) AS g
"""

NEW_TASKS_SQL = f"""
INSERT INTO autopilot.tasks (title, required_skills, priority)
SELECT 'new ' || %(round)s::text || '-' || g,
       ARRAY(SELECT s FROM unnest({SKILLS}) AS u (s)
             ORDER BY md5(%(round)s::text || g || s) LIMIT (g %% 7) / 3),
       g %% 10
FROM generate_series(1, %(tasks)s) AS g
"""


# -- the data set -------------------------------------------------------------------------------


def load(conn: psycopg.Connection, agents: int, tasks: int) -> None:
    conn.execute("TRUNCATE autopilot.tasks, autopilot.agents RESTART IDENTITY CASCADE")
    conn.execute(LOAD_AGENTS_SQL, {"agents": agents})
    conn.execute(LOAD_TASKS_SQL, {"tasks": tasks})
    conn.execute("VACUUM (ANALYZE) autopilot.tasks, autopilot.agents")
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


# -- correctness --------------------------------------------------------------------------------


def verify(conn: psycopg.Connection, summary: dict, since: object) -> None:
    """The invariants, the summary's counts and the priority order, after a run that started at
    ``since`` (its assigned_at)."""
    problems = []
    (over, miscounted) = conn.execute(
        "SELECT count(*) FILTER (WHERE h.held > a.capacity), "
        "       count(*) FILTER (WHERE h.held <> a.active_tasks) "
        "FROM autopilot.agents AS a CROSS JOIN LATERAL ("
        "  SELECT count(*) AS held FROM autopilot.tasks AS t "
        "  WHERE t.agent_id = a.id AND t.status IN ('assigned', 'running')) AS h"
    ).fetchone()
    if over:
        problems.append(f"{over} agents hold more tasks than their capacity")
    if miscounted:
        problems.append(f"{miscounted} agents' active_tasks differ from the tasks they hold")
    (unskilled,) = conn.execute(
        "SELECT count(*) FROM autopilot.tasks AS t JOIN autopilot.agents AS a ON t.agent_id = a.id "
        "WHERE t.status IN ('assigned', 'running') AND NOT t.required_skills <@ a.skills"
    ).fetchone()
    if unskilled:
        problems.append(f"{unskilled} held tasks require a skill their agent lacks")
    (assigned, pending, unassignable) = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'assigned' AND assigned_at >= %s), "
        "       count(*) FILTER (WHERE status = 'pending'), "
        "       count(*) FILTER (WHERE status = 'pending' AND NOT EXISTS ("
        "           SELECT FROM autopilot.agents AS a WHERE a.status = 'active' AND a.capacity > 0 "
        "           AND t.required_skills <@ a.skills)) "
        "FROM autopilot.tasks AS t",
        [since],
    ).fetchone()
    if summary["assigned"] != assigned:
        problems.append(f"the summary says {summary['assigned']} assigned, the table {assigned}")
    if summary["pending"] != pending or summary["unassignable"] != unassignable:
        problems.append(
            f"the summary says {summary['pending']} pending ({summary['unassignable']} unassignable), "
            f"the table {pending} ({unassignable})"
        )
    # no task still waiting was passed over for a later one by an agent that could have taken it
    (inversions,) = conn.execute(
        """
        WITH run AS (
            SELECT t.id, t.required_skills, t.status, t.agent_id,
                   row_number() OVER (ORDER BY t.priority DESC, t.created_at, t.id) AS ord
            FROM autopilot.tasks AS t
            WHERE t.status = 'pending' OR (t.status = 'assigned' AND t.assigned_at >= %s)
        ),
        waiting AS (
            SELECT required_skills, min(ord) AS first_ord FROM run WHERE status = 'pending' GROUP BY 1
        ),
        last_given AS (
            SELECT agent_id, max(ord) AS last_ord FROM run WHERE status = 'assigned' GROUP BY 1
        )
        SELECT count(*)
        FROM waiting AS w
        CROSS JOIN last_given AS l
        JOIN autopilot.agents AS a ON a.id = l.agent_id
        WHERE w.required_skills <@ a.skills AND l.last_ord > w.first_ord
        """,
        [since],
    ).fetchone()
    if inversions:
        problems.append(f"{inversions} (skill set, agent) pairs where a later task beat a waiting one")
    if problems:
        raise CorrectnessError("; ".join(problems))


def expected_assignment(conn: psycopg.Connection) -> dict[int, int]:
    """The specification's sequential rule, in Python (no silent agents in this data set): in order of
    priority, age and id, each pending task to the capable agent with the lowest load ratio, then id."""
    agents = conn.execute(
        "SELECT id, skills, capacity, active_tasks FROM autopilot.agents "
        "WHERE status = 'active' AND capacity > 0 "
        "  AND last_seen_at >= now() - autopilot.get_setting('agents.silence_timeout')::interval "
        "ORDER BY id"
    ).fetchall()
    load = {a[0]: a[3] for a in agents}
    capable: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    plan: dict[int, int] = {}
    for task_id, required in conn.execute(
        "SELECT id, required_skills FROM autopilot.tasks WHERE status = 'pending' "
        "ORDER BY priority DESC, created_at, id"
    ):
        key = tuple(sorted(set(required)))
        if key not in capable:
            capable[key] = [(a[0], a[2]) for a in agents if set(key) <= set(a[1])]
        best = None
        for agent_id, capacity in capable[key]:
            if load[agent_id] < capacity:
                k = (load[agent_id] / capacity, agent_id)
                if best is None or k < best:
                    best = k
        if best is not None:
            plan[task_id] = best[1]
            load[best[1]] += 1
    return plan


# -- the measurements ---------------------------------------------------------------------------


def timed_update(conn: psycopg.Connection, triggers: bool) -> float:
    if not triggers:
        conn.execute("ALTER TABLE autopilot.tasks DISABLE TRIGGER USER")
    try:
        t0 = time.perf_counter()
        with conn.transaction():
            rows = conn.execute(
                "UPDATE autopilot.tasks SET assigned_at = now() WHERE status = 'pending'"
            ).rowcount
        seconds = time.perf_counter() - t0
    finally:
        if not triggers:
            conn.execute("ALTER TABLE autopilot.tasks ENABLE TRIGGER USER")
    console.print(
        f"    plain UPDATE ({'triggers on' if triggers else 'triggers off'}): {rows:,} rows, "
        f"{seconds * 1000:.0f} ms"
    )
    return seconds


@dataclass
class Run:
    seconds: float
    summary: dict
    heard: int = 0
    heard_tasks: int = 0


def timed_assignment(conn: psycopg.Connection, listener: psycopg.Connection | None = None) -> Run:
    since = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    t0 = time.perf_counter()
    with conn.transaction():
        summary = conn.execute("SELECT autopilot.assign_pending_tasks()").fetchone()[0]
    run = Run(time.perf_counter() - t0, summary)
    if listener is not None:
        told: dict[int, int] = {}
        for n in listener.notifies(timeout=10, stop_after=summary["notifications"]):
            payload = json.loads(n.payload)
            told[payload["agent_id"]] = told.get(payload["agent_id"], 0) + len(payload["task_ids"])
            run.heard += 1
        run.heard_tasks = sum(told.values())
        if run.heard != summary["notifications"] or run.heard_tasks != summary["assigned"]:
            raise CorrectnessError(
                f"heard {run.heard} notifications naming {run.heard_tasks} tasks; the run sent "
                f"{summary['notifications']} for {summary['assigned']}"
            )
        if len(told) != summary["agents"]:
            raise CorrectnessError(f"{len(told)} agents were told, {summary['agents']} got tasks")
    verify(conn, summary, since)
    return run


@dataclass
class Results:
    plain: list[float] = field(default_factory=list)
    plain_no_triggers: list[float] = field(default_factory=list)
    full: list[Run] = field(default_factory=list)
    typical: list[Run] = field(default_factory=list)


def bench(dsn: str, args: argparse.Namespace) -> Results:
    results = Results()
    with psycopg.connect(dsn, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        for i in range(args.repeat):
            console.print(f"[bold]round {i + 1} of {args.repeat}[/]")
            with console.status("loading"):
                load(conn, args.agents, args.tasks)
            results.plain.append(timed_update(conn, triggers=True))
            with console.status("reloading"):
                load(conn, args.agents, args.tasks)
            results.plain_no_triggers.append(timed_update(conn, triggers=False))
            with console.status("reloading"):
                load(conn, args.agents, args.tasks)
            with console.status("assign_pending_tasks()"):
                run = timed_assignment(conn, listener)
            results.full.append(run)
            console.print(
                f"    assign_pending_tasks(): {run.seconds * 1000:.0f} ms; {run.summary['message']}; "
                f"{run.heard:,} notifications heard, naming {run.heard_tasks:,} tasks"
            )

        console.print(f"[bold]typical runs[/] ({args.new_tasks:,} tasks finish, {args.new_tasks:,} arrive)")
        for i in range(args.typical_runs):
            conn.execute(
                "UPDATE autopilot.tasks "
                "SET status = 'succeeded', started_at = assigned_at, finished_at = now() "
                "WHERE id IN (SELECT id FROM autopilot.tasks WHERE status = 'assigned' "
                "             ORDER BY random() LIMIT %s)",
                [args.new_tasks],
            )
            conn.execute(NEW_TASKS_SQL, {"round": i, "tasks": args.new_tasks})
            conn.execute("ANALYZE autopilot.tasks")
            plan = expected_assignment(conn)
            run = timed_assignment(conn, listener)
            got = dict(
                conn.execute(
                    "SELECT id, agent_id FROM autopilot.tasks WHERE status = 'assigned' AND id = ANY(%s)",
                    [list(plan)],
                ).fetchall()
            )
            if got != plan or run.summary["assigned"] != len(plan):
                wrong = sum(1 for t, a in plan.items() if got.get(t) != a)
                raise CorrectnessError(
                    f"typical run {i + 1}: {wrong} of {len(plan)} tasks differ from the rule"
                )
            results.typical.append(run)
            console.print(
                f"    {run.seconds * 1000:.1f} ms; {run.summary['message']} "
                "(= the sequential rule, task by task)"
            )
    return results


# -- the report ---------------------------------------------------------------------------------


def print_report(r: Results, args: argparse.Namespace) -> None:
    plain = statistics.median(r.plain)
    plain_off = statistics.median(r.plain_no_triggers)
    full = statistics.median(run.seconds for run in r.full)
    typical = [run.seconds for run in r.typical]

    table = Table(
        title=f"task-assignment: {args.tasks:,} pending tasks, {args.agents:,} agents, durable cluster"
    )
    table.add_column("measurement")
    table.add_column("runs (ms)", justify="right")
    table.add_column("median (ms)", justify="right")
    for label, values in (
        ("plain UPDATE of the same rows", r.plain),
        ("  the same, triggers disabled", r.plain_no_triggers),
        ("assign_pending_tasks()", [run.seconds for run in r.full]),
        (f"typical run ({args.new_tasks:,} new tasks)", typical),
    ):
        table.add_row(
            label, ", ".join(f"{v * 1000:.0f}" for v in values), f"{statistics.median(values) * 1000:.1f}"
        )
    console.print(table)

    console.print("[bold]Goals[/]:")
    console.print(
        f"  {verdict(full <= GOAL_RATIO * plain)} full run / plain UPDATE: {full / plain:.2f}x "
        f"({full * 1000:.0f} ms / {plain * 1000:.0f} ms)  goal <= {GOAL_RATIO:.0f}x  "
        f"[dim](against the UPDATE with triggers disabled: {full / plain_off:.2f}x)[/]"
    )
    console.print(
        f"  {verdict(max(typical) <= GOAL_TYPICAL_MS / 1000)} typical run: median "
        f"{statistics.median(typical) * 1000:.1f} ms, slowest {max(typical) * 1000:.1f} ms  "
        f"goal <= {GOAL_TYPICAL_MS:.0f} ms"
    )


# -- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dsn", help="use this server (a scratch database is created and dropped)")
    p.add_argument("--tasks", type=int, default=100_000, help="pending tasks of the full run")
    p.add_argument("--agents", type=int, default=1_000, help="agents")
    p.add_argument(
        "--repeat", type=int, default=3, help="full runs (and plain UPDATEs) to take the median of"
    )
    p.add_argument(
        "--new-tasks", type=int, default=1_000, help="tasks finishing and arriving per typical run"
    )
    p.add_argument("--typical-runs", type=int, default=5, help="typical runs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_database(args.dsn, SCRATCH_DB, console) as dsn:
        create_autopilot(dsn, console)
        try:
            results = bench(dsn, args)
        except CorrectnessError as exc:
            console.print(f"[bold red]CORRECTNESS FAILURE[/]: {exc}")
            return 1
    print_report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
