"""template-embed: the knowledge artifacts embedded with the configured embedder (``embeddings.model``, the
embedder code ingest uses), each only when its text or the model changed.

An artifact's text is ``autopilot._knowledge_text(artifact_type, name, content)``; its
``embedding_hash`` is sha256 of the model id, a line break and that text, computed by the database
when it picks the artifacts to embed and by this module when it writes a vector, so a run over
artifacts already embedded with their current text and model embeds nothing (and loads no model).
Vectors are written batch by batch, each batch a transaction under the artifacts' lock; a vector
whose artifact's text changed since it was read is not written (the next run embeds the new text).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from ..embeddings import Embedder
from . import check_cancelled
from .templates import lock

BATCH = 64

_STALE = (
    "a.embedding_hash IS DISTINCT FROM pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to("
    "%(model)s || E'\\n' || autopilot._knowledge_text(a.artifact_type, a.name, a.content), 'UTF8')), 'hex')"
)


def embedding_hash(model_id: str, text: str) -> str:
    return hashlib.sha256(f"{model_id}\n{text}".encode()).hexdigest()


@dataclass
class EmbedResult:
    model_id: str
    semantic: bool
    artifacts: int = 0
    embedded: int = 0
    changed_meanwhile: int = 0

    def line(self) -> str:
        kind = "semantic" if self.semantic else "lexical"
        line = (
            f"template-embed ({self.model_id}, {kind}): "
            f"{self.embedded} of {self.artifacts} artifacts embedded, "
            f"{self.artifacts - self.embedded - self.changed_meanwhile} up to date"
        )
        if self.changed_meanwhile:
            line += f", {self.changed_meanwhile} changed meanwhile (embedded by the next run)"
        return line


def pending(conn: psycopg.Connection, model_id: str) -> int:
    """How many artifacts have no embedding of ``model_id`` for their current text."""
    return conn.execute(
        f"SELECT count(*) FROM autopilot.knowledge_artifacts AS a WHERE {_STALE}", {"model": model_id}
    ).fetchone()[0]


def embed_artifacts(
    conn: psycopg.Connection,
    embedder: Embedder,
    *,
    progress: Callable[..., None] | None = None,
    cancelled: threading.Event | None = None,
) -> EmbedResult:
    """Embeds the artifacts whose text or model changed; ``conn`` is not in autocommit mode."""
    model = embedder.model_id
    result = EmbedResult(model, bool(embedder.semantic))
    result.artifacts = conn.execute("SELECT count(*) FROM autopilot.knowledge_artifacts").fetchone()[0]
    total = pending(conn, model)
    conn.commit()
    after = 0
    while True:
        check_cancelled(cancelled, "template-embed")
        rows = conn.execute(
            "SELECT a.id, autopilot._knowledge_text(a.artifact_type, a.name, a.content)"
            f" FROM autopilot.knowledge_artifacts AS a WHERE a.id > %(after)s AND {_STALE}"
            " ORDER BY a.id LIMIT %(limit)s",
            {"after": after, "model": model, "limit": BATCH},
        ).fetchall()
        conn.commit()
        if not rows:
            return result
        after = rows[-1][0]
        vectors = embedder.embed([text for _, text in rows])  # outside any transaction: no lock held
        with conn.transaction():
            lock(conn)
            written = _write(conn, model, rows, vectors)
        result.embedded += written
        result.changed_meanwhile += len(rows) - written
        if progress is not None:
            progress(embedded=result.embedded, of=total)


def _write(
    conn: psycopg.Connection, model: str, rows: list[tuple[int, str]], vectors: list[list[float]]
) -> int:
    """Writes each vector if its artifact's text is still the one embedded; returns how many."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE autopilot.knowledge_artifacts AS a"
            " SET embedding = %s::real[], embedding_model = %s, embedding_hash = %s"
            " WHERE a.id = %s AND autopilot._knowledge_text(a.artifact_type, a.name, a.content) = %s",
            [
                (vector, model, embedding_hash(model, text), artifact_id, text)
                for (artifact_id, text), vector in zip(rows, vectors, strict=True)
            ],
        )
        return cur.rowcount  # the sum over the statements
