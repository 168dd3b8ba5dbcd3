"""Frozen sentence embeddings: a logistic-regression probe and zero-shot codebook similarity."""

from __future__ import annotations

from numbers import Real

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval, StrOptions

from experiments.models import register
from experiments.models.encoders import DEFAULT_MODEL, SentenceEmbedder, label_descriptions


@register("embed_logreg")
def embed_logreg() -> Pipeline:
    """Frozen sentence embeddings with logistic regression: cheap, and strong on small data."""
    return Pipeline([("embed", SentenceEmbedder()),
                     ("clf", LogisticRegression(class_weight="balanced", max_iter=2000))])


# The parameters every encoder-based model shares, as scikit-learn checks them when a config loads.
ENCODER_CONSTRAINTS = {
    **{key: SentenceEmbedder._parameter_constraints[key]
       for key in ("model", "max_length", "batch_size", "device", "precision")},
    "labels": ["array-like", None],
    "multilabel": ["boolean"],
}
# Cosine similarities lie in [-1, 1]; a softmax or sigmoid temperature must be positive.
_PROTOTYPE_CONSTRAINTS = {
    "threshold": [Interval(Real, -1, 1, closed="both")],
    "temperature": [Interval(Real, 0, None, closed="neither")],
}


class _Encoded(ClassifierMixin, BaseEstimator):
    """A classifier on frozen sentence embeddings, set by its ``model``, ``device``, ``batch_size``,
    ``max_length`` and ``precision`` parameters."""

    def _embedder(self) -> SentenceEmbedder:
        return SentenceEmbedder(model=self.model, device=self.device, batch_size=self.batch_size,
                                max_length=self.max_length, precision=self.precision)


