"""What code-ingest writes: a file's chunks, symbols and row, replaced atomically.

Each file is written whole in one transaction (several files may share one, never a part of a
file): its current chunks are marked superseded (code-chunk-cleanup deletes them after a
retention), the new ones inserted, its symbols replaced, its row upserted with the content hash
that lets the next run skip it. A run killed between two commits leaves every file either as it
was or as it is now, and the next run resumes with the files whose hash is not recorded yet.

The rows are built where the file was parsed (:func:`.rows.prepare`, in a pool process) as COPY text, and
the files of a transaction are written together (:func:`write_files`): one COPY per table and one
pipelined batch of upserts, not a round trip per row or per file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from .chunker import CHUNKER_VERSION, ParsedFile
from .files import Skip
from .modules import module_name
from .rows import PreparedFile, prepare


@dataclass(frozen=True, slots=True)
class KnownFile:
    content_hash: str
    chunker_version: str | None
    status: str
    skip_reason: str | None


def known_files(conn: psycopg.Connection, codebase: str) -> dict[str, KnownFile]:
    rows = conn.execute(
        "SELECT f.file_path, f.content_hash, f.chunker_version, f.status, f.skip_reason"
        " FROM autopilot.code_files AS f WHERE f.codebase = %s",
        [codebase],
    ).fetchall()
    return {row[0]: KnownFile(*row[1:]) for row in rows}


def skip_reason(skip: Skip) -> str:
    return skip.reason + (f" ({skip.detail})" if skip.detail else "")


def ingest_lock_key(conn: psycopg.Connection, codebase: str) -> int:
    """The advisory lock an ingest of ``codebase`` holds for its whole run (graph-populate waits on
    it, so the graph never takes half a run)."""
    return conn.execute("SELECT autopilot._job_lock_key(%s)", [f"code-ingest:{codebase}"]).fetchone()[0]


# One file's symbols. A file without a row has none (the foreign key), and the EXISTS, uncorrelated, is
# a one-time filter: the scan does not run at all. It matters for a codebase the statistics do not know
# yet (its first ingest into a table that holds other codebases): both indexes of code_symbols lead
# with the codebase, the planner may take (codebase, role, name) and filter the paths, and each new
# file written would read every symbol of the codebase written so far.
DELETE_FILE_SYMBOLS = (
    "DELETE FROM autopilot.code_symbols AS s WHERE s.codebase = %(codebase)s AND s.file_path = %(path)s"
    " AND EXISTS (SELECT FROM autopilot.code_files AS f"
    " WHERE f.codebase = %(codebase)s AND f.file_path = %(path)s)"
)


@dataclass(frozen=True, slots=True)
class FileWrite:
    """A prepared file to write, with its content's hash and size; ``replaces`` when the codebase may
    hold rows of it already (a file the run found recorded): its chunks are superseded and its symbols
    deleted first. A file new to the codebase has neither, and skips both statements."""

    prepared: PreparedFile
    file_hash: str
    size: int
    replaces: bool = True


COPY_CHUNKS = (
    "COPY autopilot.code_chunks (codebase, file_path, chunk_index, content, content_hash,"
    " start_line, end_line, symbol, kind, language) FROM STDIN"
)
COPY_SYMBOLS = (
    "COPY autopilot.code_symbols (codebase, file_path, role, name, kind, line, occurrences) FROM STDIN"
)
UPSERT_FILE = (
    "INSERT INTO autopilot.code_files AS f (codebase, file_path, language, module_name, content_hash,"
    " size_bytes, chunker_version, syntax_errors, status, skip_reason, graph_pending)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'ingested', NULL, true)"
    " ON CONFLICT (codebase, file_path) DO UPDATE SET language = excluded.language,"
    " module_name = excluded.module_name, content_hash = excluded.content_hash,"
    " size_bytes = excluded.size_bytes, chunker_version = excluded.chunker_version,"
    " syntax_errors = excluded.syntax_errors, status = 'ingested', skip_reason = NULL,"
    " ingested_at = now(), graph_pending = true"
)


def write_parsed(
    conn: psycopg.Connection, codebase: str, parsed: ParsedFile, file_hash: str, size: int
) -> None:
    """Replaces the file's chunks and symbols (the caller commits)."""
    write_files(conn, codebase, [FileWrite(prepare(codebase, parsed), file_hash, size)])


