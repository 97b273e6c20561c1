"""Embedding the current chunks: each key computed once, for the configured model only.

A chunk's key is sha256(model id, chunk hash), and the chunk hash covers the chunker version and the
text: re-ingesting an unchanged tree embeds nothing (its chunks keep their vectors), one changed
function re-embeds that function only (its other chunks find their key already stored, on the
superseded rows code-chunk-cleanup has not deleted yet or on any other chunk with the same text),
and a new model re-embeds every chunk, lazily, run by run. Vectors are written batch by batch, each
batch committed: a stopped run keeps what it embedded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import psycopg

from ..embeddings import Embedder

BATCH = 256


def embedding_key(model_id: str, chunk_hash: str) -> str:
    return hashlib.sha256(f"{model_id}\0{chunk_hash}".encode()).hexdigest()


def embed_pending(
    conn: psycopg.Connection,
    codebase: str,
    embedder: Embedder,
    progress: Callable[..., None],
    check_cancelled: Callable[[], None],
) -> tuple[int, int]:
    """Embeds the codebase's current chunks that have no vector of ``embedder``'s model. Returns
    (embedded, reused)."""
    model = embedder.model_id
    total = conn.execute(
        "SELECT count(*) FROM autopilot.code_chunks AS c WHERE c.codebase = %s AND c.superseded_at IS NULL"
        " AND c.embedding_model IS DISTINCT FROM %s",
        [codebase, model],
    ).fetchone()[0]
    embedded = reused = 0
    after = 0
    while True:
        check_cancelled()
        rows = conn.execute(
            "SELECT c.id, c.content_hash, c.content FROM autopilot.code_chunks AS c"
            " WHERE c.codebase = %s AND c.superseded_at IS NULL AND c.embedding_model IS DISTINCT FROM %s"
            " AND c.id > %s ORDER BY c.id LIMIT %s",
            [codebase, model, after, BATCH],
        ).fetchall()
        if not rows:
            return embedded, reused
        after = rows[-1][0]
        keys = {row[0]: embedding_key(model, row[1]) for row in rows}
        vectors = _stored(conn, list(set(keys.values())))
        reused += sum(1 for key in keys.values() if key in vectors)
        missing = {keys[i]: text for i, _, text in rows if keys[i] not in vectors}
        if missing:
            fresh = embedder.embed(list(missing.values()))
            vectors.update(zip(missing, fresh, strict=True))
            embedded += len(missing)
        _write(conn, model, [(chunk_id, key, vectors[key]) for chunk_id, key in keys.items()])
        conn.commit()
        progress(embedded=embedded, reused=reused, of=total)


def _stored(conn: psycopg.Connection, keys: list[str]) -> dict[str, list[float]]:
    """Vectors already stored for these keys (any chunk, current or superseded)."""
    return dict(
        conn.execute(
            "SELECT DISTINCT ON (c.embedding_key) c.embedding_key, c.embedding"
            " FROM autopilot.code_chunks AS c WHERE c.embedding_key = ANY(%s) AND c.embedding IS NOT NULL",
            [keys],
        ).fetchall()
    )


def _write(conn: psycopg.Connection, model: str, rows: list[tuple[int, str, list[float]]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE autopilot.code_chunks AS c SET embedding = %s::real[], embedding_model = %s,"
            " embedding_key = %s WHERE c.id = %s",
            [(vector, model, key, chunk_id) for chunk_id, key, vector in rows],
        )
