"""The worker of template-embed: the knowledge artifacts embedded with the configured embedder, each only
when its text or the model changed (the domain code is pg_autopilot.knowledge.embed)."""

from __future__ import annotations

from typing import Any

from .registry import JobContext, worker


@worker("template_embed", timeout=6 * 3600)
def template_embed(args: dict[str, Any], context: JobContext) -> str:
    """template-embed (Sundays 05:00): embeddings.model's embedder (loaded only when an artifact needs a
    vector), a transaction per batch: a stopped run keeps what it embedded."""
    from ..codebases import configured_embedder
    from ..knowledge.embed import embed_artifacts

    with context.connect(autocommit=False) as conn:
        embedder = configured_embedder(conn)
        conn.commit()
        result = embed_artifacts(
            conn,
            embedder,
            progress=lambda final=False, **fields: context.progress(final, **fields),
            cancelled=context.cancelled,
        )
    return result.line()
