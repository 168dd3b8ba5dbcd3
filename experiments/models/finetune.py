"""A fine-tuned ``transformers`` sequence classifier, trained with a plain loop.

A plain loop is simpler and faster here than the Trainer: batches are sorted
by length and padded only to their longest member, and inference runs under
``torch.inference_mode``.
"""

from __future__ import annotations

import logging
from numbers import Integral, Real

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import Interval, StrOptions

from experiments.errors import UserError
from experiments.models import register
from experiments.models.encoders import (
    DEFAULT_MODEL, inference, resolve_device, resolve_model_dir, resolve_precision, setup_torch,
)
from experiments.models.multilabel import constant_columns
from experiments.models.sentence import ENCODER_CONSTRAINTS

log = logging.getLogger(__name__)

# ``backend: auto`` exports the fitted weights to ONNX (seconds, once per set of weights, cached on disk) only
# for a prediction of at least this many paragraphs, where the faster runtime pays for the export.
ONNX_MIN_TEXTS = 200
# Scores this close below a frame's threshold are taken as tied with it (PyTorch and ONNX Runtime differ by ~1e-7).
TIE_TOLERANCE = 1e-6


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, so padding stays small.

    >>> [b.tolist() for b in length_sorted_batches([5, 1, 4, 2], 2)]
    [[1, 3], [2, 0]]
    """
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def prevalence_thresholds(proba: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Per-frame thresholds that make the predicted rate on the training data match each frame's prevalence.

    A frame never seen in training gets a threshold above 1, so it is never predicted. Scores tied
    at a threshold are all predicted, so ties (likelier in bf16) can raise the rate a little.

    >>> prevalence_thresholds(np.array([[0.9, 0.2], [0.6, 0.1], [0.3, 0.4]]), np.array([[1, 0], [1, 0], [0, 0]])).round(2).tolist()
    [0.6, 1.01]
    """
    thresholds = np.empty(Y.shape[1])
    for j in range(Y.shape[1]):
        positives = int(Y[:, j].sum())
        thresholds[j] = 1.01 if positives == 0 else np.sort(proba[:, j])[::-1][positives - 1]
    return thresholds


