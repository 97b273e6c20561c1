"""The worker of rag-setup: retrieval brought to ready, the last link of the runner's startup chain
(knowledge-migration, templates-data-load, planning-seed, code-ingest, graph-populate, rag-setup).

Each step is the one its own job runs, so a step already done by the links before it finds nothing
to do, and a second run of rag-setup writes nothing:

1. every enabled codebase ingested and embedded with the configured model (an unchanged tree: no
   file parsed, no chunk embedded; chunks of another model are embedded again);
2. the code graph populated from what changed, and ranked (graph-populate's code);
3. the knowledge artifacts embedded (template-embed's code);
4. the search index: pgvector's HNSW index of the model's chunks where the server has pgvector
   0.8 or later (autopilot.create_vector_index), exact search otherwise (said so, not an error).
"""

from __future__ import annotations

from typing import Any

import psycopg

from .registry import JobContext, worker


@worker("rag_setup", timeout=6 * 3600)
def rag_setup(args: dict[str, Any], context: JobContext) -> str:
    """rag-setup (runner start, after graph-populate). A codebase that fails (its root gone) fails the
    job once the other steps are done, with its message; what they wrote stays."""
    from .. import codebases

    with context.connect() as conn:
        names = codebases.enabled_names(conn)
        embedder = codebases.configured_embedder(conn)
    lines, failures = _ingest(context, names, embedder)
    context.progress(step="graph")
    from .graph_populate import graph_populate

    lines.append("graph: " + graph_populate({}, context))
    lines.append(_knowledge(context, embedder))
    lines.append(_vector_index(context, embedder.model_id))
    if failures:
        raise RuntimeError("; ".join(failures + lines))
    return " | ".join(lines)


def _ingest(context: JobContext, names: list[str], embedder: Any) -> tuple[list[str], list[str]]:
    from .code_ingest import ingest_codebases

    if not names:
        return ["codebases: none enabled (autopilot codebase add NAME PATH)"], []
    context.progress(step="ingest")
    summaries, failures = ingest_codebases(context, names, embedder)
    lines = [
        summary.line()
        if summary.parsed or summary.embedded or summary.removed
        else f"{summary.codebase}: up to date ({summary.chunks} chunks, {summary.embedding_model})"
        for summary in summaries
    ]
    return lines, failures


def _knowledge(context: JobContext, embedder: Any) -> str:
    from ..knowledge.embed import embed_artifacts

    context.progress(step="knowledge")
    with context.connect(autocommit=False) as conn:
        result = embed_artifacts(conn, embedder, cancelled=context.cancelled)
    return "knowledge: " + result.line()


def _vector_index(context: JobContext, model_id: str) -> str:
    """pgvector's HNSW index of the model's chunks, where the server has pgvector (created once)."""
    context.progress(step="search index")
    with context.connect() as conn:
        version = conn.execute(
            "SELECT e.extversion FROM pg_catalog.pg_extension AS e WHERE e.extname = 'vector'"
        ).fetchone()
        if version is None:
            return "search: exact (the server has no pgvector; CREATE EXTENSION vector for HNSW)"
        chunks = conn.execute(
            "SELECT count(*) FROM autopilot.code_chunks AS c"
            " WHERE c.superseded_at IS NULL AND c.embedding_model = %s AND c.embedding IS NOT NULL",
            [model_id],
        ).fetchone()[0]
        if not chunks:
            return f"search: no chunks of {model_id} to index yet"
        (existing,) = conn.execute(
            "SELECT x.index_oid IS NOT NULL FROM autopilot._vector_index(%s) AS x", [model_id]
        ).fetchone()
        try:
            (index,) = conn.execute("SELECT autopilot.create_vector_index(%s)::text", [model_id]).fetchone()
        except psycopg.errors.FeatureNotSupported as exc:  # pgvector older than 0.8
            return f"search: exact ({exc.diag.message_primary})"
    return f"search: HNSW index {index} " + ("in place" if existing else f"created over {chunks} chunks")
