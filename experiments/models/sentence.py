"""Frozen sentence embeddings: a logistic-regression probe and zero-shot codebook similarity."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from experiments.models import register
from experiments.models.encoders import DEFAULT_MODEL, SentenceEmbedder, label_descriptions


@register("embed_logreg")
def embed_logreg(seed: int, model: str = DEFAULT_MODEL, C: float = 1.0, class_weight: str | None = "balanced",
                 max_length: int = 256, batch_size: int = 16, device: str = "auto", precision: str = "auto"):
    """Frozen sentence embeddings with logistic regression: cheap, and strong on small data."""
    return Pipeline([
        ("embed", SentenceEmbedder(model=model, device=device, batch_size=batch_size, max_length=max_length,
                                   precision=precision)),
        ("clf", LogisticRegression(C=C, class_weight=class_weight, max_iter=2000, random_state=seed)),
    ])


class CodebookSimilarity(ClassifierMixin, BaseEstimator):
    """Zero-shot labels from the codebook alone: no training labels are used.

    Each label's prototype is the mean embedding of its codebook definition
    and cue phrases. Stance is the most similar prototype (``predict_proba``
    is a softmax of the cosine similarities divided by ``temperature``).
    A frame is assigned when its similarity reaches ``threshold``
    (``predict_proba`` is a sigmoid centred on the threshold). The scores rank
    like similarities; they are not calibrated probabilities.
    """

    def __init__(self, labels: list[str], multilabel: bool = False, model: str = DEFAULT_MODEL,
                 threshold: float = 0.3, temperature: float = 0.05, max_length: int = 256,
                 batch_size: int = 16, device: str = "auto", precision: str = "auto"):
        self.labels = labels
        self.multilabel = multilabel
        self.model = model
        self.threshold = threshold
        self.temperature = temperature
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.precision = precision

    def _embedder(self) -> SentenceEmbedder:
        return SentenceEmbedder(model=self.model, device=self.device, batch_size=self.batch_size,
                                max_length=self.max_length, precision=self.precision)

    def fit(self, X, y=None):
        """Embeds the codebook's label descriptions; ``X`` and ``y`` are not used."""
        descriptions = label_descriptions(list(self.labels))
        embedder = self._embedder()
        prototypes = []
        for label in self.labels:
            vectors = embedder.transform(descriptions[label])
            mean = vectors.mean(axis=0)
            prototypes.append(mean / np.linalg.norm(mean))
        self.prototypes_ = np.stack(prototypes)
        self.classes_ = np.arange(len(self.labels))
        return self

    def similarities(self, X) -> np.ndarray:
        return self._embedder().transform(list(X)) @ self.prototypes_.T

    def predict_proba(self, X) -> np.ndarray:
        sims = self.similarities(X)
        if self.multilabel:
            return expit((sims - self.threshold) / self.temperature)
        return softmax(sims / self.temperature, axis=1)

    def predict(self, X) -> np.ndarray:
        sims = self.similarities(X)
        if self.multilabel:
            return (sims >= self.threshold).astype(int)
        return self.classes_[sims.argmax(axis=1)]


@register("zeroshot_codebook", multilabel_native=True)
def zeroshot_codebook(seed: int, labels: list[str], task: str, model: str = DEFAULT_MODEL, threshold: float = 0.3,
                      temperature: float = 0.05, max_length: int = 256, device: str = "auto",
                      precision: str = "auto"):
    """Zero-shot: similarity of each paragraph to the codebook's label definitions and cues."""
    return CodebookSimilarity(labels=labels, multilabel=task == "frames", model=model, threshold=threshold,
                              temperature=temperature, max_length=max_length, device=device, precision=precision)
