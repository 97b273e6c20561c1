"""pg_dump, with the custom archive read back while it is written."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackupFailed
from .archives import _CHUNK, _no_poll, hash_archive
from .processes import _child, _kill, _run, _wait
from .verify import Verification, _pg_restore_reading_stdin, verify_archive

# Test hook: called in the pg_dump child before exec (e.g. to set RLIMIT_FSIZE and simulate a full disk).
child_setup: Callable[[], None] | None = None


@dataclass
class _Dump:
    returncode: int
    stderr: str
    streamed_bytes: int | None  # custom format: bytes pg_restore read back, complete, while pg_dump wrote
    after_dump_seconds: float  # how long the read-back went on after pg_dump had exited


def _dump(
    argv: list[str],
    env: dict[str, str],
    partial: Path,
    fmt: str,
    pg_restore: Path,
    poll: Callable[[], None] = _no_poll,
) -> _Dump:
    """Run pg_dump; for the custom format, read the archive back *while* it is written.

    pg_dump writes a custom archive sequentially (header, table of contents, then every data block) and
    at the end rewrites only the table of contents in place, to fill in the data offsets. So the file is
    tailed from disk into ``pg_restore --file=/dev/null`` (which reads a pipe sequentially and needs no
    offsets) on another core while pg_dump is still compressing: every data block is read back exactly as
    it stays in the file. ``_confirm_streamed`` then checks the final file (size, sha256, its rewritten
    table of contents); anything unexpected falls back to a full read-back of the final file.

    ``poll`` is called all along (it raises to stop the backup: pg_dump and pg_restore are then killed)."""
    with tempfile.TemporaryFile() as dump_errors:
        with _child(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=dump_errors,
            env=env,
            umask=0o077,
            preexec_fn=child_setup,
        ) as proc:
            streamed = None
            after = 0.0
            if fmt == "custom":
                streamed, after = _tail_into_pg_restore(proc, partial, pg_restore, poll)
            code = _wait(proc, poll)
        dump_errors.seek(0)
        stderr = dump_errors.read().decode(errors="replace")
    return _Dump(code, stderr, streamed if code == 0 else None, after)


def _tail_into_pg_restore(
    proc: subprocess.Popen, partial: Path, pg_restore: Path, poll: Callable[[], None] = _no_poll
) -> tuple[int | None, float]:
    """(bytes read back, seconds after pg_dump's exit), or (None, ...) when the read-back did not pass."""
    with tempfile.TemporaryFile() as errors:
        size, feeding, dump_exited_at = 0, True, None
        with _pg_restore_reading_stdin(pg_restore, errors) as restore:
            with contextlib.suppress(OSError):
                # pg_dump (and the server behind it) first: on a busy machine the read-back yields and
                # catches up at the end rather than slowing the dump
                os.setpriority(os.PRIO_PROCESS, restore.pid, 10)
            f = None
            while f is None:  # pg_dump creates the file first thing
                try:
                    f = open(partial, "rb")  # noqa: SIM115 - closed below
                except FileNotFoundError:
                    if proc.poll() is not None:
                        break
                    poll()
                    time.sleep(0.005)
            if f is not None:
                with f:
                    while True:
                        poll()
                        chunk = f.read(_CHUNK)
                        if chunk:
                            size += len(chunk)
                            if feeding:
                                try:
                                    restore.stdin.write(chunk)
                                except BrokenPipeError:
                                    feeding = False  # pg_restore gave up; its exit code says why
                            continue
                        if dump_exited_at is not None:
                            break
                        if proc.poll() is not None:
                            # pg_dump has exited: one more pass reads everything it wrote
                            dump_exited_at = time.monotonic()
                            continue
                        time.sleep(0.01)
            if dump_exited_at is None:
                _kill(restore)  # pg_dump failed before writing anything
            with contextlib.suppress(OSError):
                restore.stdin.close()
            code = _wait(restore, poll)
        errors.seek(0)
        failed = code != 0 or errors.read().strip() or not feeding or dump_exited_at is None
    after = time.monotonic() - dump_exited_at if dump_exited_at is not None else 0.0
    return (None if failed else size), after


def _confirm_streamed(
    archive: Path,
    pg_restore: Path,
    streamed_bytes: int,
    after_dump: float,
    poll: Callable[[], None] = _no_poll,
) -> Verification:
    """The final file is what was read back (same size), its rewritten table of contents reads, and its
    sha256 is taken; otherwise a full read-back of the final file decides."""
    started = time.monotonic()
    try:
        digest, size, _ = hash_archive(archive, poll)
        listing = _run([str(pg_restore), "--list", str(archive)])
    except OSError as exc:
        raise BackupFailed(
            f"verification failed: cannot read {archive} back: {exc.strerror or exc}",
            hint="The archive was not kept. Check the disk (and the kernel log for I/O errors).",
        ) from exc
    if size != streamed_bytes or listing.returncode != 0 or listing.stderr.strip():
        return verify_archive(archive, pg_restore, poll)
    seconds = after_dump + time.monotonic() - started
    return Verification(
        digest,
        size,
        None,
        seconds,
        f"pg_restore --file=/dev/null read every data block of {size} bytes back from the file as pg_dump "
        f"wrote it; the final table of contents lists; {seconds:.2f} s after pg_dump",
    )
