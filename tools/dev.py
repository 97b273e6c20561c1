#!/usr/bin/env python3
"""Developer entry points behind `make test`, `make demo`, `make lint` and `make bench`.

    dev.py test [--only sql|py]   pgTAP (both install modes) then pytest, on one throwaway cluster
    dev.py demo                   a throwaway cluster running the learning loop on a small repository
    dev.py stop                   stop and remove the demo cluster
    dev.py plpgsql-check          plpgsql_check over every autopilot function
    dev.py bench                  run the benchmarks under bench/

AUTOPILOT_TEST_DSN points the tests at an existing server (a superuser DSN whose database is
pg_cron's cron.database_name) instead of a throwaway cluster.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pg_autopilot import installer, schedules
from pg_autopilot.sqlfiles import bundle, parse_version
from pg_autopilot.testing import Cluster

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = Path(os.environ.get("AUTOPILOT_DEMO_DIR", "/tmp/autopilot-demo"))


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


@contextlib.contextmanager
def server(pg_cron: bool = True) -> Iterator[str]:
    """An admin DSN: AUTOPILOT_TEST_DSN, or a throwaway cluster removed afterwards."""
    if dsn := os.environ.get("AUTOPILOT_TEST_DSN"):
        yield dsn
        return
    cluster = Cluster.create(pg_cron=pg_cron)
    say(f"throwaway PostgreSQL 15 cluster on port {cluster.port} ({cluster.directory})")
    try:
        yield cluster.dsn()
    finally:
        cluster.destroy()


def libpq_env(dsn: str) -> dict[str, str]:
    params = conninfo_to_dict(dsn)
    env = dict(os.environ)
    for key, var in (
        ("host", "PGHOST"),
        ("port", "PGPORT"),
        ("user", "PGUSER"),
        ("dbname", "PGDATABASE"),
        ("password", "PGPASSWORD"),
    ):
        if key in params:
            env[var] = str(params[key])
    return env


def reset_autopilot(conn: psycopg.Connection, dsn: str) -> None:
    """Remove autopilot (its pg_cron jobs, its schema) from the database, if it is there."""
    if installer.installed(conn) is not None:
        schedules.sync(conn, dsn, remove_all=True)
        installer.drop(conn)


def run_pgtap(dsn: str) -> bool:
    """pg_prove on each install mode, and again after upgrading from every earlier release."""
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "sql").glob("*.sql"))
    if not files:
        print("no pgTAP tests found under tests/sql", file=sys.stderr)
        return False
    current = bundle().default_version
    earlier = [v for v in bundle().versions if parse_version(v) < parse_version(current)]
    runs = [("extension", None), ("schema", None)]
    runs += [(mode, version) for version in earlier for mode in ("extension", "schema")]
    if not earlier:
        print(f"(no release before {current}: the suite runs again after each upgrade once there is one)")
    ok = True
    for mode, start in runs:
        how = f"upgraded from {start} in {mode} mode" if start else f"installed in {mode} mode"
        say(f"pgTAP suite, autopilot {how} ({len(files)} files)")
        with psycopg.connect(dsn, autocommit=False) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
            conn.commit()
            reset_autopilot(conn, dsn)
            print(installer.install(conn, mode=mode, version=start or current).message)
            if start:
                print(installer.upgrade(conn, to=current).message)
            print(schedules.sync(conn, dsn).message)
        result = subprocess.run(["pg_prove", "--failures", *files], cwd=ROOT, env=libpq_env(dsn))
        ok = ok and result.returncode == 0
        with psycopg.connect(dsn, autocommit=False) as conn:
            reset_autopilot(conn, dsn)
    return ok


def run_pytest(dsn: str, extra: list[str]) -> bool:
    say("pytest")
    env = dict(os.environ, AUTOPILOT_TEST_DSN=dsn)
    result = subprocess.run([sys.executable, "-m", "pytest", *extra], cwd=ROOT, env=env)
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        return False
    return result.returncode == 0


def cmd_test(args: argparse.Namespace) -> int:
    with server() as dsn:
        ok = True
        if args.only in (None, "sql"):
            ok = run_pgtap(dsn) and ok
        if args.only in (None, "py"):
            ok = run_pytest(dsn, args.pytest_args) and ok
    say("all tests passed" if ok else "TESTS FAILED")
    return 0 if ok else 1


def cmd_plpgsql_check(_: argparse.Namespace) -> int:
    query = (ROOT / "tools" / "plpgsql_check.sql").read_text()
    with server() as dsn, psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        conn.commit()
        reset_autopilot(conn, dsn)
        installer.install(conn, mode="schema")
        try:
            rows = conn.execute(query).fetchall()
        finally:
            conn.rollback()
            reset_autopilot(conn, dsn)
    for row in rows:
        print("plpgsql_check:", " | ".join(str(v) for v in row if v is not None))
    print(f"plpgsql_check: {len(rows)} problems")
    return 1 if rows else 0


def cmd_demo(_: argparse.Namespace) -> int:
    from demo import run_demo  # tools/demo.py

    if DEMO_DIR.exists():
        say(f"removing the previous demo cluster in {DEMO_DIR}")
        with contextlib.suppress(Exception):
            Cluster.load(DEMO_DIR).destroy()
        shutil.rmtree(DEMO_DIR, ignore_errors=True)
    cluster = Cluster.create(DEMO_DIR, durable=True)
    say(f"demo cluster: PostgreSQL 15 with pg_cron on port {cluster.port}, data in {DEMO_DIR}")
    run_demo(cluster)
    print(
        f"\nThe demo cluster is still running. Try:\n"
        f"  export AUTOPILOT_DSN='{cluster.dsn('autopilot_demo')}'\n"
        f"  {ROOT / '.venv/bin/autopilot'} status\n"
        f"  psql \"$AUTOPILOT_DSN\" -c 'SELECT * FROM autopilot.job_runs ORDER BY id DESC LIMIT 10'\n"
        f"Stop and remove it with:  make clean-cluster"
    )
    return 0


def cmd_stop(_: argparse.Namespace) -> int:
    if not DEMO_DIR.exists():
        print("no demo cluster is running")
        return 0
    with contextlib.suppress(Exception):
        Cluster.load(DEMO_DIR).destroy()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    print(f"stopped and removed the demo cluster in {DEMO_DIR}")
    return 0


# run by bench/queue_throughput.py, not benchmarks of their own: the peers' half (in .venv-bench)
# and the runner's workers
BENCH_HELPERS = {"queue_peers.py", "queue_workers.py"}


def cmd_bench(_: argparse.Namespace) -> int:
    status = 0
    for script in sorted((ROOT / "bench").glob("[!_]*.py")):  # _*.py are shared modules
        if script.name in BENCH_HELPERS:
            continue
        say(f"benchmark {script.name}")
        status |= subprocess.run([sys.executable, str(script)], cwd=ROOT).returncode
    return status


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    test = sub.add_parser("test")
    test.add_argument("--only", choices=["sql", "py"])
    test.add_argument("pytest_args", nargs="*", help="passed to pytest")
    test.set_defaults(func=cmd_test)
    sub.add_parser("demo").set_defaults(func=cmd_demo)
    sub.add_parser("stop").set_defaults(func=cmd_stop)
    sub.add_parser("plpgsql-check").set_defaults(func=cmd_plpgsql_check)
    sub.add_parser("bench").set_defaults(func=cmd_bench)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
