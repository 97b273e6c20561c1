"""Children (pg_dump, pg_restore): a process group of their own, watched while they run (cancellation,
deadline, the metadata connection), killed when the backup stops, at interpreter exit, and by the kernel
when this process dies (parent-death signal); the private files removed at exit; their messages scrubbed."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from ..errors import BackupFailed
from .archives import INTENT_SUFFIX, _remove
from .progress import RECORD_SECONDS, BackupProgress, ProgressSink

# seconds between two looks at a running child (cancellation, deadline, the metadata connection)
_POLL_SECONDS = 0.1
# seconds between two statements on the metadata connection while pg_dump / pg_restore run: an idle
# connection can be dropped by a proxy or firewall, and with it the advisory lock that marks the backup live
TOUCH_INTERVAL = 60.0


_registry_lock = threading.Lock()
_children: set[subprocess.Popen] = set()
_private_paths: set[Path] = set()  # passfile directories, .partial archives: removed at interpreter exit


class BackupCancelled(BackupFailed):
    """The runner cancelled the job (cancelled, timed out, or no longer this runner's), or it passed its
    deadline: the children were killed and nothing was kept."""


class Interrupted(KeyboardInterrupt):
    """A stop signal other than SIGINT (SIGTERM) turned into an interruption, so the backup cleans up."""


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL a child's whole process group (pg_dump --jobs has workers), unless it was already reaped."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


# prctl(PR_SET_PDEATHSIG) (Linux): loaded here, in the parent, so that the child only calls it
_PR_SET_PDEATHSIG = 1
_prctl = None
with contextlib.suppress(OSError, AttributeError):
    _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _dies_with_parent(then: Callable[[], None] | None = None) -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started it ends (the whole runner killed
    with SIGKILL included, which no atexit or finally survives); a child whose parent is already gone
    kills itself. ``then`` runs after (the child_setup test hook)."""
    parent = os.getpid()

    def setup() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl
                os.kill(os.getpid(), signal.SIGKILL)
        if then is not None:
            then()

    return setup


@contextlib.contextmanager
def _child(argv: list[str], **kwargs) -> Iterator[subprocess.Popen]:
    """A child process in a session (and process group) of its own: a terminal's Ctrl-C or a service
    manager's stop signal reaches this process, which decides. An exception in the body kills it; it is
    always reaped, and killed at interpreter exit if it still runs then, and by the kernel when this process
    dies (parent-death signal)."""
    kwargs["preexec_fn"] = _dies_with_parent(kwargs.get("preexec_fn"))
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    with _registry_lock:
        _children.add(proc)
    try:
        yield proc
    except BaseException:
        _kill(proc)
        raise
    finally:
        if proc.stdin is not None:
            with contextlib.suppress(OSError):  # EOF for the child, whatever it wrote meanwhile
                proc.stdin.close()
        proc.wait()
        with _registry_lock:
            _children.discard(proc)


def _wait(proc: subprocess.Popen, poll: Callable[[], None]) -> int:
    """Wait for a child, calling ``poll`` (which raises to stop) every _POLL_SECONDS."""
    while True:
        try:
            return proc.wait(timeout=_POLL_SECONDS)
        except subprocess.TimeoutExpired:
            poll()


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    """A short child (--version, --list), in a process group of its own too."""
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
        start_new_session=True,
        preexec_fn=_dies_with_parent(),
    )


def _register_private(*paths: Path) -> None:
    with _registry_lock:
        _private_paths.update(paths)


def _unregister_private(*paths: Path) -> None:
    with _registry_lock:
        _private_paths.difference_update(paths)


@atexit.register
def _at_exit() -> None:
    """The interpreter is exiting while a backup thread may still wait for its children (the runner left a
    job running past its grace period; daemon threads are frozen, their ``finally`` never runs): kill the
    children and remove the passfiles and partial archives now. The row stays ``running`` with its lock gone;
    the next backup marks it failed."""
    with _registry_lock:
        children, paths = list(_children), list(_private_paths)
    for proc in children:
        _kill(proc)
    # the intent records last: a leftover of an archive always has its record beside it
    for path in sorted(paths, key=lambda p: p.name.endswith(INTENT_SUFFIX)):
        with contextlib.suppress(OSError):
            _remove(path)


