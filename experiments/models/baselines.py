"""scikit-learn baselines: dummies, TF-IDF with linear models, complement naive Bayes."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, softmax
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import ComplementNB
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC

from experiments.models import register
from experiments.models.features import TfidfFeatures


class LinearSVCProba(LinearSVC):
    """A linear SVM whose ``predict_proba`` is the softmax (sigmoid for two classes) of its margins.

    These scores rank like the margins but are not calibrated probabilities.
    """

    def predict_proba(self, X):
        margins = self.decision_function(X)
        if margins.ndim == 1:
            positive = expit(margins)
            return np.column_stack([1 - positive, positive])
        return softmax(margins, axis=1)


def _tfidf(word_ngrams, char_ngrams, min_df) -> TfidfFeatures:
    return TfidfFeatures(word_ngrams=tuple(word_ngrams), char_ngrams=tuple(char_ngrams), min_df=min_df)


@register("majority")
def majority(seed: int):
    """Always the most frequent training label: the floor every model must beat."""
    return DummyClassifier(strategy="most_frequent")


@register("stratified")
def stratified(seed: int):
    """Random labels drawn with the training label frequencies."""
    return DummyClassifier(strategy="stratified", random_state=seed)


@register("tfidf_logreg")
def tfidf_logreg(seed: int, C: float = 1.0, class_weight: str | None = None, word_ngrams=(1, 3),
                 char_ngrams=(2, 5), min_df: int = 1, max_iter: int = 2000, solver: str = "newton-cg"):
    """Word 1–3-gram and character 2–5-gram TF-IDF with logistic regression.

    newton-cg converges in a handful of iterations on few, very wide rows
    (15× faster than lbfgs on the seed corpus).
    """
    return Pipeline([
        ("features", _tfidf(word_ngrams, char_ngrams, min_df)),
        ("clf", LogisticRegression(C=C, class_weight=class_weight, max_iter=max_iter, solver=solver, random_state=seed)),
    ])


@register("tfidf_svm")
def tfidf_svm(seed: int, C: float = 1.0, class_weight: str | None = None, word_ngrams=(1, 3),
              char_ngrams=(2, 5), min_df: int = 1, max_iter: int = 5000):
    """The same features with a linear SVM (scores are softmaxed margins, not calibrated)."""
    return Pipeline([
        ("features", _tfidf(word_ngrams, char_ngrams, min_df)),
        ("clf", LinearSVCProba(C=C, class_weight=class_weight, max_iter=max_iter, random_state=seed)),
    ])


@register("tfidf_cnb")
def tfidf_cnb(seed: int, alpha: float = 0.3, word_ngrams=(1, 3), char_ngrams=(2, 5), min_df: int = 1):
    """The same features with complement naive Bayes, which copes well with skewed classes."""
    return Pipeline([
        ("features", _tfidf(word_ngrams, char_ngrams, min_df)),
        ("clf", ComplementNB(alpha=alpha)),
    ])
