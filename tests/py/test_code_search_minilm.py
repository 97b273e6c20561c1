"""The real embedding model end to end: a few standard-library modules ingested with all-MiniLM-L6-v2
(the embeddings extra, which `make test` installs), then natural-language queries that name no
identifier find the function they describe."""

from __future__ import annotations

import shutil
import sysconfig
from pathlib import Path

import psycopg
import pytest

from pg_autopilot import codebases
from pg_autopilot.embeddings import get_embedder

MODULES = ["shlex.py", "textwrap.py", "fnmatch.py", "glob.py", "base64.py", "colorsys.py", "json"]
QUERIES = {
    "split a command line string into arguments the way a shell does": "split",
    "wrap a paragraph of text so that no line is longer than a width": "wrap",
    "does a file name match a wildcard pattern like *.txt": "fnmatch",
    "convert a colour from red green blue to hue saturation value": "rgb_to_hsv",
    "encode binary data as base 32 text": "b32encode",
}


@pytest.fixture(scope="module")
def embedder():
    return get_embedder("minilm")


def test_minilm_finds_functions_by_what_they_do(installed_db, tmp_path: Path, embedder) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    root = tmp_path / "stdlib-sample"
    root.mkdir()
    for module in MODULES:
        source = stdlib / module
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / module)
    with installed_db.connect() as conn:
        codebases.add(conn, "stdlib", str(root), (), ("**/tests/**",))
    summary = codebases.ingest(lambda: psycopg.connect(installed_db.dsn), "stdlib", embedder=embedder)
    assert summary.embedded == summary.chunks > 50
    assert summary.embedding_model == embedder.model_id
    with installed_db.connect() as conn:
        for query, symbol in QUERIES.items():
            # the semantic half alone: the function described, in the top 5, though its name is not said
            rows = conn.execute(
                "SELECT s.chunk_id FROM autopilot.search_code(%s::real[], NULL, 'stdlib', 5, %s) AS s",
                [embedder.embed_query(query), embedder.model_id],
            ).fetchall()
            assert defines(conn, [chunk_id for (chunk_id,) in rows], symbol), (
                f"{query!r}: {symbol} not in top 5"
            )
            # hybrid: the words of a sentence are common in code, so the fused rank may drop a little
            rows = codebases.search(conn, embedder, query, "stdlib", 10)
            assert defines(conn, [row["chunk_id"] for row in rows], symbol), (
                f"{query!r}: {symbol} not in top 10"
            )


def defines(conn: psycopg.Connection, chunk_ids: list[int], name: str) -> bool:
    """One of the chunks holds the definition of ``name`` (a small function shares its chunk with its
    neighbours, so the chunk's own symbol may be another's or none)."""
    return conn.execute(
        "SELECT bool_or(c.content ~ ('(^|\\n)\\s*def ' || %s || '\\(')) FROM autopilot.code_chunks AS c"
        " WHERE c.id = ANY(%s)",
        [name, chunk_ids],
    ).fetchone()[0]