def _scrub(text: str, secrets: tuple[str, ...] | list[str] | None) -> str:
    for secret in secrets or ():
        if secret:
            text = text.replace(secret, "********")
    return text


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else ""


class _Watch:
    """Called while pg_dump and pg_restore run (and between databases): raises to stop the backup when the
    job was cancelled or passed its deadline, and touches the metadata connection every TOUCH_INTERVAL
    seconds (raising when it is gone: the advisory lock went with it). Takes the backup's progress reports
    too (``progress``)."""

    def __init__(
        self,
        conn: psycopg.Connection,
        cancelled: threading.Event | None,
        deadline: float | None,
        sink: ProgressSink | None = None,
    ) -> None:
        self.conn = conn
        self.cancelled = cancelled
        self.deadline = deadline
        self.sink = sink
        self.what = "backup"
        self.touched = time.monotonic()
        self.recorded = float("-inf")
        self.recorded_bytes = 0

    def __call__(self) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise BackupCancelled(
                f"{self.what} stopped: the runner cancelled the job (cancelled, timed out, or no longer "
                "this runner's); pg_dump was killed and nothing was kept"
            )
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            raise BackupCancelled(
                f"{self.what} stopped: the job passed its deadline (the backup worker's timeout); "
                "pg_dump was killed and nothing was kept",
                hint="A database this big backs up faster in the directory format with parallel jobs "
                "(backups.format directory, backups.parallel_jobs).",
            )
        if now - self.touched >= TOUCH_INTERVAL:
            self._statement("SELECT 'autopilot backup running'", [])

    def progress(self, report: BackupProgress) -> None:
        """A report on the backup: to the sink (the CLI's progress bar, the job's meta, the runner's log), and
        into the row's ``details.progress`` every RECORD_SECONDS (`autopilot status` shows it; a statement
        on the metadata connection, so it touches it too)."""
        if self.sink is not None:
            # progress is never worth failing a backup for (the sink is the caller's: a terminal gone, a job
            # that is no longer this runner's)
            with contextlib.suppress(Exception):
                self.sink(report)
        now = time.monotonic()
        if report.phase == "started":  # another database: its row has recorded nothing yet
            self.recorded, self.recorded_bytes = float("-inf"), 0
        # every RECORD_SECONDS, and at once when pg_dump's first bytes are there or verification starts
        first_bytes = report.bytes > 0 and not self.recorded_bytes
        if report.phase in ("dumping", "verifying") and (
            now - self.recorded >= RECORD_SECONDS or first_bytes or report.phase == "verifying"
        ):
            self.recorded, self.recorded_bytes = now, report.bytes
            self._statement(
                "UPDATE autopilot.backup_metadata SET details = details || pg_catalog.jsonb_build_object("
                "'progress', %s::jsonb || pg_catalog.jsonb_build_object('at', pg_catalog.clock_timestamp())) "
                "WHERE id = %s AND status IN ('running', 'succeeded')",
                [Jsonb(report.fields()), report.backup_id],
            )

    def _statement(self, query: str, params: list) -> None:
        """A statement on the metadata connection (which it keeps alive); BackupFailed when it is gone: the
        advisory lock that marks the backup live went with it."""
        self.touched = time.monotonic()
        try:
            self.conn.execute(query, params)
        except psycopg.Error as exc:
            raise BackupFailed(
                f"{self.what} stopped: lost the connection to the database that records it "
                f"({_first_line(str(exc))}); its lock went with it, so pg_dump was killed and nothing "
                "was kept",
                hint="Check the network between the runner and the server (a proxy or firewall that "
                "drops idle connections?). The job is retried.",
            ) from exc
