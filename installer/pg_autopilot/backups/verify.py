"""Verification: the whole archive read back by pg_restore while it is hashed."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import BackupFailed
from .archives import _CHUNK, _no_poll, hash_archive
from .processes import _child, _first_line, _wait


@dataclass
class Verification:
    sha256: str
    size_bytes: int
    files: dict[str, str] | None  # directory format: sha256 of every file, by relative path
    seconds: float
    message: str


@contextlib.contextmanager
def _pg_restore_reading_stdin(pg_restore: Path, errors: IO[bytes]) -> Iterator[subprocess.Popen]:
    """``pg_restore --format=custom --file=/dev/null`` reading a custom archive from its stdin (a child as
    _child makes them), through a bigger pipe than the default: fewer wake-ups, and the writer's hashing
    overlaps pg_restore's work."""
    with _child(
        [str(pg_restore), "--format=custom", "--file=/dev/null"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    ) as proc:
        with contextlib.suppress(OSError):
            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, _CHUNK)
        yield proc


def verify_archive(path: Path, pg_restore: Path, poll: Callable[[], None] = _no_poll) -> Verification:
    """Read the whole archive back: pg_restore decompresses every data block to /dev/null (a truncated or
    corrupt archive fails), while the same bytes are hashed. ``poll`` is called while it runs (it raises to
    stop; pg_restore is then killed). Raises BackupFailed."""
    started = time.monotonic()
    try:
        with tempfile.TemporaryFile() as errors:
            if path.is_dir():
                digest, size, files, code = _read_back_directory(path, pg_restore, errors, poll)
            else:
                files = None
                digest, size, code = _read_back_custom(path, pg_restore, errors, poll)
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
    except OSError as exc:
        raise BackupFailed(
            f"verification failed: cannot read {path} back: {exc.strerror or exc}",
            hint="The archive was not kept. Check the disk (and the kernel log for I/O errors).",
        ) from exc
    seconds = time.monotonic() - started
    if code != 0 or stderr.strip():
        raise BackupFailed(
            f"verification failed: pg_restore could not read {path} back: "
            f"{_first_line(stderr) or f'exit code {code}'}",
            hint="The archive is truncated or corrupt; it was not kept. Check the disk and pg_dump's output.",
        )
    return Verification(
        digest,
        size,
        files,
        seconds,
        f"pg_restore --file=/dev/null read every data block of {size} bytes in {seconds:.2f} s",
    )


def _read_back_directory(
    path: Path, pg_restore: Path, errors: IO[bytes], poll: Callable[[], None]
) -> tuple[str, int, dict[str, str] | None, int]:
    """pg_restore reads the files of a directory archive itself; they are hashed meanwhile (another process,
    another core): (sha256, size, per-file digests, pg_restore's exit code)."""
    with _child(
        [str(pg_restore), "--format=directory", "--file=/dev/null", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=errors,
    ) as proc:
        digest, size, files = hash_archive(path, poll)
        code = _wait(proc, poll)
    return digest, size, files, code


def _read_back_custom(
    path: Path, pg_restore: Path, errors: IO[bytes], poll: Callable[[], None]
) -> tuple[str, int, int]:
    """One read of a custom archive: hashed, and streamed into pg_restore, which reads it sequentially. On
    any error pg_restore is killed (it would wait for the end of its input forever). (sha256, size,
    pg_restore's exit code)."""
    h = hashlib.sha256()
    size = 0
    with _pg_restore_reading_stdin(pg_restore, errors) as proc:
        feeding = True
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                poll()
                h.update(chunk)
                size += len(chunk)
                if feeding:
                    try:
                        proc.stdin.write(chunk)
                    except BrokenPipeError:
                        feeding = False  # pg_restore stopped; its exit code says why
        with contextlib.suppress(OSError):
            proc.stdin.close()
        code = _wait(proc, poll)
    return h.hexdigest(), size, code
