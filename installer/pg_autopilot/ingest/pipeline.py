"""One codebase ingested: list, hash, parse and chunk (on every core), write, then embed.

The steps, and what makes each one safe to stop at any moment:

1. The codebase's advisory lock, on a session of its own: a second ingest of the same codebase
   waits for the first (and then finds nothing to do), never interleaves with it.
2. The listing (git's, or a walk that never leaves the root). A root that is gone or that git
   refuses fails the run before anything is written: a vanished tree is never taken for a tree
   whose every file was deleted. Likewise the files below a directory the walk cannot read are
   left as they were, not marked removed.
3. Each file is read and hashed here; a file whose hash and chunker version are recorded is not
   parsed again. The others are parsed in a pool of processes (tree-sitter holds the GIL), which
   also build their rows, and written as they come back by a writer thread, each file whole, several
   per transaction, while this process goes on reading and handing out files.
4. Files that were recorded but are no longer listed are marked removed.
5. Embedding (:mod:`.embed`): the current chunks without a vector of the configured model, each
   key embedded once (a vector already stored for the same model and text is reused). The
   embedder may load its model on its first call: a run with nothing to embed never loads it.

Bad input never stops the run: each file that is not ingested (binary, too large, unreadable, a
symlink loop, ...) is recorded as skipped with its reason, and the summary line counts the reasons
and names the first file of each that calls for a look.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from ..embeddings import Embedder
from .chunker import CHUNKER_VERSION
from .embed import embed_pending
from .files import (
    BROKEN_SYMLINK,
    NOT_REGULAR,
    OUTSIDE_ROOT,
    SYMLINK_LOOP,
    UNREADABLE,
    CodebaseError,
    FileContent,
    Skip,
    is_git_work_tree,
    list_files,
    read_file,
)
from .languages import language_for_path
from .rows import PreparedFile, exit_with_parent, parse_file
from .store import (
    FileWrite,
    KnownFile,
    ingest_lock_key,
    known_files,
    mark_removed,
    skip_reason,
    write_files,
    write_skipped,
)

UNKNOWN_LANGUAGE = "unknown language"
NAME_NOT_UTF8 = "file name not UTF-8"
COMMIT_EVERY_FILES = 200
COMMIT_EVERY_SECONDS = 1.0
IN_FLIGHT_PER_PROCESS = 16
# Skip reasons that call for a look (the others are what a source tree is expected to hold): the
# summary line names the first file of each.
WORTH_A_LOOK = (UNREADABLE, SYMLINK_LOOP, BROKEN_SYMLINK, OUTSIDE_ROOT, NOT_REGULAR)

Connect = Callable[[], psycopg.Connection]
Progress = Callable[..., None]


class IngestCancelled(Exception):
    """The job was cancelled or timed out: what was written is kept, the next run goes on from there."""


@dataclass
class IngestSummary:
    codebase: str
    files: int = 0  # listed and selected
    parsed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: Counter = field(default_factory=Counter)  # by reason
    first_skipped: dict[str, str] = field(default_factory=dict)  # reason -> its first file, with detail
    unreadable_directories: list[str] = field(default_factory=list)  # "path: error"
    chunks: int = 0
    syntax_errors: int = 0  # files with at least one
    not_utf8: int = 0
    embedded: int = 0
    reused_embeddings: int = 0
    embedding_model: str | None = None
    commit: str | None = None
    seconds: float = 0.0

    def line(self) -> str:
        """The run's one summary line (job_runs.message, the CLI's last line)."""
        skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        parts = [
            f"{self.codebase}: {self.files} files",
            f"{self.parsed} parsed",
            f"{self.unchanged} unchanged",
            f"{self.removed} removed",
            f"{sum(self.skipped.values())} skipped" + (f" ({skipped})" if skipped else ""),
            f"{self.chunks} chunks",
            f"{self.embedded} embedded, {self.reused_embeddings} reused ({self.embedding_model})",
        ]
        if self.syntax_errors:
            parts.append(f"{self.syntax_errors} with syntax errors")
        if self.not_utf8:
            parts.append(f"{self.not_utf8} not UTF-8")
        if self.unreadable_directories:
            count = len(self.unreadable_directories)
            parts.append(
                f"{count} unreadable {'directory' if count == 1 else 'directories'}, whose files are kept"
                f" as they were (first: {self.unreadable_directories[0]})"
            )
        line = "; ".join(parts) + f" in {self.seconds:.1f} s"
        if self.first_skipped:
            line += "; to check: " + ", ".join(self.first_skipped[r] for r in sorted(self.first_skipped))
        return line

    def as_json(self) -> dict:
        data = asdict(self)
        data["skipped"] = dict(self.skipped)
        return data


@dataclass(frozen=True)
class Codebase:
    name: str
    root_path: str
    include_globs: tuple[str, ...]
    exclude_globs: tuple[str, ...]
    enabled: bool


def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    # forkserver: the runner is multi-threaded, and a fork of a threaded process may inherit held locks.
    # The pool processes import .rows only (not this module, nor psycopg); the fork server imports it
    # once, when it starts, and each process it forks has it.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([parse_file.__module__])
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with_parent)


class Ingest:
    """One run over one codebase (see the module's docstring)."""

    def __init__(
        self,
        connect: Connect,
        codebase: Codebase,
        embedder: Embedder | None,
        *,
        size_cap: int,
        progress: Progress | None = None,
        cancelled: threading.Event | None = None,
        processes: int | None = None,
    ):
        self._connect = connect
        self._codebase = codebase
        self._embedder = embedder
        self._size_cap = size_cap
        self._progress = progress or (lambda **fields: None)
        self._cancelled = cancelled or threading.Event()
        self._processes = processes or os.cpu_count() or 1
        self.summary = IngestSummary(codebase.name, embedding_model=embedder.model_id if embedder else None)

    def run(self) -> IngestSummary:
        started = time.monotonic()
        with self._locked() as conn:
            paths, listing_skips, unreadable = self._list()
            known = known_files(conn, self._codebase.name)
            self._ingest_files(conn, paths, listing_skips, known)
            seen = {*paths, *(skip.path for skip in listing_skips)}
            gone = sorted(
                path
                for path, row in known.items()
                if row.status != "removed" and path not in seen and not _below(path, unreadable)
            )
            mark_removed(conn, self._codebase.name, gone)
            conn.commit()
            self.summary.removed = len(gone)
            if self._embedder is not None:
                self.summary.embedded, self.summary.reused_embeddings = embed_pending(
                    conn, self._codebase.name, self._embedder, self._progress, self._check_cancelled
                )
            self.summary.commit = _head_commit(self._codebase.root_path)
            self.summary.seconds = time.monotonic() - started
            _record_run(conn, self.summary)
        return self.summary

    def _list(self) -> tuple[list[str], list[Skip], list[str]]:
        """The selected files; the entries the listing left out, and why (recorded as skipped); the
        directories the walk could not read. A name that is not UTF-8 cannot be stored (text
        columns): counted as skipped, not recorded."""
        paths: list[str] = []
        skips: list[Skip] = []
        unreadable: list[str] = []

        def on_error(directory: str, error: OSError) -> None:
            if directory == ".":  # nothing listed at all: not to be taken for a tree emptied
                raise CodebaseError(
                    f"cannot read the codebase root {self._codebase.root_path!r}: {error.strerror or error}"
                )
            unreadable.append(directory)
            shown = directory.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            self.summary.unreadable_directories.append(f"{shown}: {error.strerror or error}")

        for path in list_files(
            self._codebase.root_path,
            self._codebase.include_globs,
            self._codebase.exclude_globs,
            on_error=on_error,
            on_skip=skips.append,
        ):
            paths.append(path)
        storable = [item for item in [*paths, *skips] if _storable(item)]
        if not_storable := len(paths) + len(skips) - len(storable):
            self.summary.skipped[NAME_NOT_UTF8] += not_storable
        self.summary.files = len(paths) + len(skips)
        return (
            [item for item in storable if isinstance(item, str)],
            [item for item in storable if isinstance(item, Skip)],
            unreadable,
        )

    @contextmanager
    def _locked(self) -> Iterator[psycopg.Connection]:
        """A connection holding the codebase's ingest lock for the run (released with the session)."""
        with self._connect() as conn:
            key = ingest_lock_key(conn, self._codebase.name)
            if not conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
                self._progress(final=True, waiting="another ingest of this codebase is running")
                conn.execute("SELECT pg_catalog.pg_advisory_lock(%s)", [key])
            conn.commit()
            try:
                yield conn
            finally:
                if not conn.closed:
                    conn.rollback()
                    conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [key])
                    conn.commit()

    def _ingest_files(
        self,
        conn: psycopg.Connection,
        paths: list[str],
        listing_skips: list[Skip],
        known: dict[str, KnownFile],
    ) -> None:
        with _BatchWriter(conn, self._codebase.name) as writer:
            self._ingest_files_with(writer, paths, listing_skips, known)

    def _ingest_files_with(
        self,
        writer: _BatchWriter,
        paths: list[str],
        listing_skips: list[Skip],
        known: dict[str, KnownFile],
    ) -> None:
        for skip in listing_skips:
            self._skip(skip, writer, known.get(skip.path))
        with _pool(self._processes) as pool:
            in_flight: dict[concurrent.futures.Future, FileContent] = {}
            limit = self._processes * IN_FLIGHT_PER_PROCESS
            for done, path in enumerate(paths, 1):
                self._check_cancelled(writer)
                content = self._read(path, known.get(path), writer)
                if content is not None:
                    future = pool.submit(parse_file, self._codebase.name, content.path, content.data)
                    in_flight[future] = content
                while len(in_flight) >= limit:
                    self._collect(in_flight, writer, known, concurrent.futures.FIRST_COMPLETED)
                self._progress(
                    files=done, of=len(paths), parsed=self.summary.parsed, chunks=self.summary.chunks
                )
            while in_flight:
                self._collect(in_flight, writer, known, concurrent.futures.ALL_COMPLETED)
        writer.commit()

    def _read(self, path: str, known: KnownFile | None, writer: _BatchWriter) -> FileContent | None:
        """The file's content when it must be parsed; None when it is unchanged or skipped."""
        content = read_file(self._codebase.root_path, path, self._size_cap)
        if isinstance(content, Skip):
            self._skip(content, writer, known)
            return None
        if (
            known is not None
            and known.status == "ingested"
            and known.content_hash == content.sha256
            and known.chunker_version == CHUNKER_VERSION
        ):
            self.summary.unchanged += 1
            return None
        if language_for_path(path) is None:
            self._skip(Skip(path, UNKNOWN_LANGUAGE), writer, known, content.sha256, len(content.data))
            return None
        return content

    def _skip(
        self, skip: Skip, writer: _BatchWriter, known: KnownFile | None, file_hash: str = "", size: int = 0
    ) -> None:
        self.summary.skipped[skip.reason] += 1
        if skip.reason in WORTH_A_LOOK:
            self.summary.first_skipped.setdefault(skip.reason, str(skip))
        if (
            known is not None
            and known.status == "skipped"
            and known.skip_reason == skip_reason(skip)
            and known.content_hash == file_hash
        ):
            return  # recorded as skipped already, for the same reason: nothing changed
        writer.write(lambda conn: write_skipped(conn, self._codebase.name, skip, file_hash, size))

    def _collect(self, in_flight: dict, writer: _BatchWriter, known: dict[str, KnownFile], when: str) -> None:
        done, _ = concurrent.futures.wait(in_flight, return_when=when)
        for future in done:
            content = in_flight.pop(future)
            prepared: PreparedFile = future.result()
            # a file the run did not find recorded has no chunks or symbols to replace (the lock
            # keeps other ingests of the codebase out)
            writer.write_file(FileWrite(prepared, content.sha256, len(content.data), content.path in known))
            self.summary.parsed += 1
            self.summary.chunks += prepared.chunks
            self.summary.syntax_errors += prepared.syntax_errors > 0
            self.summary.not_utf8 += not _is_utf8(content.data)

    def _check_cancelled(self, writer: _BatchWriter | None = None) -> None:
        if self._cancelled.is_set():
            if writer is not None:
                writer.commit()  # every file written so far is whole: keep them
            raise IngestCancelled(f"ingest of {self._codebase.name} stopped (cancelled or past its timeout)")


