"""The sentence encoder and the fine-tuned classifier through ONNX Runtime, checked against PyTorch.

``SentenceEmbedder(backend="auto")`` uses this path on the CPU in float32 when
``onnxruntime`` (and ``onnx``, which the exporter needs) can be imported, the
export succeeds and its output agrees with the PyTorch encoder to
``PARITY_TOLERANCE`` on ``PARITY_SENTENCES``; otherwise it stays on PyTorch
and logs one line saying why.

The export is the model's transformer plus the sentence-transformers pooling
(mean over the real tokens, or the CLS token) and L2 normalisation, traced
with ``torch.onnx.export`` from the installed weights: nothing is downloaded.
It lives under the project cache (``$EXPERIMENTS_CACHE`` or ``.cache/``) in
``onnx/<key>/``, keyed by the model fingerprint and the weight files'
modification times, the pooling and the torch, transformers and
onnxruntime versions (the fine-tuned classifier's by a digest of its weights). It is built in a temporary folder and
renamed into place, with ``meta.json`` recording the model file's size and
SHA-256 and the parity check; a folder whose file does not match (a partial
or damaged export) is rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from experiments import paths

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-3
OPSET = 17
FORMAT = 1  # bump when the export itself changes, so older exports are not reused
PARITY_SENTENCES = (
    "Iran.",
    "The United States should not intervene militarily in Iran, the editorial argues.",
    "  Sanctions, strikes and diplomacy: three answers to the same question about Tehran's nuclear programme, "
    "each with its own costs for ordinary Iranians and for the region.  ",
    "Protesters in Tehran called for international support.",
)
SUPPORTED_MODULES = {"Transformer", "Pooling", "Normalize"}


class OnnxUnavailable(Exception):
    """Why the ONNX path cannot be used; the caller falls back to PyTorch (``auto``) or reports it (``onnx``)."""


def cache_root() -> Path:
    return paths.cache_dir() / "onnx"


def runtime_missing() -> str | None:
    """None when onnxruntime and onnx import, else the reason."""
    for module in ("onnxruntime", "onnx"):
        try:
            __import__(module)
        except ImportError as error:
            return f"{module} is not installed ({error})"
    return None


def pooling_mode(model_dir: Path) -> str:
    """The sentence-transformers pooling of ``model_dir``: ``mean`` or ``cls``.

    A directory without ``modules.json`` is a plain transformer, which
    sentence-transformers mean-pools. Anything the export does not reproduce
    (max pooling, dense layers, other modules) raises ``OnnxUnavailable``.
    """
    modules_file = model_dir / "modules.json"
    if not modules_file.exists():
        return "mean"
    modules = json.loads(modules_file.read_text())
    kinds = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    unsupported = [k for k in kinds if k not in SUPPORTED_MODULES]
    if unsupported:
        raise OnnxUnavailable(f"the model's {', '.join(unsupported)} module is not reproduced by the export")
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is None:
        return "mean"
    config_file = model_dir / pooling.get("path", "") / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {"pooling_mode_mean_tokens": True}
    if config.get("pooling_mode") in ("mean", "cls"):  # newer sentence-transformers configs
        return config["pooling_mode"]
    modes = [mode for mode, key in (("mean", "pooling_mode_mean_tokens"), ("cls", "pooling_mode_cls_token"),
                                    ("max", "pooling_mode_max_tokens"), ("mean_sqrt_len", "pooling_mode_mean_sqrt_len_tokens"),
                                    ("weightedmean", "pooling_mode_weightedmean_tokens"),
                                    ("lasttoken", "pooling_mode_lasttoken")) if config.get(key)]
    if modes in (["mean"], ["cls"]):
        return modes[0]
    raise OnnxUnavailable(f"pooling {'+'.join(modes) or 'none'} is not reproduced by the export (only mean or cls)")


def export_key(model_dir: Path, pooling: str) -> str:
    import onnxruntime
    import torch
    import transformers

    from experiments.models.encoders import model_fingerprint

    from experiments.models.encoders import WEIGHT_FILES

    # The weights' modification times too: the fingerprint reads only sizes, and a stale export would be
    # trusted without a new parity check (a touched file merely costs a rebuild).
    stamps = [f"{name}:{(model_dir / name).stat().st_mtime_ns}" for name in WEIGHT_FILES if (model_dir / name).exists()]
    versions = (f"{FORMAT}-{OPSET}-{torch.__version__}-{transformers.__version__}-{onnxruntime.__version__}-"
                + ",".join(stamps))
    return f"{model_fingerprint(model_dir)}-{pooling}-{hashlib.sha256(versions.encode()).hexdigest()[:10]}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_export(directory: Path) -> dict | None:
    """The export's ``meta.json`` when the folder holds a complete export whose file matches it, else None."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
        model = directory / "model.onnx"
        if model.stat().st_size != meta["size"] or _sha256(model) != meta["sha256"]:
            return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _pooled(model, pooling: str, input_names: list[str]):
    """The transformer, the pooling and the L2 normalisation as one module, inputs by position as traced."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            named = dict(zip(input_names, inputs))
            hidden = self.model(**named).last_hidden_state
            if pooling == "cls":
                vectors = hidden[:, 0]
            else:
                mask = named["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(vectors, p=2, dim=1)

    return Pooled().eval()


def _export(model_dir: Path, pooling: str, target: Path) -> list[str]:
    """Trace the pooled encoder from the local weights into ``target`` (a file); returns the input names.

    The model is loaded afresh with eager attention: tracing SDPA can bake the
    "no padding" shortcut of the example batch into the graph, and the
    exporter leaves the module it traced in training mode.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager").eval()
    example = tokenizer(["a short one", "a longer example sentence, so that the batch is padded"],
                        padding=True, return_tensors="pt")
    input_names = [name for name in tokenizer.model_input_names if name in example]
    wrapper = _pooled(model, pooling, input_names)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(example[name] for name in input_names), str(target), dynamo=False,
            input_names=input_names, output_names=["sentence_embedding"], opset_version=OPSET,
            dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in input_names},
                          "sentence_embedding": {0: "batch"}},
        )
    return input_names


