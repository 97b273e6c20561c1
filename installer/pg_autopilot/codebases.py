"""Codebases: the source trees code-ingest reads (``autopilot codebase add/list/remove/ingest``),
and the code-intelligence queries of the CLI (search, the most central symbols)."""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .embeddings import NAMES, Embedder, HashingEmbedder, get_embedder
from .embeddings import log as embeddings_log
from .embeddings.base import INSTALL_HINT
from .embeddings.minilm import EXTRA_MODULES
from .embeddings.minilm import model_id as minilm_model_id
from .errors import InvalidInput
from .ingest.pipeline import Codebase, Ingest, IngestSummary

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class CodebaseRow:
    name: str
    root_path: str
    include_globs: list[str]
    exclude_globs: list[str]
    enabled: bool
    last_commit: str | None
    last_ingested_at: datetime | None
    last_summary: dict[str, Any] | None
    files: int
    chunks: int
    embedded: int


def add(
    conn: psycopg.Connection, name: str, path: str, include: Sequence[str], exclude: Sequence[str]
) -> str:
    """Registers a codebase; returns its root as stored (absolute, symlinks resolved)."""
    if not NAME.match(name):
        raise InvalidInput(
            f"invalid codebase name {name!r}",
            hint="1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit",
        )
    root = os.path.realpath(os.path.expanduser(path))
    if not os.path.isdir(root):
        raise InvalidInput(f"{path!r} is not a directory", hint="give the root of the source tree to ingest")
    with conn.transaction():
        inserted = conn.execute(
            "INSERT INTO autopilot.codebases (name, root_path, include_globs, exclude_globs)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (name) DO NOTHING RETURNING name",
            [name, root, list(include), list(exclude)],
        ).fetchone()
    if inserted is None:
        raise InvalidInput(
            f"codebase {name!r} exists already",
            hint=f"autopilot codebase remove {name} first, or pick another name",
        )
    return root


def list_codebases(conn: psycopg.Connection) -> list[CodebaseRow]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT c.name, c.root_path, c.include_globs, c.exclude_globs, c.enabled, c.last_commit,"
            " c.last_ingested_at, c.last_summary,"
            " (SELECT count(*) FROM autopilot.code_files AS f"
            "   WHERE f.codebase = c.name AND f.status = 'ingested') AS files,"
            " (SELECT count(*) FROM autopilot.code_chunks AS k"
            "   WHERE k.codebase = c.name AND k.superseded_at IS NULL) AS chunks,"
            " (SELECT count(*) FROM autopilot.code_chunks AS k"
            "   WHERE k.codebase = c.name AND k.superseded_at IS NULL AND k.embedding IS NOT NULL)"
            " AS embedded"
            " FROM autopilot.codebases AS c ORDER BY c.name"
        ).fetchall()
    return [CodebaseRow(**row) for row in rows]


def remove(conn: psycopg.Connection, name: str, drop_data: bool) -> dict[str, int]:
    """Unregisters a codebase. Its chunks are superseded (code-chunk-cleanup deletes them after
    code_chunks.obsolete_retention, like any replaced chunk) or, with ``drop_data``, deleted now; its
    files, symbols and graph go with it. One transaction."""
    with conn.transaction():
        if conn.execute("DELETE FROM autopilot.codebases AS c WHERE c.name = %s", [name]).rowcount == 0:
            raise InvalidInput(f"no codebase named {name!r}", hint="autopilot codebase list shows them")
        if drop_data:
            chunks = conn.execute(
                "DELETE FROM autopilot.code_chunks AS k WHERE k.codebase = %s", [name]
            ).rowcount
        else:
            chunks = conn.execute(
                "UPDATE autopilot.code_chunks AS k SET superseded_at = now()"
                " WHERE k.codebase = %s AND k.superseded_at IS NULL",
                [name],
            ).rowcount
        nodes = conn.execute("DELETE FROM autopilot.graph_nodes AS n WHERE n.codebase = %s", [name]).rowcount
    return {"chunks": chunks, "graph_nodes": nodes}


def load(conn: psycopg.Connection, name: str) -> Codebase:
    row = conn.execute(
        "SELECT c.name, c.root_path, c.include_globs, c.exclude_globs, c.enabled"
        " FROM autopilot.codebases AS c WHERE c.name = %s",
        [name],
    ).fetchone()
    if row is None:
        raise InvalidInput(
            f"no codebase named {name!r}", hint="autopilot codebase add NAME PATH registers one"
        )
    return Codebase(row[0], row[1], tuple(row[2]), tuple(row[3]), row[4])


