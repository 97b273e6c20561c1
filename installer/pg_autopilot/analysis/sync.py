"""registry-sync of one codebase: list its files, run the configured analyzers (all at once, each a
program of its own with the timeout registry_sync.analyzer_timeout), then record what they found in
one transaction (autopilot.record_analysis_snapshot): the snapshot, and the analysis_results rows
pattern-learning folds.

An analyzer that crashes, hangs or is not installed is one line of the summary; the others' results
are recorded all the same, and its next successful run is compared with its last successful one.
A codebase that cannot be listed (its root gone) records nothing. A cancelled run stops the
analyzers and records nothing.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..ingest.files import Skip, is_git_work_tree, list_files
from . import analyzers as registry
from .analyzers import FAILED, OK, AnalyzerRun, Options

Connect = Callable[[], psycopg.Connection]
Progress = Callable[..., None]

TOO_LARGE = "too large"
NAME_NOT_UTF8 = "file name not UTF-8"


@dataclass(frozen=True)
class Settings:
    analyzers: tuple[str, ...]
    timeout: float
    complexity_threshold: int
    max_file_bytes: int

    @classmethod
    def read(cls, conn: psycopg.Connection) -> Settings:
        names, timeout, threshold, cap = conn.execute(
            "SELECT autopilot.get_setting('registry_sync.analyzers'),"
            " pg_catalog.date_part('epoch',"
            "   autopilot.get_setting('registry_sync.analyzer_timeout')::interval),"
            " autopilot.get_setting('registry_sync.complexity_threshold')::integer,"
            " autopilot.get_setting('code_ingest.max_file_bytes')::bigint"
        ).fetchone()
        chosen = tuple(dict.fromkeys(name.strip() for name in names.split(",") if name.strip()))
        return cls(chosen, float(timeout), int(threshold), int(cap))


@dataclass
class SyncResult:
    codebase: str
    commit: str | None
    files: int
    runs: list[AnalyzerRun]
    recorded: dict[str, Any]
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> list[AnalyzerRun]:
        return [run for run in self.runs if run.status != OK]

    def line(self) -> str:
        """The codebase's part of the job's summary (job_runs.message)."""
        where = f"{self.codebase}@{self.commit[:12]}" if self.commit else self.codebase
        parts = []
        for run in self.runs:
            if run.status == OK:
                noun = "finding" if run.findings == 1 else "findings"
                parts.append(f"{run.analyzer} {run.findings} {noun} ({run.seconds:.1f} s)")
            else:
                parts.append(f"{run.analyzer} {run.status.replace('_', ' ').upper()}: {run.message}")
        left_out = "".join(f", {count} {reason}" for reason, count in sorted(self.left_out.items()))
        return "; ".join(
            part
            for part in (f"{where}: {self.files} files{left_out}", ", ".join(parts), self.recorded["message"])
            if part
        )


def head_commit(root: str) -> str | None:
    """HEAD of the work tree, or None (not a work tree, or no commit yet). git runs without the
    caller's GIT_* variables and with the repository's fsmonitor hook off, as the ingest runs it."""
    if not is_git_work_tree(root):
        return None
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    result = subprocess.run(
        ["git", "-c", "core.fsmonitor=false", "-C", root, "rev-parse", "--verify", "--quiet", "HEAD"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def select_files(
    root: str, include: Sequence[str], exclude: Sequence[str], chosen: Sequence[registry.Analyzer], cap: int
) -> tuple[list[str], Counter[str]]:
    """The codebase's files that some analyzer reads, at most ``cap`` bytes each; and how many were
    left out, by reason. Raises :class:`~pg_autopilot.ingest.files.CodebaseError` when the root
    cannot be listed."""
    paths: list[str] = []
    left_out: Counter[str] = Counter()

    def on_skip(skip: Skip) -> None:
        if any(analyzer.selects(skip.path) for analyzer in chosen):
            left_out[skip.reason] += 1

    for path in list_files(root, include, exclude, on_skip=on_skip):
        if not any(analyzer.selects(path) for analyzer in chosen):
            continue
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            left_out[NAME_NOT_UTF8] += 1
            continue
        try:
            size = os.stat(os.path.join(root, path)).st_size
        except OSError:
            continue  # gone since it was listed
        if size > cap:
            left_out[TOO_LARGE] += 1
            continue
        paths.append(path)
    return paths, left_out


def sync(
    connect: Connect,
    name: str,
    *,
    progress: Progress | None = None,
    cancelled: threading.Event | None = None,
) -> SyncResult:
    """Analyzes the codebase ``name`` and records the snapshot (the worker's code for one codebase)."""
    from ..codebases import load

    report = progress or (lambda **fields: None)
    with connect() as conn:
        codebase = load(conn, name)
        settings = Settings.read(conn)
    if not settings.analyzers:
        return SyncResult(
            name, None, 0, [], {"message": "nothing analyzed: registry_sync.analyzers is empty"}
        )
    chosen = [registry.ANALYZERS[n] for n in settings.analyzers if n in registry.ANALYZERS]
    unknown = [n for n in settings.analyzers if n not in registry.ANALYZERS]
    root = codebase.root_path
    paths, left_out = select_files(
        root, codebase.include_globs, codebase.exclude_globs, chosen, settings.max_file_bytes
    )
    commit = head_commit(root)
    options = Options(root, settings.max_file_bytes, settings.complexity_threshold)
    report(step="analyzing", files=len(paths), analyzers=[a.name for a in chosen])

    runs: dict[str, AnalyzerRun] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
        futures = {
            pool.submit(registry.run, analyzer, paths, options, settings.timeout, cancelled): analyzer.name
            for analyzer in chosen
        }
        for future in concurrent.futures.as_completed(futures):
            run = future.result()  # AnalysisCancelled propagates (the others see the same event)
            runs[run.analyzer] = run
            report(step="analyzing", files=len(paths), finished=sorted(runs), of=len(chosen))
    known = ", ".join(sorted(registry.ANALYZERS))
    for missing in unknown:
        runs[missing] = AnalyzerRun(
            missing,
            FAILED,
            "unknown",
            0.0,
            message=f"no such analyzer (registry_sync.analyzers; known: {known})",
        )
    ordered = [runs[n] for n in settings.analyzers]

    recorded = record(connect, name, commit, paths, ordered)
    report(final=True, step="recorded", snapshot=recorded["snapshot_id"], files=len(paths))
    return SyncResult(name, commit, len(paths), ordered, recorded, left_out)


def record(
    connect: Connect, name: str, commit: str | None, paths: Sequence[str], runs: Sequence[AnalyzerRun]
) -> dict[str, Any]:
    """One transaction: autopilot.record_analysis_snapshot with the runs' outcomes and counts."""
    complexity: dict[str, tuple[int, int, int]] = {}
    for run in runs:
        if run.status == OK and run.output is not None and run.output.complexity:
            complexity = run.output.complexity
    files = [
        {
            "path": path,
            **dict(
                zip(
                    ("functions", "complexity_total", "complexity_max"),
                    complexity.get(path, ()),
                    strict=False,
                )
            ),
        }
        for path in paths
    ]
    findings = [
        {"path": path, "analyzer": run.analyzer, "rule": rule, "findings": count}
        for run in runs
        if run.status == OK and run.output is not None
        for (path, rule), count in sorted(run.output.findings.items())
    ]
    outcomes = [
        {
            "analyzer": run.analyzer,
            "status": run.status,
            "version": run.version,
            "files": run.output.files if run.output else 0,
            "seconds": round(run.seconds, 3),
            "message": run.message,
        }
        for run in runs
    ]
    with connect() as conn, conn.transaction():
        return conn.execute(
            "SELECT autopilot.record_analysis_snapshot(%s, %s, %s, %s, %s)",
            [name, commit, Jsonb(outcomes), Jsonb(files), Jsonb(findings)],
        ).fetchone()[0]