def session_options(threads: int | None = None):
    """One inference at a time on all the cores this process may use, fully optimised, without spin-waiting
    (the cores are shared: a spinning thread takes them from whoever else is running)."""
    import onnxruntime as ort

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


@dataclass
class OnnxSentenceEncoder:
    """An exported encoder: texts → L2-normalised embeddings, length-sorted and padded per batch."""

    session: object
    tokenizer: object
    input_names: list[str]
    max_length: int
    path: Path
    parity: float

    def encode(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        dim = self.session.get_outputs()[0].shape[-1]
        vectors = np.zeros((len(texts), dim if isinstance(dim, int) else 0), dtype=np.float32)
        if not texts:
            return vectors
        encoded = self.tokenizer(list(texts), truncation=True, max_length=self.max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            batch = self.tokenizer.pad([{name: encoded[name][i] for name in self.input_names} for i in rows],
                                       padding="longest", return_tensors="np")
            result = self.session.run(None, {name: batch[name].astype(np.int64) for name in self.input_names})[0]
            if vectors.shape[1] != result.shape[1]:
                vectors = np.zeros((len(texts), result.shape[1]), dtype=np.float32)
            vectors[rows] = result
        return vectors


def torch_reference(model: str, max_length: int, texts: list[str]) -> np.ndarray:
    """The PyTorch encoder's float32 embeddings of ``texts`` (the parity check's reference)."""
    import torch

    from experiments.models.encoders import load_sentence_encoder

    encoder = load_sentence_encoder(model, "cpu", max_length)
    with torch.inference_mode():
        vectors = encoder.encode(list(texts), batch_size=len(texts), convert_to_tensor=True,
                                 normalize_embeddings=True, show_progress_bar=False)
    return vectors.float().cpu().numpy()


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def build_export(key: str, export, parity, root: Path | None = None) -> tuple[Path, dict]:
    """The export folder ``<root>/<key>``, built if missing or damaged.

    ``export(target)`` writes the model to the file ``target`` and returns
    its input names; ``parity(target, input_names)`` returns its largest
    absolute difference from PyTorch, recorded in ``meta.json``. The export is
    built in a temporary folder and renamed into place, so a reader sees a
    whole export or none; one whose file no longer matches its ``meta.json``
    is moved aside and rebuilt.
    """
    root = root or cache_root()
    final = root / key
    meta = read_export(final)
    if meta is not None:
        return final, meta
    if final.exists():
        log.info("ONNX export %s is incomplete or damaged; rebuilding it", final)
        trash = final.with_name(f".{final.name}.{os.getpid()}.damaged")
        try:
            os.replace(final, trash)
        except OSError:
            pass
        shutil.rmtree(trash, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        os.chmod(scratch, 0o755)
        target = scratch / "model.onnx"
        input_names = export(target)
        meta = {"size": target.stat().st_size, "sha256": _sha256(target), "input_names": input_names,
                "parity_max_abs_diff": float(parity(target, input_names))}
        with open(scratch / "meta.json", "w") as handle:
            json.dump(meta, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.rename(scratch, final)
        except OSError:  # another process finished first: use its export if it is sound
            theirs = read_export(final)
            if theirs is None:
                raise
            return final, theirs
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return final, meta


def _sentence_parity(model: str, model_dir: Path, max_length: int):
    def parity(target: Path, input_names: list[str]) -> float:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        encoder = OnnxSentenceEncoder(_session(target), tokenizer, input_names, max_length, target, 0.0)
        got = encoder.encode(list(PARITY_SENTENCES), batch_size=len(PARITY_SENTENCES))
        return float(np.abs(got - torch_reference(model, max_length, list(PARITY_SENTENCES))).max())

    return parity


_LOADED: dict[str, OnnxSentenceEncoder] = {}


def load_onnx_encoder(model: str, max_length: int) -> OnnxSentenceEncoder:
    """The ONNX encoder for ``model``, exported if needed and loaded once per process (any ``max_length``
    shares the session).

    Raises ``OnnxUnavailable`` with the reason when it cannot be used: the
    runtime is missing, the model's pooling is not reproduced, the export or
    the session fails, or the output differs from PyTorch by more than
    ``PARITY_TOLERANCE``.
    """
    from experiments.models.encoders import resolve_model_dir

    if model not in _LOADED:
        missing = runtime_missing()
        if missing:
            raise OnnxUnavailable(missing)
        model_dir = resolve_model_dir(model)
        try:
            from transformers import AutoConfig, AutoTokenizer

            pooling = pooling_mode(model_dir)
            directory, meta = build_export(export_key(model_dir, pooling),
                                           lambda target: _export(model_dir, pooling, target),
                                           _sentence_parity(model, model_dir, max_length))
            if meta["parity_max_abs_diff"] > PARITY_TOLERANCE:
                raise OnnxUnavailable(f"the export differs from PyTorch by {meta['parity_max_abs_diff']:.1e} "
                                      f"(more than {PARITY_TOLERANCE:g})")
            session = _session(directory / "model.onnx")
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
            limit = getattr(AutoConfig.from_pretrained(str(model_dir), local_files_only=True),
                            "max_position_embeddings", None)
        except OnnxUnavailable:
            raise
        except Exception as error:  # an exporter or runtime failure must not stop a run that PyTorch can do
            raise OnnxUnavailable(f"the ONNX export failed ({type(error).__name__}: {error})") from error
        _LOADED[model] = OnnxSentenceEncoder(session, tokenizer, meta["input_names"],
                                             limit if isinstance(limit, int) and limit > 0 else 1 << 30,
                                             directory / "model.onnx", meta["parity_max_abs_diff"])
    loaded = _LOADED[model]
    return replace(loaded, max_length=min(max_length, loaded.max_length))


# The fine-tuned classifier: its weights change with every fit, so its export is keyed by a digest of them.


def weights_digest(model) -> str:
    """A digest of a model's config and every weight tensor (fine-tuned weights share their base's file sizes)."""
    digest = hashlib.sha256(model.config.to_json_string().encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def _export_classifier(model, tokenizer, target: Path) -> list[str]:
    """Trace a copy of the sequence classifier (eager attention, eval mode) to ``target``; the logits are its output."""
    import copy

    import torch

    clone = copy.deepcopy(model).to("cpu").float().eval()
    if hasattr(clone, "set_attn_implementation"):
        clone.set_attn_implementation("eager")
    else:
        clone.config._attn_implementation = "eager"
    example = tokenizer(["a short one", "a longer example sentence, so that the batch is padded"],
                        padding=True, return_tensors="pt")
    input_names = [name for name in tokenizer.model_input_names if name in example]

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = clone

        def forward(self, *inputs):
            return self.model(**dict(zip(input_names, inputs))).logits

    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits().eval(), tuple(example[name] for name in input_names), str(target), dynamo=False,
            input_names=input_names, output_names=["logits"], opset_version=OPSET,
            dynamic_axes={**{name: {0: "batch", 1: "sequence"} for name in input_names}, "logits": {0: "batch"}},
        )
    return input_names


@dataclass
class OnnxClassifier:
    """An exported sequence classifier: padded batches in, float32 logits out."""

    session: object
    input_names: list[str]
    path: Path
    parity: float

    def logits(self, batch) -> np.ndarray:
        return self.session.run(None, {name: np.asarray(batch[name], dtype=np.int64) for name in self.input_names})[0]


KEEP_CLASSIFIERS = 3


def prune_classifier_exports(root: Path | None = None, keep: int = KEEP_CLASSIFIERS,
                             keep_also: Path | None = None) -> list[Path]:
    """Remove all but the ``keep`` most recently used classifier exports; returns what was removed.

    Every fit of a fine-tuned model has new weights and so its own export
    (about 90 MB for MiniLM); without pruning they pile up in the cache.
    ``keep_also`` (the export in use) is marked as just used and never removed.
    """
    root = root or cache_root()
    if keep_also is not None and (keep_also / "meta.json").exists():
        os.utime(keep_also / "meta.json")
    exports = [d for d in root.glob("classifier-*") if d.is_dir() and (d / "meta.json").exists()]
    exports.sort(key=lambda d: (d / "meta.json").stat().st_mtime, reverse=True)
    removed = []
    for old in exports[keep:]:
        if keep_also is not None and old == keep_also:
            continue
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old)
    return removed


def load_onnx_classifier(model, tokenizer) -> OnnxClassifier:
    """The ONNX copy of a fitted ``AutoModelForSequenceClassification``, exported once per set of weights.

    Raises ``OnnxUnavailable`` with the reason when it cannot be used (as ``load_onnx_encoder``).
    """
    missing = runtime_missing()
    if missing:
        raise OnnxUnavailable(missing)
    try:
        import onnxruntime
        import torch
        import transformers

        versions = f"{FORMAT}-{OPSET}-{torch.__version__}-{transformers.__version__}-{onnxruntime.__version__}"
        key = f"classifier-{weights_digest(model)}-{hashlib.sha256(versions.encode()).hexdigest()[:10]}"

        def parity(target: Path, input_names: list[str]) -> float:
            batch = tokenizer(list(PARITY_SENTENCES), padding=True, return_tensors="pt")
            device = next(model.parameters()).device
            with torch.inference_mode():
                expected = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
            got = OnnxClassifier(_session(target), input_names, target, 0.0).logits(
                {name: batch[name].numpy() for name in input_names})
            return float(np.abs(got - expected).max())

        directory, meta = build_export(key, lambda target: _export_classifier(model, tokenizer, target), parity)
        prune_classifier_exports(keep_also=directory)
        if meta["parity_max_abs_diff"] > PARITY_TOLERANCE:
            raise OnnxUnavailable(f"the export differs from PyTorch by {meta['parity_max_abs_diff']:.1e} "
                                  f"(more than {PARITY_TOLERANCE:g})")
        session = _session(directory / "model.onnx")
    except OnnxUnavailable:
        raise
    except Exception as error:  # an exporter or runtime failure must not stop a run that PyTorch can do
        raise OnnxUnavailable(f"the ONNX export failed ({type(error).__name__}: {error})") from error
    return OnnxClassifier(session, meta["input_names"], directory / "model.onnx", meta["parity_max_abs_diff"])
