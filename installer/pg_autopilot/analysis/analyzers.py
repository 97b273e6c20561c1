"""The analyzers registry-sync runs, and how one is run: a program of its own per analyzer, in a
process group of its own, stopped (the whole group) at its timeout or when the job is cancelled.

An :class:`Analyzer` says which files it reads (by suffix), its version (a snapshot is compared only
with one of the same version), the commands that analyze a list of files, and how to read their
output into counts per (file, rule). The built-in ones:

* ``ruff``: ``ruff check --output-format json --exit-zero`` on the Python files, in the codebase's
  root, so the project's own configuration (pyproject.toml, ruff.toml) applies as when its
  developers run ruff; ``--force-exclude`` makes its excludes hold for the files passed, and
  ``--no-cache`` keeps ruff from writing a cache into the codebase. Rule = ruff's code
  (``invalid-syntax`` for a file that does not parse).
* ``complexity`` and ``queries``: tree-sitter, over the languages code-ingest parses
  (:mod:`.treesitter`).

A worker module registers more with :func:`register` and names them in the setting
registry_sync.analyzers.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from . import treesitter

RUFF_SUFFIXES = frozenset({".py", ".pyi"})
# argv bytes per ruff run (Linux allows 2 MiB for argv and the environment together)
ARGV_BUDGET = 256 * 1024
OK, FAILED, TIMED_OUT = "ok", "failed", "timed_out"


class AnalyzerUnavailable(Exception):
    """The analyzer cannot run here (its program is not installed): a failed analyzer, with this
    message, not a failed job run."""


class AnalysisCancelled(Exception):
    """The job was cancelled (or passed its deadline) while an analyzer ran: it was stopped."""


@dataclass(frozen=True)
class Options:
    root: str
    max_file_bytes: int
    complexity_threshold: int


@dataclass(frozen=True)
class Invocation:
    argv: list[str]
    cwd: str
    stdin: bytes = b""
    env: dict[str, str] | None = None


@dataclass
class Output:
    """What an analyzer found: findings per (path, rule); files it read; per-file complexity
    (path -> (functions, total, max)) for the complexity analyzer."""

    findings: Counter[tuple[str, str]] = field(default_factory=Counter)
    files: int = 0
    complexity: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Analyzer:
    name: str
    suffixes: frozenset[str]
    version: Callable[[Options], str]
    invocations: Callable[[Sequence[str], Options], list[Invocation]]
    parse: Callable[[list[bytes], Sequence[str], Options], Output]

    def selects(self, path: str) -> bool:
        return PurePosixPath(path).suffix.lower() in self.suffixes


@dataclass
class AnalyzerRun:
    """One analyzer's outcome on one codebase: ok with its output, or failed / timed_out with why."""

    analyzer: str
    status: str
    version: str
    seconds: float
    output: Output | None = None
    message: str | None = None

    @property
    def findings(self) -> int:
        return sum(self.output.findings.values()) if self.output else 0


ANALYZERS: dict[str, Analyzer] = {}


def register(analyzer: Analyzer) -> Analyzer:
    """Make ``analyzer`` available to registry-sync under its name (the setting
    registry_sync.analyzers chooses which run)."""
    ANALYZERS[analyzer.name] = analyzer
    return analyzer


def run(
    analyzer: Analyzer,
    paths: Sequence[str],
    options: Options,
    timeout: float,
    cancelled: threading.Event | None = None,
) -> AnalyzerRun:
    """Runs ``analyzer`` on the files of ``paths`` it reads, its commands one after the other within
    ``timeout`` seconds in all. Never raises for the analyzer's sake (a crash, a hang, output it
    cannot read, a program missing are its outcome); raises :class:`AnalysisCancelled` when
    ``cancelled`` is set meanwhile."""
    started = time.monotonic()

    def outcome(status: str, version: str, output: Output | None = None, message: str | None = None):
        return AnalyzerRun(analyzer.name, status, version, time.monotonic() - started, output, message)

    selected = [path for path in paths if analyzer.selects(path)]
    try:
        version = analyzer.version(options)
        if not selected:
            return outcome(OK, version, Output())
        invocations = analyzer.invocations(selected, options)
    except AnalyzerUnavailable as exc:
        return outcome(FAILED, "unavailable", message=str(exc))
    outputs = []
    for invocation in invocations:
        try:
            returncode, stdout, stderr = _execute(invocation, started + timeout, cancelled)
        except subprocess.TimeoutExpired:
            return outcome(
                TIMED_OUT, version, message=f"timed out after {timeout:g} s (registry_sync.analyzer_timeout)"
            )
        except OSError as exc:
            return outcome(
                FAILED, version, message=f"cannot start {invocation.argv[0]}: {exc.strerror or exc}"
            )
        if returncode != 0:
            how = (
                f"was killed by signal {-returncode}"
                if returncode < 0
                else f"exited with status {returncode}"
            )
            return outcome(FAILED, version, message=f"{how}{_last_line(stderr)}")
        outputs.append(stdout)
    try:
        output = analyzer.parse(outputs, selected, options)
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return outcome(FAILED, version, message=f"its output could not be read: {exc}")
    return outcome(OK, version, output)


