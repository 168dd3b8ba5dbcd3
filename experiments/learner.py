"""The model that learns while people label: fit on the labels so far, suggest, estimate its quality, rank.

The annotation app and ``bench --active-learning`` use the same three steps:

- ``Learner.fit`` trains a fast model (frozen sentence embeddings with a
  linear head; ``codebook_logreg`` also uses the codebook, so it suggests
  every label from the first decision on) on the labels given so far;
- ``Learner.quality`` estimates how good that model is on those labels: the
  macro-F1 of cross-validated predictions, with a bootstrap confidence
  interval and its n;
- ``diverse_order`` ranks unlabelled paragraphs by uncertainty, with a
  penalty for being close to a paragraph ranked just before, so the queue
  does not serve ten near-duplicates in a row.

>>> import numpy as np
>>> vectors = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
>>> diverse_order(["a", "b", "c"], [0.9, 0.9, 0.5], vectors, diversity=0.0)
['a', 'b', 'c']
>>> diverse_order(["a", "b", "c"], [0.9, 0.9, 0.5], vectors, diversity=1.0)
['a', 'c', 'b']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from experiments.codebook import Codebook
from experiments.errors import UserError
from experiments.metrics import SCORERS, bootstrap_weights

LEARNERS = ("codebook_logreg", "embed_logreg")
MIN_FOR_QUALITY = 10  # fewer labels than this give no quality estimate
WINDOW = 200  # the diversity term reorders this many of the most uncertain paragraphs


def uncertainty(prediction: dict) -> float:
    """How unsure a model is about one paragraph, in [0, 1]: the mean of its stance entropy and its
    frames' mean binary entropy, each divided by its maximum.

    >>> round(uncertainty({"stance_probs": {"a": 0.5, "b": 0.5}, "frame_probs": {"x": 0.5}}), 3)
    1.0
    >>> round(uncertainty({"stance_probs": {"a": 1.0, "b": 0.0}, "frame_probs": {"x": 0.0}}), 3)
    0.0
    """
    def entropy(p) -> float:
        p = np.clip(np.asarray(list(p), dtype=float), 1e-12, 1.0)
        return float(-(p * np.log(p)).sum())

    parts = []
    stance = list(prediction.get("stance_probs", {}).values())
    if len(stance) > 1:
        parts.append(entropy(stance) / np.log(len(stance)))
    frames = list(prediction.get("frame_probs", {}).values())
    if frames:
        parts.append(float(np.mean([entropy([p, 1 - p]) for p in frames])) / np.log(2))
    return float(np.mean(parts)) if parts else 0.0


def diverse_order(ids: list[str], scores, vectors: np.ndarray, diversity: float = 0.5,
                  recent: np.ndarray | None = None, window: int = WINDOW) -> list[str]:
    """``ids`` from most to least worth labelling: uncertainty minus ``diversity`` times the cosine
    similarity to the closest paragraph already ranked (or in ``recent``, the paragraphs just labelled).

    Greedy maximal marginal relevance over the ``window`` most uncertain
    paragraphs; the rest follow by uncertainty. ``vectors`` are unit-length
    rows, one per id. Ties keep the order of ``ids``.
    """
    scores = np.asarray(scores, dtype=float)
    by_score = sorted(range(len(ids)), key=lambda i: (-scores[i], i))
    if diversity <= 0 or len(ids) < 2:
        return [ids[i] for i in by_score]
    head, tail = by_score[:window], by_score[window:]
    V = np.asarray(vectors, dtype=float)[head]
    closest = np.full(len(head), -np.inf)
    if recent is not None and len(recent):
        closest = (V @ np.asarray(recent, dtype=float).T).max(axis=1)
    left = np.ones(len(head), dtype=bool)
    picked: list[int] = []
    for _ in range(len(head)):
        value = scores[head] - diversity * np.maximum(closest, 0.0)
        value[~left] = -np.inf
        j = int(np.argmax(value))  # argmax takes the first of equal values: ties keep the order
        picked.append(head[j])
        left[j] = False
        closest = np.maximum(closest, V @ V[j])
    return [ids[i] for i in picked + tail]


@dataclass
class Quality:
    """Cross-validated macro-F1 of the learner on the labels so far, with its bootstrap CI."""

    task: str
    n: int
    macro_f1: float | None = None
    ci: tuple[float, float] | None = None
    protocol: str = ""

    def describe(self) -> str:
        if self.macro_f1 is None:
            return f"{self.task}: needs {MIN_FOR_QUALITY} labels ({self.n} so far)"
        return f"{self.task} macro-F1 {self.macro_f1:.2f} [{self.ci[0]:.2f}, {self.ci[1]:.2f}] (n={self.n}, {self.protocol})"


@dataclass
class Learner:
    """A fast model for suggestions while labelling; see the module docstring.

    ``model`` is one of ``LEARNERS``. Probabilities come straight from the
    model (no calibration: there is no held-out data yet).
    """

    codebook: Codebook
    model: str = "codebook_logreg"
    seed: int = 0
    device: str = "auto"
    models_: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.model not in LEARNERS:
            raise UserError(f"--learn {self.model!r}: use one of {', '.join(LEARNERS)} (or 'off')")

    def _build(self, task: str):
        from experiments.models import build_model

        labels = self.codebook.stance_labels if task == "stance" else self.codebook.frame_labels
        # A fixed prior weight: choosing it by inner cross-validation would make every retraining slower.
        params = {"prior_weight": 0.7} if self.model == "codebook_logreg" else {}
        return build_model(self.model, task, self.seed, params, labels=labels, device=self.device, min_train_positives=1)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length sentence embeddings of ``texts`` (cached on disk, so each text is encoded once)."""
        from experiments.models.encoders import SentenceEmbedder

        return SentenceEmbedder(device=self.device).transform(texts)

    def _targets(self, stance: list[str], frames: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        y = np.array([self.codebook.stance_labels.index(s) for s in stance])
        Y = np.array([[int(f in fs) for f in self.codebook.frame_labels] for fs in frames]).reshape(len(frames), -1)
        return y, Y

    def can_fit(self, stance: list[str]) -> bool:
        """Whether the labels are enough for the model: the codebook model learns from one label on,
        the plain probe needs two stance classes."""
        return bool(stance) and (self.model == "codebook_logreg" or len(set(stance)) >= 2)

    def _fit_models(self, texts, y, Y) -> dict:
        models = {"stance": self._build("stance").fit(texts, y)}
        if Y.shape[1]:
            models["frames"] = self._build("frames").fit(texts, Y)
        return models

    def fit(self, texts: list[str], stance: list[str], frames: list[list[str]]) -> "Learner":
        """Train on labelled paragraphs (``stance`` and ``frames`` in codebook label names)."""
        if not self.can_fit(stance):
            raise UserError(f"{self.model} needs labels of at least two stances to learn from")
        y, Y = self._targets(stance, frames)
        self.models_ = self._fit_models(list(texts), y, Y)
        return self

    @staticmethod
    def _stance_proba(model, texts, k: int) -> np.ndarray:
        proba = np.asarray(model.predict_proba(texts), dtype=float)
        full = np.zeros((len(texts), k))
        full[:, [int(c) for c in model.classes_]] = proba
        return full

    def predict(self, texts: list[str]) -> list[dict]:
        """Suggestions in the shape ``predict`` writes: ``stance``, ``stance_probs``, ``frames``, ``frame_probs``."""
        texts = list(texts)
        rows: list[dict] = [{} for _ in texts]
        if not texts or not self.models_:
            return rows
        labels = self.codebook.stance_labels
        for row, p in zip(rows, self._stance_proba(self.models_["stance"], texts, len(labels))):
            row["stance"] = labels[int(p.argmax())]
            row["stance_probs"] = {label: round(float(v), 4) for label, v in zip(labels, p)}
        if "frames" in self.models_:
            model, frames = self.models_["frames"], self.codebook.frame_labels
            proba = np.asarray(model.predict_proba(texts), dtype=float)
            chosen = np.asarray(model.predict(texts), dtype=bool)
            for row, p, on in zip(rows, proba, chosen):
                row["frames"] = [f for f, flag in zip(frames, on) if flag]
                row["frame_probs"] = {f: round(float(v), 4) for f, v in zip(frames, p)}
        return rows

    def quality(self, texts: list[str], stance: list[str], frames: list[list[str]], folds: int = 5,
                resamples: int = 1000, confidence: float = 0.95) -> list[Quality]:
        """Macro-F1 of out-of-fold predictions on the labelled paragraphs, per task, with a bootstrap CI.

        Folds are stratified by stance where every stance has at least two
        labels, else plain k-fold; fewer than ``MIN_FOR_QUALITY`` labels give
        no estimate, and so does a fold whose training part the model cannot
        learn from.
        """
        n = len(stance)
        tasks = ["stance"] + (["frames"] if self.codebook.frame_labels else [])
        if n < MIN_FOR_QUALITY:
            return [Quality(task, n) for task in tasks]
        texts = list(texts)
        y, Y = self._targets(stance, frames)
        counts = np.bincount(y)
        counts = counts[counts > 0]
        k = int(min(folds, n))
        if counts.min() >= 2:
            splitter, protocol = StratifiedKFold(n_splits=min(k, int(counts.min())), shuffle=True, random_state=self.seed), "stratified"
        else:
            splitter, protocol = KFold(n_splits=k, shuffle=True, random_state=self.seed), ""
        pred_y, pred_Y = np.zeros(n, dtype=int), np.zeros_like(Y)
        for train, test in splitter.split(texts, y):
            if not self.can_fit([stance[i] for i in train]):
                return [Quality(task, n) for task in tasks]
            models = self._fit_models([texts[i] for i in train], y[train], Y[train])
            part = [texts[i] for i in test]
            pred_y[test] = self._stance_proba(models["stance"], part, len(self.codebook.stance_labels)).argmax(axis=1)
            if "frames" in models:
                pred_Y[test] = np.asarray(models["frames"].predict(part), dtype=int)
        protocol = f"{splitter.get_n_splits()}-fold {protocol + ' ' if protocol else ''}cross-validation"
        W = np.vstack([np.ones((1, n)), *bootstrap_weights(n, resamples, seed=self.seed)])
        out = []
        for task, gold, pred, labels in (("stance", y, pred_y, self.codebook.stance_labels),
                                         ("frames", Y, pred_Y, self.codebook.frame_labels)):
            if task not in tasks:
                continue
            values = SCORERS[task](gold, pred, labels, [], W)["macro_f1"]
            tail = (1 - confidence) / 2
            low, high = np.nanquantile(values[1:], [tail, 1 - tail])
            out.append(Quality(task, n, round(float(values[0]), 4), (round(float(low), 4), round(float(high), 4)), protocol))
        return out
