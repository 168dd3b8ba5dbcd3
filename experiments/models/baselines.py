"""scikit-learn baselines: dummies, TF-IDF with linear models, complement naive Bayes.

Each TF-IDF model is a pipeline of ``features`` (``TfidfFeatures``) and ``clf``, so a config sets
``clf__C`` or ``features__word_ngrams``; a default differs from scikit-learn's only where written here.
"""

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


@register("majority")
def majority() -> DummyClassifier:
    """Always the most frequent training label: the floor every model must beat."""
    return DummyClassifier(strategy="most_frequent")


@register("stratified")
def stratified() -> DummyClassifier:
    """Random labels drawn with the training label frequencies."""
    return DummyClassifier(strategy="stratified")


@register("tfidf_logreg")
def tfidf_logreg() -> Pipeline:
    """Word 1–3-gram and character 2–5-gram TF-IDF with logistic regression.

    newton-cg converges in a handful of iterations on few, very wide rows
    (15× faster than lbfgs on the seed corpus).
    """
    return Pipeline([("features", TfidfFeatures()), ("clf", LogisticRegression(max_iter=2000, solver="newton-cg"))])


@register("tfidf_svm")
def tfidf_svm() -> Pipeline:
    """The same features with a linear SVM (scores are softmaxed margins, not calibrated)."""
    return Pipeline([("features", TfidfFeatures()), ("clf", LinearSVCProba(max_iter=5000))])


@register("tfidf_cnb")
def tfidf_cnb() -> Pipeline:
    """The same features with complement naive Bayes, which copes well with skewed classes."""
    return Pipeline([("features", TfidfFeatures()), ("clf", ComplementNB(alpha=0.3))])
