"""TF-IDF features, and the store through which the models of one training part share fitted feature steps.

Several models in a config use the same word and character n-gram features.
The evaluation loop makes one ``FeatureStore`` per training part and fits
every pipeline through it (``Pipeline(memory=store)``, scikit-learn's own
caching hook), so the vectoriser is fitted once however many models use it,
and each set of test texts is transformed once per fitted vectoriser. The
store, and all it holds, goes when the loop moves to the next training part.
"""

from __future__ import annotations

import inspect
from numbers import Integral

import joblib
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.utils._param_validation import Interval


class TfidfFeatures(TransformerMixin, BaseEstimator):
    """Word n-gram plus character n-gram TF-IDF, stacked side by side.

    >>> TfidfFeatures(word_ngrams=(1, 1), char_ngrams=(2, 2)).fit_transform(["ab c", "c d"]).shape
    (2, 8)
    """

    _parameter_constraints = {
        "word_ngrams": [tuple],
        "char_ngrams": [tuple],
        "min_df": [Interval(Integral, 1, None, closed="left")],
        "sublinear_tf": ["boolean"],
        "lowercase": ["boolean"],
    }

    def __init__(self, word_ngrams=(1, 3), char_ngrams=(2, 5), min_df=1, sublinear_tf=True, lowercase=True):
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.sublinear_tf = sublinear_tf
        self.lowercase = lowercase

    def _union(self) -> FeatureUnion:
        common = dict(min_df=self.min_df, sublinear_tf=self.sublinear_tf, lowercase=self.lowercase)
        return FeatureUnion(
            [
                ("word", TfidfVectorizer(analyzer="word", ngram_range=tuple(self.word_ngrams), **common)),
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(self.char_ngrams), **common)),
            ]
        )

    def fit(self, X, y=None):
        self.fit_transform(X)
        return self

    def fit_transform(self, X, y=None):
        self.union_ = self._union()
        return self.union_.fit_transform(list(X))

    def transform(self, X):
        return self.union_.transform(list(X))

    def get_feature_names_out(self, input_features=None):
        return self.union_.get_feature_names_out()


class FeatureStore:
    """The feature steps fitted on one training part, shared by every model that uses the same one.

    Give it to a pipeline as ``memory`` (it has the ``cache`` method of
    ``joblib.Memory``, kept in memory): a step of the same class and
    parameters fitted on the same texts and labels is fitted once and the
    fitted step is shared. ``predict`` then transforms a set of texts once
    per fitted step. Keep one store per training part, and drop it after.

    >>> from sklearn.linear_model import LogisticRegression
    >>> store = FeatureStore()
    >>> texts, y = ["war and bombs", "peace talks", "more bombs", "talks again"], [0, 1, 0, 1]
    >>> models = [store.share(Pipeline([("features", TfidfFeatures()), ("clf", LogisticRegression(C=C))])).fit(texts, y)
    ...           for C in (1.0, 10.0)]
    >>> models[0][0] is models[1][0], store.fits
    (True, 1)
    """

    def __init__(self):
        self._fitted: dict[str, object] = {}
        self._matrices: dict[tuple, object] = {}
        self.fits = 0

    def cache(self, func, ignore=(), **_):
        """``func`` (scikit-learn's fit-and-transform of one step) remembered by the hash of its arguments."""
        signature = inspect.signature(func)

        def cached(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            key = joblib.hash({k: v for k, v in bound.arguments.items() if k not in ignore})
            if key not in self._fitted:
                self._fitted[key] = func(*args, **kwargs)
                self.fits += 1
            return self._fitted[key]

        return cached

    def share(self, model):
        """``model``, fitting its feature steps through this store when it is a pipeline."""
        if isinstance(model, Pipeline):
            model.set_params(memory=self)
        return model

    def predict(self, model, X) -> tuple:
        """``model.predict_proba(X)`` and ``model.predict(X)``; a pipeline's feature steps transform ``X`` once."""
        if not isinstance(model, Pipeline):
            return model.predict_proba(X), model.predict(X)
        head = [step for _, step in model.steps[:-1] if step is not None and not isinstance(step, str)]  # not passthrough
        key = (*map(id, head), joblib.hash(X))
        if key not in self._matrices:
            Xt = X
            for step in head:
                Xt = step.transform(Xt)
            # The steps are kept beside their matrix, so their ids cannot be reused while the key is.
            self._matrices[key] = (Xt, head)
        Xt = self._matrices[key][0]
        return model[-1].predict_proba(Xt), model[-1].predict(Xt)
