"""Embedders for code chunks and knowledge texts: 384-dimension unit vectors, stored as real[].

``get_embedder(name)`` gives the one a setting names: ``minilm`` (all-MiniLM-L6-v2, semantic; needs the
``embeddings`` extra), ``hashing`` (feature hashing of code tokens, lexical; no dependencies) or ``auto``
(minilm where the extra is installed, hashing elsewhere). Importing this package imports no model
library: torch is imported when a MiniLM embedder is made.
"""

from __future__ import annotations

import logging

from .base import DIMENSIONS, INSTALL_HINT, Embedder, EmbeddingsUnavailable
from .hashing import HashingEmbedder, split_identifiers

NAMES = ("minilm", "hashing", "auto")

log = logging.getLogger("autopilot.embeddings")


def _minilm() -> Embedder:
    from .minilm import MiniLMEmbedder  # imports torch only now

    return MiniLMEmbedder()


def get_embedder(name: str) -> Embedder:
    """The embedder ``name`` names (``minilm``, ``hashing`` or ``auto``), loaded and ready.

    Raises :class:`EmbeddingsUnavailable` for an unknown name, and for ``minilm`` where the extra is not
    installed or its model files are incomplete. ``auto`` falls back to hashing only when a package of
    the extra is not installed; a broken install is an error, not a silent change of model.
    """
    choice = name.strip().lower() if isinstance(name, str) else name
    if choice == "hashing":
        return HashingEmbedder()
    if choice == "minilm":
        return _minilm()
    if choice == "auto":
        from .minilm import missing_module

        missing = missing_module()
        if missing is None:
            embedder = _minilm()
            log.info("embedder: %s (semantic)", embedder.model_id, extra={"fields": _fields(embedder)})
            return embedder
        embedder = HashingEmbedder()
        log.warning(
            "embedder: %s (lexical, not semantic): the embeddings extra is not installed (%s is missing); "
            "for semantic search, %s",
            embedder.model_id,
            missing,
            INSTALL_HINT,
            extra={"fields": _fields(embedder)},
        )
        return embedder
    raise EmbeddingsUnavailable(
        f"unknown embedder {name!r}: choose one of {', '.join(NAMES)}",
        hint=f"minilm needs the embeddings extra ({INSTALL_HINT}); hashing needs nothing",
    )


def _fields(embedder: Embedder) -> dict[str, object]:
    return {"model_id": embedder.model_id, "semantic": embedder.semantic}


__all__ = [
    "DIMENSIONS",
    "NAMES",
    "Embedder",
    "EmbeddingsUnavailable",
    "HashingEmbedder",
    "get_embedder",
    "split_identifiers",
]
