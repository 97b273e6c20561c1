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


# A batch's vectors in one statement: one flat array, each chunk its slice (one round trip and one
# statement for the batch, instead of an UPDATE per chunk). The array goes in binary (%b: psycopg formats
# a list of floats as text in Python, several times slower) as double precision[], sliced, then cast: a
# cast of the whole array would be made again for every row under a generic plan. The chunks are found
# by id = ANY (their primary key), not by the join alone, which the planner may make a hash join over
# a scan of every chunk.
WRITE_BATCH = (
    "UPDATE autopilot.code_chunks AS c"
    " SET embedding = (%(vectors)b::double precision[])[v.first:v.last]::real[],"
    " embedding_model = %(model)s, embedding_key = v.key"
    " FROM unnest(%(ids)s::bigint[], %(keys)s::text[], %(firsts)s::integer[], %(lasts)s::integer[])"
    " AS v (id, key, first, last) WHERE c.id = ANY(%(ids)s::bigint[]) AND c.id = v.id"
)


def _write(conn: psycopg.Connection, model: str, rows: list[tuple[int, str, list[float]]]) -> None:
    flat: list[float] = []
    firsts, lasts = [], []
    for _, _, vector in rows:
        firsts.append(len(flat) + 1)
        flat.extend(vector)
        lasts.append(len(flat))
    conn.execute(
        WRITE_BATCH,
        {
            "vectors": flat,
            "model": model,
            "ids": [chunk_id for chunk_id, _, _ in rows],
            "keys": [key for _, key, _ in rows],
            "firsts": firsts,
            "lasts": lasts,
        },
    )
