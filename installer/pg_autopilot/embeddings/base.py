"""What every embedder is: a model id, a dimension count, and unit-length float32 vectors for texts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from ..errors import AutopilotError

# The width of the vectors stored in PostgreSQL (real[]); every embedder produces this many.
DIMENSIONS = 384

INSTALL_HINT = "install the optional extra: pip install 'pg-autopilot[embeddings]'"


class EmbeddingsUnavailable(AutopilotError):
    """The requested embedder cannot run here (unknown name, the extra not installed, model files missing)."""


class Embedder(ABC):
    """Turns texts into vectors for similarity search.

    ``model_id`` names the model and every choice that changes its vectors (precision, truncation,
    algorithm version): it is part of the embedding cache key, and vectors of two model ids are never
    compared. ``semantic`` is False for a lexical embedder (shared words, not shared meaning), which
    status and search output say.
    """

    model_id: str
    dimensions: ClassVar[int] = DIMENSIONS
    semantic: ClassVar[bool]

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order: ``dimensions`` float32 values of unit length (cosine = dot)."""

    def embed_query(self, text: str) -> list[float]:
        """The vector of a search query, comparable with the vectors :meth:`embed` gives documents."""
        return self.embed([text])[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id}>"


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refusing anything but strings (a bytes chunk would embed its repr)."""
    if isinstance(texts, str):
        raise TypeError("embed() takes a list of texts, not a single string: use embed_query()")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"text {i} is {type(text).__name__}, not str")
    return out