def _execute(
    invocation: Invocation, limit: float, cancelled: threading.Event | None
) -> tuple[int, bytes, bytes]:
    """Runs one command in a process group of its own; kills the group at ``limit`` (monotonic)
    or when ``cancelled`` is set."""
    process = subprocess.Popen(
        invocation.argv,
        cwd=invocation.cwd,
        env=invocation.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stdin: bytes | None = invocation.stdin  # given to the first call only (the later ones go on with it)
    try:
        while True:
            remaining = limit - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(invocation.argv, 0)
            try:
                stdout, stderr = process.communicate(stdin, timeout=min(remaining, 0.25))
            except subprocess.TimeoutExpired:
                stdin = None
                if cancelled is not None and cancelled.is_set():
                    raise AnalysisCancelled(f"{invocation.argv[0]} stopped: the job was cancelled") from None
                continue
            return process.returncode, stdout, stderr
    finally:
        if process.returncode is None:
            _kill(process)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return f": {lines[-1][:300]}" if lines else ""


# -- ruff ------------------------------------------------------------------------------------------


def _ruff_binary() -> str:
    try:
        from ruff import find_ruff_bin  # ruff 0.7+
    except ImportError:
        try:
            from ruff.__main__ import find_ruff_bin  # type: ignore[no-redef]
        except ImportError:
            raise AnalyzerUnavailable("ruff is not installed (pip install 'ruff>=0.6,<1')") from None
    try:
        return os.fsdecode(find_ruff_bin())
    except FileNotFoundError as exc:
        raise AnalyzerUnavailable(f"the ruff package is installed without its program: {exc}") from None


def _ruff_version(options: Options) -> str:
    try:
        return f"ruff {importlib.metadata.version('ruff')}"
    except importlib.metadata.PackageNotFoundError:
        raise AnalyzerUnavailable("ruff is not installed (pip install 'ruff>=0.6,<1')") from None


def _ruff_invocations(paths: Sequence[str], options: Options) -> list[Invocation]:
    binary = _ruff_binary()
    command = [
        binary,
        "check",
        "--output-format",
        "json",
        "--exit-zero",
        "--no-cache",
        "--force-exclude",
        "--",
    ]
    batches: list[list[str]] = [[]]
    size = 0
    for path in paths:
        if batches[-1] and size + len(path) + 1 > ARGV_BUDGET:
            batches.append([])
            size = 0
        batches[-1].append(path)
        size += len(path.encode("utf-8", "surrogateescape")) + 1
    return [Invocation([*command, *batch], cwd=options.root) for batch in batches]


def _ruff_parse(outputs: list[bytes], paths: Sequence[str], options: Options) -> Output:
    known = set(paths)
    root = os.path.realpath(options.root)  # ruff names files from its working directory's real path
    output = Output(files=len(paths))
    for data in outputs:
        for item in json.loads(data):
            path = os.path.relpath(item["filename"], root).replace(os.sep, "/")
            if path in known:
                output.findings[path, item.get("code") or "invalid-syntax"] += 1
    return output


RUFF = register(Analyzer("ruff", RUFF_SUFFIXES, _ruff_version, _ruff_invocations, _ruff_parse))


# -- tree-sitter -----------------------------------------------------------------------------------


def _treesitter(kind: str) -> Analyzer:
    def version(options: Options) -> str:
        return treesitter.version(kind, options.complexity_threshold)

    def invocations(paths: Sequence[str], options: Options) -> list[Invocation]:
        # -P and a working directory outside the codebase: nothing of the codebase is importable
        # by the analyzer (a json.py in its root would otherwise shadow the standard library's)
        package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [package_parent, *filter(None, [environment.get("PYTHONPATH")])]
        )
        argv = [
            sys.executable,
            "-P",
            "-m",
            "pg_autopilot.analysis.treesitter",
            kind,
            "--root",
            options.root,
            "--max-file-bytes",
            str(options.max_file_bytes),
            "--threshold",
            str(options.complexity_threshold),
        ]
        stdin = b"\0".join(path.encode("utf-8", "surrogateescape") for path in paths)
        return [Invocation(argv, cwd="/", stdin=stdin, env=environment)]

    def parse(outputs: list[bytes], paths: Sequence[str], options: Options) -> Output:
        (data,) = outputs
        document = json.loads(data)
        output = Output(files=len(document["files"]), skipped=dict(document["skipped"]))
        for path, rule, count in document["findings"]:
            output.findings[path, rule] += int(count)
        if kind == "complexity":
            output.complexity = {path: tuple(values) for path, values in document["files"].items()}
        return output

    return Analyzer(kind, treesitter.SUFFIXES, version, invocations, parse)


COMPLEXITY = register(_treesitter("complexity"))
QUERIES = register(_treesitter("queries"))
