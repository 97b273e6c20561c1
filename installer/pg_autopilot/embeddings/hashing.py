"""A lexical embedder without a model: feature hashing of code tokens and their bigrams.

Texts that share identifiers (split into words) and word pairs get close vectors; it knows nothing of
meaning, so it is the fallback where the ``embeddings`` extra is not installed, and is labelled lexical.
Deterministic across processes, machines and Python versions: the hash is blake2b, not ``hash()``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import re
from array import array
from collections import Counter
from collections.abc import Sequence

from .base import DIMENSIONS, Embedder, check_texts

# runs of letters and digits: underscores, punctuation and spaces separate identifiers' words
_WORDS = re.compile(r"[^\W_]+")
# an ASCII word's parts: acronyms (HTTP in HTTPResponse), capitalised or lower words, digit runs
_ASCII_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# Words so common in code and prose that, without document frequencies to weigh them down, they would
# dominate every vector. Changing this list changes the vectors: bump the model id's version.
_STOPWORD_TEXT = """
    a an and are as at be by for from if in is it of on or that the this to with
    def self cls return none true false not else elif pass import class
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# the feature of a text without any word, so that it still gets a unit vector
_EMPTY = "\x00empty"


def _split_unicode_word(word: str) -> list[str]:
    """Parts of a word with non-ASCII letters: case changes (camelCase, ACRONYMWord) and digit runs."""
    parts, start = [], 0
    for i in range(1, len(word)):
        before, here = word[i - 1], word[i]
        if (
            before.isdigit() != here.isdigit()
            or (before.islower() and here.isupper())
            or (before.isupper() and here.isupper() and i + 1 < len(word) and word[i + 1].islower())
        ):
            parts.append(word[start:i])
            start = i
    parts.append(word[start:])
    return parts


def split_identifiers(text: str) -> str:
    """The words of ``text`` with identifiers split on snake_case, camelCase and digits, lowercased.

    ``getHTTPResponse_code`` gives ``get http response code``; ``utf8Decode`` gives ``utf 8 decode``.
    Used by the hashing embedder and for the full-text side of code search.
    """
    words = []
    for word in _WORDS.findall(text):
        parts = _ASCII_PARTS.findall(word) if word.isascii() else _split_unicode_word(word)
        words.extend(part.lower() for part in parts)
    return " ".join(words)


@functools.lru_cache(maxsize=1 << 16)
def _slot(feature: str) -> tuple[int, float]:
    """The dimension a feature lands in and its sign (signed hashing: collisions cancel on average)."""
    value = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return value % DIMENSIONS, 1.0 if value >> 63 else -1.0


class HashingEmbedder(Embedder):
    """Signed feature hashing of words and word bigrams into 384 dimensions, log term frequency, L2 norm."""

    model_id = f"hashing-v1-{DIMENSIONS}"
    semantic = False

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(text) for text in check_texts(texts)]

    @staticmethod
    def _features(text: str) -> Counter[str]:
        tokens = [t for t in split_identifiers(text).split() if t not in STOPWORDS]
        features = Counter(tokens)
        features.update(f"{a} {b}" for a, b in itertools.pairwise(tokens))
        return features

    @staticmethod
    def _accumulate(features: Counter[str]) -> list[float]:
        vector = [0.0] * DIMENSIONS
        for feature, count in features.items():
            slot, sign = _slot(feature)
            vector[slot] += sign * (1.0 + math.log(count))
        return vector

    def _vector(self, text: str) -> list[float]:
        vector = self._accumulate(self._features(text))
        if not any(vector):  # no words, or (rarely) features that cancelled out exactly
            vector = self._accumulate(Counter({_EMPTY: 1}))
        norm = math.sqrt(sum(v * v for v in vector))
        return array("f", [v / norm for v in vector]).tolist()
