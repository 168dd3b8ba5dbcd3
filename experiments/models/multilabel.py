"""One-vs-rest for frames, with an explicit rule for frames too rare to learn."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.pipeline import Pipeline


def constant_columns(Y: np.ndarray) -> list[int]:
    """Frames that every training paragraph has, or none has: nothing can be learned about them.

    >>> constant_columns(np.array([[1, 0, 1], [1, 1, 0]]))
    [0]
    """
    positives = np.asarray(Y).sum(axis=0)
    return [j for j, p in enumerate(positives) if p in (0, len(Y))]


class OneVsRestFrames(ClassifierMixin, BaseEstimator):
    """One binary classifier per frame; ``predict_proba`` gives P(frame) per column.

    A frame with fewer than ``min_train_positives`` positive (or negative)
    training paragraphs is not learned: it predicts its training prevalence
    as the probability, and its column index is listed in ``degenerate_`` so
    the evaluation can report it.
    """

    def __init__(self, estimator, min_train_positives: int = 2, threshold: float = 0.5):
        self.estimator = estimator
        self.min_train_positives = min_train_positives
        self.threshold = threshold

    @classmethod
    def wrap(cls, estimator, min_train_positives: int = 2):
        """Wrap a classifier, or the final step of a pipeline so its features are computed once."""
        if isinstance(estimator, Pipeline):
            name, final = estimator.steps[-1]
            return Pipeline([*estimator.steps[:-1], (name, cls(final, min_train_positives))])
        return cls(estimator, min_train_positives)

    def _for_frame(self, j: int):
        """A fresh copy of the estimator for frame ``j``. A seeded random estimator gets a seed of its own per
        frame: with one seed for all, a random baseline draws every frame from the same stream, so its frame
        sets come out nested (frame j is on only where a more frequent frame is) instead of independent."""
        estimator = clone(self.estimator)
        seed = estimator.get_params().get("random_state")
        if isinstance(seed, (int, np.integer)):
            estimator.set_params(random_state=int(seed) + 1009 * (j + 1))
        return estimator

    def fit(self, X, Y):
        Y = np.asarray(Y)
        n, n_frames = Y.shape
        self.classes_ = np.arange(n_frames)
        self.estimators_ = []
        self.degenerate_ = []
        for j in range(n_frames):
            positives = int(Y[:, j].sum())
            if positives < self.min_train_positives or n - positives < self.min_train_positives:
                self.estimators_.append(positives / n)
                self.degenerate_.append(j)
            else:
                self.estimators_.append(self._for_frame(j).fit(X, Y[:, j]))
        return self

    def predict_proba(self, X):
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        columns = []
        for est in self.estimators_:
            if isinstance(est, float):
                columns.append(np.full(n, est))
            else:
                columns.append(est.predict_proba(X)[:, list(est.classes_).index(1)])
        return np.column_stack(columns)

    def predict(self, X):
        return (self.predict_proba(X) >= self.threshold).astype(int)