@register("finetune")
class TransformerClassifier(ClassifierMixin, BaseEstimator):
    """A fine-tuned transformers sequence classifier (multi-label head with per-frame thresholds for frames).

    ``AutoModelForSequenceClassification`` is fine-tuned end to end.

    Stance uses a softmax head with cross-entropy; frames use a multi-label
    head (one sigmoid per frame) and a per-frame decision threshold:
    ``threshold: prevalence`` matches each frame's training prevalence, a
    number applies to every frame, and a mapping sets frames one by one.
    ``class_weight: balanced`` weights the loss by inverse class (or positive)
    frequency.

    ``backend`` is the inference runtime: ``torch``; ``onnx``, the fitted
    weights exported to ONNX Runtime (checked against PyTorch to 1e-3, see
    ``experiments.models.onnx``); or ``auto``, ONNX Runtime on the CPU in
    float32 for a call of at least ``ONNX_MIN_TEXTS`` paragraphs (and every
    call after it), else PyTorch, which is also the fallback, with one log
    line saying why. Training always runs in PyTorch.
    """

    _parameter_constraints = {
        **ENCODER_CONSTRAINTS,
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "warmup_ratio": [Interval(Real, 0, 1, closed="both")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), None],
        "threshold": [StrOptions({"prevalence"}), Interval(Real, 0, 1, closed="both"), dict],
        "max_steps": [Interval(Integral, 1, None, closed="left"), None],
        "seed": [Integral],
        "backend": [StrOptions({"auto", "torch", "onnx"})],
    }

    def __init__(self, model: str = DEFAULT_MODEL, multilabel: bool = False, labels: list[str] | None = None,
                 learning_rate: float = 5e-5, epochs: int = 8, batch_size: int = 8, max_length: int = 256,
                 warmup_ratio: float = 0.1, weight_decay: float = 0.01, class_weight: str | None = "balanced",
                 threshold: str | float | dict = "prevalence", max_steps: int | None = None,
                 device: str = "auto", precision: str = "auto", seed: int = 0, backend: str = "auto"):
        self.model = model
        self.multilabel = multilabel
        self.labels = labels
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.threshold = threshold
        self.max_steps = max_steps
        self.device = device
        self.precision = precision
        self.seed = seed
        self.backend = backend

    def _loss(self, y: np.ndarray):
        import torch

        device = self.device_
        if self.multilabel:
            weight = None
            if self.class_weight == "balanced":
                positives = y.sum(axis=0).clip(min=1)
                weight = torch.tensor((len(y) - positives) / positives, dtype=torch.float32, device=device)
            return torch.nn.BCEWithLogitsLoss(pos_weight=weight)
        weight = None
        if self.class_weight == "balanced":
            counts = np.bincount(y, minlength=len(self.classes_))
            weight = torch.tensor(len(y) / (len(counts) * counts.clip(min=1)), dtype=torch.float32, device=device)
        return torch.nn.CrossEntropyLoss(weight=weight)

    def fit(self, X, y):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

        setup_torch(self.seed)
        self.device_ = resolve_device(self.device)
        model_dir = resolve_model_dir(self.model)
        y = np.asarray(y)
        if self.multilabel:
            self.classes_ = np.arange(y.shape[1])
            targets = y.astype(np.float32)
        else:
            self.classes_ = np.unique(y)
            targets = np.searchsorted(self.classes_, y)
        self.tokenizer_ = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), local_files_only=True, num_labels=len(self.classes_),
            problem_type="multi_label_classification" if self.multilabel else "single_label_classification",
        ).to(self.device_)
        encoded = self.tokenizer_(list(X), truncation=True, max_length=self.max_length)
        lengths = [len(ids) for ids in encoded["input_ids"]]
        batches = length_sorted_batches(lengths, self.batch_size)
        steps = len(batches) * self.epochs if self.max_steps is None else min(self.max_steps, len(batches) * self.epochs)
        no_decay = ("bias", "LayerNorm.weight")
        groups = [
            {"params": [p for n, p in self.model_.named_parameters() if not n.endswith(no_decay)], "weight_decay": self.weight_decay},
            {"params": [p for n, p in self.model_.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.learning_rate)
        schedule = get_linear_schedule_with_warmup(optimizer, int(self.warmup_ratio * steps), steps)
        loss_fn = self._loss(y if self.multilabel else targets)
        rng = np.random.default_rng(self.seed)
        self.model_.train()
        done = 0
        while done < steps:
            for b in rng.permutation(len(batches)):
                if done >= steps:
                    break
                batch = self._pad(encoded, batches[b])
                logits = self.model_(**batch).logits
                target = torch.as_tensor(targets[batches[b]], device=self.device_)
                loss = loss_fn(logits, target)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model_.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                done += 1
        self.model_.eval()
        self._forget_runtime()
        self.steps_ = done
        self.degenerate_ = constant_columns(y) if self.multilabel else []
        if self.multilabel:
            self.thresholds_ = self._thresholds(self.predict_proba(X), y)
        return self

    def _thresholds(self, train_proba: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.threshold == "prevalence":
            return prevalence_thresholds(train_proba, y)
        if isinstance(self.threshold, dict):
            unknown = [k for k in self.threshold if k not in (self.labels or [])]
            if unknown:
                raise UserError(f"threshold: {unknown[0]!r} is not a frame of this task ({', '.join(self.labels or [])})")
            return np.array([float(self.threshold.get(label, 0.5)) for label in self.labels])
        return np.full(y.shape[1], float(self.threshold))

    def _pad(self, encoded, rows) -> dict:
        features = [{k: encoded[k][i] for k in encoded.keys()} for i in rows]
        batch = self.tokenizer_.pad(features, padding="longest", return_tensors="pt")
        return {k: v.to(self.device_) for k, v in batch.items()}

    def _forget_runtime(self) -> None:
        self._runtime, self._onnx = None, None

    def runtime(self, n_texts: int = ONNX_MIN_TEXTS) -> str:
        """``torch`` or ``onnx``: the runtime a prediction of ``n_texts`` paragraphs uses (an ONNX export is
        built or loaded here when it is chosen the first time)."""
        from experiments.models.onnx import OnnxUnavailable, load_onnx_classifier

        if self.backend not in ("auto", "torch", "onnx"):
            raise UserError(f"backend: {self.backend!r} is not one of auto, torch, onnx")
        chosen = getattr(self, "_runtime", None)
        if self.backend == "torch" or chosen is not None:
            return chosen or "torch"
        if self.backend == "auto" and n_texts < ONNX_MIN_TEXTS:
            return "torch"  # not decided yet: a small call does not pay for an export
        precision = resolve_precision(self.precision, self.device_)
        reason = None
        if self.device_ != "cpu":
            reason = f"the device is {self.device_}; ONNX Runtime is used on the CPU only"
        elif precision != "fp32":
            reason = f"inference precision is {precision}; the ONNX classifier runs in float32"
        else:
            try:
                self._onnx = load_onnx_classifier(self.model_, self.tokenizer_)
            except OnnxUnavailable as error:
                reason = str(error)
        if reason is not None and self.backend == "onnx":
            raise UserError(f"backend: onnx cannot be used: {reason}; use backend: auto or torch")
        if reason is not None:
            expected = self.device_ != "cpu" or precision != "fp32"
            log.log(logging.INFO if expected else logging.WARNING, "fine-tuned classifier runs on PyTorch: %s", reason)
        self._runtime = "torch" if reason else "onnx"
        return self._runtime

    def predict_proba(self, X, batch_size: int = 16) -> np.ndarray:
        import torch

        texts = list(X)
        encoded = self.tokenizer_(texts, truncation=True, max_length=self.max_length)
        out = np.zeros((len(texts), len(self.classes_)), dtype=np.float32)
        if self.runtime(len(texts)) == "onnx":
            for rows in length_sorted_batches([len(i) for i in encoded["input_ids"]], batch_size):
                features = [{k: encoded[k][i] for k in encoded.keys()} for i in rows]
                logits = self._onnx.logits(self.tokenizer_.pad(features, padding="longest", return_tensors="np"))
                logits = logits.astype(np.float32)
                out[rows] = expit(logits) if self.multilabel else softmax(logits, axis=1)
            return out
        with inference(self.device_, resolve_precision(self.precision, self.device_)):
            for rows in length_sorted_batches([len(i) for i in encoded["input_ids"]], batch_size):
                logits = self.model_(**self._pad(encoded, rows)).logits.float()
                probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)
                out[rows] = probs.cpu().numpy()
        return out

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self.multilabel:
            # A prevalence threshold is a training paragraph's own score: within TIE_TOLERANCE of it counts as
            # that tie, so the paragraph keeps its label when the other runtime scores it 1e-8 lower.
            return (proba >= self.thresholds_ - TIE_TOLERANCE).astype(int)
        return self.classes_[proba.argmax(axis=1)]

    def save(self, directory) -> None:
        self.model_.save_pretrained(str(directory), safe_serialization=True)
        self.tokenizer_.save_pretrained(str(directory))

    def load_weights(self, directory) -> "TransformerClassifier":
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device_ = resolve_device(self.device)
        self.tokenizer_ = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        self.model_ = AutoModelForSequenceClassification.from_pretrained(str(directory), local_files_only=True).to(self.device_).eval()
        self._forget_runtime()
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("model_", None)  # weights are saved as safetensors by save()
        state.pop("tokenizer_", None)
        state.pop("_onnx", None)  # an ONNX Runtime session; rebuilt from the weights when needed
        state.pop("_runtime", None)
        return state
