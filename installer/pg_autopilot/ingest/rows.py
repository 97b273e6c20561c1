"""A parsed file's rows, as code-ingest writes them: built in the parse pool's processes.

Each file's chunk and symbol rows are formatted here as COPY text, so that the process writing them
(:mod:`.store`) sends them as they are, with nothing to unpickle but a few strings. This module is
what a pool process imports: it keeps away from the database client (importing psycopg in every
pool process would cost more than parsing a hundred files).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from .chunker import CHUNKER_VERSION, ParsedFile, chunk_source
from .languages import language_for_path
from .modules import import_names


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """A parsed file as written: its rows in COPY text format, built where it was parsed (a pool
    process), so that the process writing sends them as they are."""

    path: str
    language: str
    syntax_errors: int
    chunks: int  # rows in chunk_rows
    chunk_rows: str  # code_chunks (store.COPY_CHUNKS' columns)
    symbol_rows: str  # code_symbols (store.COPY_SYMBOLS' columns)


def content_hash(text: str) -> str:
    """A chunk's own hash: its text as the chunker cut it (the chunker version is in the key)."""
    return hashlib.sha256(f"{CHUNKER_VERSION}\0{text}".encode()).hexdigest()


def prepare(codebase: str, parsed: ParsedFile) -> PreparedFile:
    """The file's chunk and symbol rows, as COPY text. References are counted: one row per name and
    kind, at its first line, with ``occurrences`` (a file calls the same names again and again)."""
    # every row starts with the codebase and the path: escaped once per file
    prefix = f"{_copy_text(codebase)}\t{_copy_text(parsed.path)}\t"
    chunk_rows = "".join(
        prefix + _copy_line(
            index, _clean(chunk.text), content_hash(chunk.text), chunk.start_line, chunk.end_line,
            chunk.symbol, chunk.kind, chunk.language,
        )
        for index, chunk in enumerate(parsed.chunks)
    )  # fmt: skip
    symbol_rows = "".join(prefix + _copy_line(*row) for row in _symbol_rows(parsed))
    return PreparedFile(
        parsed.path, parsed.language, parsed.syntax_errors, len(parsed.chunks), chunk_rows, symbol_rows
    )


def parse_file(codebase: str, path: str, data: bytes) -> PreparedFile:
    """In a pool process: the file's chunks and tags, as the rows to write."""
    language = language_for_path(path)
    assert language is not None  # the caller checked
    return prepare(codebase, chunk_source(path, data, language))


def exit_with_parent() -> None:
    """In a pool process: exit as soon as the process that started the pool is gone. Killed (SIGKILL,
    the OOM killer), that process cannot shut its pool down, and a pool process would wait for work
    forever (and keep the fork server alive with it)."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's end of a pipe closes, that is when it exits
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _symbol_rows(parsed: ParsedFile) -> Iterable[tuple]:
    """(role, name, kind, line, occurrences) of the file's definitions, references (counted by name and
    kind) and imports (one per module name)."""
    path = parsed.path
    for definition in parsed.definitions:
        yield "definition", _clean(definition.symbol), definition.kind, max(definition.line, 1), 1
    references: dict[tuple[str, str], list[int]] = {}
    for reference in parsed.references:
        seen = references.get((reference.name, reference.kind))
        if seen is None:
            references[reference.name, reference.kind] = [reference.line, 1]
        else:
            seen[1] += 1
    for (name, kind), (line, occurrences) in references.items():
        yield "reference", _clean(name), kind, max(line, 1), occurrences
    lines = {}
    for item in parsed.imports:
        for name in import_names(path, parsed.language, (item,)):
            lines.setdefault(name, item.line)
    for name, line in lines.items():
        yield "import", _clean(name), None, max(line, 1), 1


def _copy_text(value: object) -> str:
    """A value in COPY's text format: NULL is \\N; a backslash, newline, carriage return or tab is
    escaped (str, int or None)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        if "\\" in value or "\n" in value or "\r" in value or "\t" in value:  # names, kinds: rarely
            value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
            return value.replace("\t", "\\t")
        return value
    return str(value)


def _copy_line(*values: object) -> str:
    """One row in COPY's text format."""
    return "\t".join(map(_copy_text, values)) + "\n"


def _clean(text: str) -> str:
    """PostgreSQL text cannot hold NUL (a chunk of a file with one decodes it as U+0000)."""
    return text.replace("\0", "\ufffd")