@register("zeroshot_codebook")
class CodebookSimilarity(_Encoded):
    """Zero-shot: similarity of each paragraph to the codebook's label definitions and cues.

    Labels come from the codebook alone: no training labels are used.

    Each label's prototype is the mean embedding of its codebook definition
    and cue phrases. Stance is the most similar prototype (``predict_proba``
    is a softmax of the cosine similarities divided by ``temperature``).
    A frame is assigned when its similarity reaches ``threshold``
    (``predict_proba`` is a sigmoid centred on the threshold). The scores rank
    like similarities; they are not calibrated probabilities.
    """

    _parameter_constraints = {**ENCODER_CONSTRAINTS, **_PROTOTYPE_CONSTRAINTS}

    def __init__(self, labels: list[str] | None = None, multilabel: bool = False, model: str = DEFAULT_MODEL,
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@register("codebook_logreg")
class CodebookLogReg(_Encoded):
    """Codebook and labels together: embeddings + logistic regression on labels and codebook items, times the zero-shot prior.

    The codebook and the labels together, on frozen sentence embeddings.

    Two experts vote. The first is a logistic regression trained on the
    labelled paragraphs plus the codebook's own evidence for every label
    (definitions, cues and illustrations, each an extra training item of
    weight ``codebook_weight``), so a label the training documents never
    show, such as ``against`` when its only document is held out, is still
    learned. Quoted seed examples join only when their paragraph is itself
    among the training texts, so no fold sees evidence from its test part.
    The second is the zero-shot codebook similarity (``zeroshot_codebook``).
    Their log-probabilities (log-odds per frame) are averaged with weight
    ``prior_weight`` on the codebook: a product of experts.

    ``prior_weight: auto`` chooses the weight from ``PRIOR_GRID`` by the
    macro-F1 of out-of-document predictions inside the training data: each
    training document (``groups`` in ``fit``) is predicted by the experts fitted
    on the others (rows of group ``""``, auxiliary data, are always trained
    on, never scored). Without ``groups`` (or with fewer than three documents)
    ``auto`` falls back to ``DEFAULT_PRIOR``. ``prior_weight_`` says what was used.
    """

    PRIOR_GRID = (0.0, 0.25, 0.5, 0.7, 0.85, 1.0)
    DEFAULT_PRIOR = 0.7

    _parameter_constraints = {
        **ENCODER_CONSTRAINTS, **_PROTOTYPE_CONSTRAINTS,
        "C": [Interval(Real, 0, None, closed="neither")],
        "codebook_weight": [Interval(Real, 0, None, closed="left")],
        "prior_weight": [Interval(Real, 0, 1, closed="both"), StrOptions({"auto"})],
    }

    def __init__(self, labels: list[str] | None = None, multilabel: bool = False, model: str = DEFAULT_MODEL,
                 C: float = 10.0, codebook_weight: float = 1.0, prior_weight: float | str = "auto",
                 threshold: float = 0.3, temperature: float = 0.05, max_length: int = 256, batch_size: int = 16,
                 device: str = "auto", precision: str = "auto"):
        self.labels = labels
        self.multilabel = multilabel
        self.model = model
        self.C = C
        self.codebook_weight = codebook_weight
        self.prior_weight = prior_weight
        self.threshold = threshold
        self.temperature = temperature
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.precision = precision

    def _evidence(self, texts: list[str]):
        """The codebook items this training set may use: everything written for the codebook, and
        the quoted examples whose paragraph is among ``texts``."""
        from experiments import paths
        from experiments.annotations import load_paragraphs
        from experiments.codebook import label_evidence, load_codebook
        from experiments.corpus import text_hash

        items = label_evidence(load_codebook(), list(self.labels))
        if any(item.kind == "example" for item in items):
            seen = {text_hash(t) for t in texts}
            corpus = load_paragraphs(paths.PARAGRAPHS) if paths.PARAGRAPHS.exists() else {}
            items = [item for item in items if item.kind != "example"
                     or (item.paragraph in corpus and corpus[item.paragraph]["hash"] in seen)]
        return items

    def _fit_heads(self, texts: list[str], y: np.ndarray, sample_weight) -> list | LogisticRegression:
        """The learned expert: logistic regression on ``texts`` plus the codebook items they may use.

        newton-cg: a handful of iterations on a few hundred 384-wide rows, where
        lbfgs takes tens (about 10× the time for four stance classes).
        """
        items = self._evidence(texts)
        embedder = self._embedder()
        features = np.vstack([embedder.transform(texts), embedder.transform([item.text for item in items])])
        index = {label: j for j, label in enumerate(self.labels)}
        evidence_labels = np.array([index[item.label] for item in items])
        weights = np.concatenate([np.ones(len(texts)) if sample_weight is None else np.asarray(sample_weight, float),
                                  np.full(len(items), float(self.codebook_weight))])
        self.evidence_counts_ = {kind: sum(item.kind == kind for item in items)
                                 for kind in ("definition", "cue", "illustration", "example")}
        if self.multilabel:
            return [LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000, solver="newton-cg").fit(
                        features, np.concatenate([y[:, j], (evidence_labels == j).astype(int)]), sample_weight=weights)
                    for j in range(len(self.labels))]
        return LogisticRegression(C=self.C, class_weight="balanced", max_iter=3000, solver="newton-cg").fit(
            features, np.concatenate([y, evidence_labels]), sample_weight=weights)

    def _learned(self, heads, embedded: np.ndarray) -> np.ndarray:
        if self.multilabel:
            return np.column_stack([head.predict_proba(embedded)[:, 1] for head in heads])
        learned = np.full((len(embedded), len(self.labels)), 1e-6)
        learned[:, heads.classes_] = heads.predict_proba(embedded)
        return learned

    def _combine(self, prior: np.ndarray, learned: np.ndarray, a: float) -> np.ndarray:
        if self.multilabel:
            return expit(a * _logit(prior) + (1 - a) * _logit(learned))
        return softmax(a * np.log(np.clip(prior, 1e-12, None)) + (1 - a) * np.log(learned), axis=1)

    def _decide(self, proba: np.ndarray) -> np.ndarray:
        return (proba >= 0.5).astype(int) if self.multilabel else proba.argmax(axis=1)

    def _choose_prior_weight(self, texts: list[str], y: np.ndarray, sample_weight, groups) -> tuple[float, str]:
        """``prior_weight``, or for ``auto`` the grid value whose out-of-document predictions score best."""
        from sklearn.metrics import f1_score

        if self.prior_weight != "auto":
            a = float(self.prior_weight)
            if not 0.0 <= a <= 1.0:
                raise ValueError(f"prior_weight must lie between 0 and 1 or be 'auto', got {self.prior_weight!r}")
            return a, "fixed"
        documents = [g for g in np.unique(groups) if g != ""] if groups is not None else []  # "": auxiliary rows
        if len(documents) < 3:
            return self.DEFAULT_PRIOR, "auto: fewer than three training documents, default used"
        groups = np.asarray(groups)
        embedded = self._embedder().transform(texts)
        prior = self.prior_.predict_proba(texts)
        combined = {a: np.zeros_like(prior) for a in self.PRIOR_GRID}
        for document in documents:
            held = groups == document
            inner = np.flatnonzero(~held)
            heads = self._fit_heads([texts[i] for i in inner], y[inner],
                                    None if sample_weight is None else np.asarray(sample_weight)[inner])
            learned = self._learned(heads, embedded[held])
            for a in self.PRIOR_GRID:
                combined[a][held] = self._combine(prior[held], learned, a)
        labels = None if self.multilabel else list(range(len(self.labels)))
        scores = {a: f1_score(y, self._decide(p), average="macro", labels=labels, zero_division=0)
                  for a, p in combined.items()}
        best = max(self.PRIOR_GRID, key=lambda a: scores[a])  # first of equal scores: the smaller weight
        return best, f"auto: out-of-document macro-F1 over {len(documents)} training documents"

    def fit(self, X, y, sample_weight=None, groups=None):
        """Fit both experts; ``groups`` (each text's document) lets ``prior_weight: auto`` choose the weight."""
        texts = list(X)
        y = np.asarray(y)
        self.prior_ = CodebookSimilarity(labels=list(self.labels), multilabel=self.multilabel, model=self.model,
                                         threshold=self.threshold, temperature=self.temperature,
                                         max_length=self.max_length, batch_size=self.batch_size, device=self.device,
                                         precision=self.precision).fit(texts)
        self.prior_weight_, self.prior_weight_source_ = self._choose_prior_weight(texts, y, sample_weight, groups)
        heads = self._fit_heads(texts, y, sample_weight)
        if self.multilabel:
            self.heads_ = heads
        else:
            self.head_ = heads
        self.classes_ = np.arange(len(self.labels))
        return self

    def predict_proba(self, X) -> np.ndarray:
        texts = list(X)
        learned = self._learned(self.heads_ if self.multilabel else self.head_, self._embedder().transform(texts))
        return self._combine(self.prior_.predict_proba(texts), learned, self.prior_weight_)

    def predict(self, X) -> np.ndarray:
        return self._decide(self.predict_proba(X))