class _BatchWriter:
    """Whole files, several per transaction: committed every COMMIT_EVERY_FILES files or
    COMMIT_EVERY_SECONDS seconds, whichever comes first. A thread of its own writes each batch (one
    transaction) while the caller prepares the next one; the connection is the writer's until
    :meth:`commit` (which waits for every batch handed over, and raises the error of one that
    failed) or the end of the ``with`` block."""

    def __init__(self, conn: psycopg.Connection, codebase: str):
        self._conn = conn
        self._codebase = codebase
        self._steps: list[Callable[[psycopg.Connection], None]] = []
        self._files: list[FileWrite] = []
        self._since = time.monotonic()
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ingest-writer")
        self._pending: collections.deque[concurrent.futures.Future] = collections.deque()
        self._failed = False  # a batch failed: the transaction is lost, the batches after it are not written

    def __enter__(self) -> _BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.shutdown(wait=True)  # nothing uses the connection once this returns

    def write(self, step: Callable[[psycopg.Connection], None]) -> None:
        self._steps.append(step)
        self._maybe_hand_over()

    def write_file(self, item: FileWrite) -> None:
        self._files.append(item)
        self._maybe_hand_over()

    def commit(self) -> None:
        self._hand_over()
        while self._pending:
            self._pending.popleft().result()

    def _maybe_hand_over(self) -> None:
        if (
            len(self._steps) + len(self._files) >= COMMIT_EVERY_FILES
            or time.monotonic() - self._since >= COMMIT_EVERY_SECONDS
        ):
            self._hand_over()

    def _hand_over(self) -> None:
        self._since = time.monotonic()
        if not self._steps and not self._files:
            return
        steps, files, self._steps, self._files = self._steps, self._files, [], []
        self._pending.append(self._thread.submit(self._write, steps, files))
        while len(self._pending) > 1:  # one batch written, the next one waiting: enough ahead
            self._pending.popleft().result()

    def _write(self, steps: list[Callable[[psycopg.Connection], None]], files: list[FileWrite]) -> None:
        if self._failed:
            raise IngestCancelled("not written: an earlier batch failed")
        try:
            for step in steps:
                step(self._conn)
            write_files(self._conn, self._codebase, files)
            self._conn.commit()
        except BaseException:
            self._failed = True
            raise


def _storable(item: str | Skip) -> bool:
    """Whether a path can be stored (text columns hold UTF-8 only; a listing may give a name in
    another encoding, decoded with surrogate escapes)."""
    try:
        (item.path if isinstance(item, Skip) else item).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _below(path: str, directories: list[str]) -> bool:
    return any(path.startswith(directory.rstrip("/") + "/") for directory in directories)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _head_commit(root: str) -> str | None:
    """HEAD of the work tree, or None (not a work tree, or no commit yet)."""
    if not is_git_work_tree(root):
        return None
    result = subprocess.run(
        ["git", "-C", root, "rev-parse", "--verify", "--quiet", "HEAD"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _record_run(conn: psycopg.Connection, summary: IngestSummary) -> None:
    conn.execute(
        "UPDATE autopilot.codebases AS c SET last_commit = %s, last_ingested_at = now(),"
        " last_summary = %s, updated_at = now() WHERE c.name = %s",
        [summary.commit, Jsonb(summary.as_json()), summary.codebase],
    )
    conn.commit()