def write_files(conn: psycopg.Connection, codebase: str, files: Sequence[FileWrite]) -> None:
    """Replaces the chunks and symbols of several files, each whole (the caller commits): a few
    statements for all of them, whatever their number (the rows go in one COPY per table)."""
    if not files:
        return
    replaced = [item.prepared.path for item in files if item.replaces]
    with conn.cursor() as cur:
        if replaced:
            with conn.pipeline():
                for path in replaced:
                    cur.execute(SUPERSEDE_FILE, [codebase, path])
        with cur.copy(COPY_CHUNKS) as copy:
            for item in files:
                if item.prepared.chunk_rows:
                    copy.write(item.prepared.chunk_rows)
        if replaced:
            with conn.pipeline():
                for path in replaced:
                    cur.execute(DELETE_FILE_SYMBOLS, {"codebase": codebase, "path": path})
        cur.executemany(
            UPSERT_FILE,
            [
                (codebase, p.path, p.language, module_name(p.path, p.language), item.file_hash, item.size,
                 CHUNKER_VERSION, p.syntax_errors)
                for item in files
                for p in (item.prepared,)
            ],
        )  # fmt: skip
        with cur.copy(COPY_SYMBOLS) as copy:
            for item in files:
                if item.prepared.symbol_rows:
                    copy.write(item.prepared.symbol_rows)


def write_skipped(
    conn: psycopg.Connection, codebase: str, skip: Skip, file_hash: str = "", size: int = 0
) -> None:
    """A file that is not (or no longer) ingested: its chunks superseded, its symbols gone, the reason
    recorded (the caller commits)."""
    _supersede(conn, codebase, [skip.path])
    conn.execute(DELETE_FILE_SYMBOLS, {"codebase": codebase, "path": skip.path})
    conn.execute(
        "INSERT INTO autopilot.code_files AS f (codebase, file_path, content_hash, size_bytes, status,"
        " skip_reason, chunker_version, graph_pending)"
        " VALUES (%s, %s, %s, %s, 'skipped', %s, %s, true)"
        " ON CONFLICT (codebase, file_path) DO UPDATE SET content_hash = excluded.content_hash,"
        " size_bytes = excluded.size_bytes, status = 'skipped', skip_reason = excluded.skip_reason,"
        " chunker_version = excluded.chunker_version, syntax_errors = 0, ingested_at = now(),"
        " graph_pending = true",
        [
            codebase,
            skip.path,
            file_hash,
            size,
            skip_reason(skip),
            CHUNKER_VERSION,
        ],
    )


def mark_removed(conn: psycopg.Connection, codebase: str, paths: Sequence[str]) -> None:
    """Files gone from the tree: chunks superseded, symbols deleted, rows kept as removed (the caller
    commits)."""
    if not paths:
        return
    _supersede(conn, codebase, paths)
    conn.execute(
        "DELETE FROM autopilot.code_symbols AS s WHERE s.codebase = %s AND s.file_path = ANY(%s)",
        [codebase, list(paths)],
    )
    conn.execute(
        "UPDATE autopilot.code_files AS f SET status = 'removed', skip_reason = NULL, graph_pending = true,"
        " ingested_at = now() WHERE f.codebase = %s AND f.file_path = ANY(%s) AND f.status <> 'removed'",
        [codebase, list(paths)],
    )


# One file's current chunks, by equality on both columns of the index: with ``file_path = ANY(...)``, the
# generic plan psycopg's prepared statement gets while the table is small (a first ingest) reads the
# index by codebase alone and filters the paths, so every file written scanned all the codebase's
# current chunks (quadratic, until autovacuum's analyze happened to replan it).
SUPERSEDE_FILE = (
    "UPDATE autopilot.code_chunks AS c SET superseded_at = now()"
    " WHERE c.codebase = %s AND c.file_path = %s AND c.superseded_at IS NULL"
)


def _supersede(conn: psycopg.Connection, codebase: str, paths: Sequence[str]) -> None:
    if len(paths) == 1:
        conn.execute(SUPERSEDE_FILE, [codebase, paths[0]])
        return
    conn.execute(
        "UPDATE autopilot.code_chunks AS c SET superseded_at = now()"
        " WHERE c.codebase = %s AND c.file_path = ANY(%s) AND c.superseded_at IS NULL",
        [codebase, list(paths)],
    )