def enabled_names(conn: psycopg.Connection) -> list[str]:
    return [
        name
        for (name,) in conn.execute("SELECT c.name FROM autopilot.codebases AS c WHERE c.enabled ORDER BY 1")
    ]


def configured_embedder(conn: psycopg.Connection) -> Embedder:
    """The embedder the setting embeddings.model names, loaded when first used (:class:`DeferredEmbedder`)."""
    return DeferredEmbedder(conn.execute("SELECT autopilot.get_setting('embeddings.model')").fetchone()[0])


class DeferredEmbedder(Embedder):
    """The embedder ``name`` names (as :func:`pg_autopilot.embeddings.get_embedder` gives it), loaded
    when it first embeds. Loading MiniLM imports torch and sentence-transformers (4-5 s and some
    400 MB on 2 cores): an ingest with nothing to embed (no enabled codebase, an unchanged tree)
    never pays for it. Its model id is known beforehand, without importing anything: ``auto`` is
    minilm when every package of the embeddings extra is installed, hashing otherwise; an extra
    that is installed but fails to import is then minilm's error, not a silent change of model."""

    def __init__(self, name: str):
        choice = name.strip().lower() if isinstance(name, str) else name
        if choice not in NAMES:
            get_embedder(name)  # raises the error naming the choices
        if choice == "auto":
            missing = [module for module in EXTRA_MODULES if importlib.util.find_spec(module) is None]
            choice = "hashing" if missing else "minilm"
            if missing:
                embeddings_log.warning(
                    "embedder: %s (lexical, not semantic): the embeddings extra is not installed"
                    " (%s is missing); for semantic search, %s",
                    HashingEmbedder.model_id,
                    missing[0],
                    INSTALL_HINT,
                )
        self.name = choice
        self.model_id = minilm_model_id() if choice == "minilm" else HashingEmbedder.model_id
        self.semantic = choice == "minilm"  # type: ignore[misc]  # known before the model loads
        self._loaded: Embedder | None = None

    def _embedder(self) -> Embedder:
        if self._loaded is None:
            self._loaded = get_embedder(self.name)
        return self._loaded

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self._embedder().embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._embedder().embed_query(text)


def ingest(
    connect: Callable[[], psycopg.Connection],
    name: str,
    *,
    progress: Callable[..., None] | None = None,
    cancelled: threading.Event | None = None,
    embedder: Embedder | None = None,
) -> IngestSummary:
    """Ingests one codebase (the worker's code; the CLI runs it in the foreground)."""
    with connect() as conn:
        codebase = load(conn, name)
        size_cap = int(
            conn.execute("SELECT autopilot.get_setting('code_ingest.max_file_bytes')").fetchone()[0]
        )
        embedder = embedder or configured_embedder(conn)
    return Ingest(
        connect, codebase, embedder, size_cap=size_cap, progress=progress, cancelled=cancelled
    ).run()


def search(
    conn: psycopg.Connection, embedder: Embedder, text: str, codebase: str | None, limit: int
) -> list[dict[str, Any]]:
    """Hybrid search (autopilot.search_code) with the query embedded by ``embedder``."""
    vector = embedder.embed_query(text)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT s.* FROM autopilot.search_code(%s::real[], %s, %s, %s, %s) AS s",
            [vector, text, codebase, limit, embedder.model_id],
        ).fetchall()


def top_symbols(conn: psycopg.Connection, codebase: str | None, limit: int) -> list[dict[str, Any]]:
    """The most central definitions by PageRank (graph-populate, then pagerank)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT n.codebase, n.kind, n.attributes ->> 'qualified' AS symbol,"
            " n.attributes ->> 'file' AS file,"
            " (n.attributes ->> 'line')::integer AS line, n.pagerank"
            " FROM autopilot.graph_nodes AS n"
            " WHERE n.kind <> 'file' AND n.pagerank IS NOT NULL AND (%s::text IS NULL OR n.codebase = %s)"
            " ORDER BY n.pagerank DESC, n.id LIMIT %s",
            [codebase, codebase, limit],
        ).fetchall()
