"""How far a running backup has come: what pg_dump has written so far and how fast, for the CLI's progress
bar, the job's meta (`autopilot status`), the backup's row and the runner's log.

The size on disk is sampled (a stat of the custom archive, a walk of a directory archive) every
``SAMPLE_SECONDS`` while pg_dump runs, from the loop that watches it: no thread of its own. What is done
with a sample is the caller's ``ProgressSink``; ``LogCadence`` says which samples are worth a log line."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# seconds between two looks at the size of the archive pg_dump is writing
SAMPLE_SECONDS = 0.5
# seconds between two progress records in the backup's row (autopilot.backup_metadata.details.progress)
RECORD_SECONDS = 5.0
# a progress log line every LOG_SECONDS, or when another LOG_FRACTION of the expected size is written
LOG_SECONDS = 5.0
LOG_FRACTION = 0.1
# ... but never two within LOG_MIN_SECONDS
LOG_MIN_SECONDS = 1.0

# the phases of one database's backup, in order (or "failed" at any point after "started")
PHASES = ("started", "dumping", "verifying", "finished", "failed")


@dataclass(frozen=True)
class BackupProgress:
    """One report on the backup of one database. ``bytes``: written so far (the archive's size once pg_dump
    is done); ``seconds``: since pg_dump started; ``expected_bytes``: the size of the last verified backup of
    the same database and format, an estimate (None for the first one)."""

    database: str
    backup_id: int
    kind: str
    phase: str
    bytes: int = 0
    seconds: float = 0.0
    expected_bytes: int | None = None
    sha256: str | None = None  # finished
    verify_seconds: float | None = None  # finished
    error: str | None = None  # failed

    @property
    def bytes_per_second(self) -> float | None:
        """The mean rate since pg_dump started (None in the first moments, when it means nothing)."""
        return self.bytes / self.seconds if self.seconds >= 0.5 else None

    @property
    def fraction(self) -> float | None:
        """``bytes`` as a fraction of the expected size, when there is one."""
        return self.bytes / self.expected_bytes if self.expected_bytes else None

    def fields(self) -> dict[str, Any]:
        """The report as JSON fields (the job's meta, a log line): the byte counts in the ``done``/``of``/
        ``unit`` convention of progress reports (``of`` being the estimate, it may be passed)."""
        fields: dict[str, Any] = {
            "database": self.database,
            "backup_id": self.backup_id,
            "kind": self.kind,
            "phase": self.phase,
            "done": self.bytes,
            "unit": "bytes",
            "seconds": round(self.seconds, 1),
        }
        if self.expected_bytes:
            fields["of"] = self.expected_bytes
        if self.bytes_per_second is not None:
            fields["bytes_per_second"] = round(self.bytes_per_second)
        for name in ("sha256", "verify_seconds", "error"):
            value = getattr(self, name)
            if value is not None:
                fields[name] = round(value, 1) if isinstance(value, float) else value
        return fields


ProgressSink = Callable[[BackupProgress], None]


def archive_bytes(path: Path) -> int:
    """The bytes of a custom archive (one file) or of a directory archive (its files) written so far; 0 when
    there is nothing yet."""
    try:
        if not path.is_dir():
            return path.stat().st_size
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # gone between the listing and the stat
                    total += os.stat(os.path.join(root, name)).st_size
        return total
    except FileNotFoundError:
        return 0


class DumpMeter:
    """Called from the loop that watches pg_dump: every SAMPLE_SECONDS, the size of ``partial`` goes to
    ``report`` as a ``dumping`` BackupProgress."""

    def __init__(self, partial: Path, base: BackupProgress, report: ProgressSink) -> None:
        self.partial = partial
        self.base = base
        self.report = report
        self.started = time.monotonic()
        self.sampled = self.started

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.sampled < SAMPLE_SECONDS:
            return
        self.sampled = now
        self.report(self.at(archive_bytes(self.partial), now - self.started, "dumping"))

    def at(self, size: int, seconds: float, phase: str) -> BackupProgress:
        b = self.base
        return BackupProgress(b.database, b.backup_id, b.kind, phase, size, seconds, b.expected_bytes)


class LogCadence:
    """Which ``dumping`` reports are worth a log line: one every LOG_SECONDS, or when another LOG_FRACTION of
    the expected size has been written, never two within LOG_MIN_SECONDS. Every other phase is."""

    def __init__(self) -> None:
        self.last_at: float | None = None
        self.last_step = 0

    def due(self, progress: BackupProgress) -> bool:
        if progress.phase != "dumping":
            self.last_at, self.last_step = None, 0  # the next database starts afresh
            return True
        since = progress.seconds - (self.last_at or 0.0)
        fraction = progress.fraction
        step = int(fraction / LOG_FRACTION) if fraction is not None else 0
        if since >= LOG_SECONDS or (step > self.last_step and since >= LOG_MIN_SECONDS):
            self.last_at, self.last_step = progress.seconds, step
            return True
        return False


def size_text(n: float) -> str:
    """A byte count for a person: 950.0 MB (binary multiples, as du -h)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def describe(progress: BackupProgress) -> str:
    """One line for a person: "backup #12 of app: 512.0 MB written (54% of the last backup), 35.2 MB/s,
    14 s"."""
    p = progress
    head = f"backup #{p.backup_id} of {p.database}"
    if p.phase == "started":
        expected = f" (the last one was {size_text(p.expected_bytes)})" if p.expected_bytes else ""
        return f"{head} ({p.kind}): pg_dump started{expected}"
    if p.phase == "failed":
        return f"{head}: failed: {p.error}"
    if p.phase == "finished":
        return (
            f"{head}: verified, {size_text(p.bytes)} in {p.seconds:.1f} s"
            + (f" (+{p.verify_seconds:.1f} s verifying)" if p.verify_seconds is not None else "")
            + (f", sha256 {p.sha256[:16]}" if p.sha256 else "")
        )
    line = f"{head}: {size_text(p.bytes)} written"
    if p.fraction is not None:
        line += f" ({p.fraction:.0%} of the last backup's size)"
    if p.bytes_per_second is not None:
        line += f", {size_text(p.bytes_per_second)}/s"
    line += f", {p.seconds:.0f} s"
    return line + (", verifying" if p.phase == "verifying" else "")
