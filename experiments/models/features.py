"""TF-IDF features shared between models of the same fold.

Several models in a config use the same word and character n-gram features.
``TfidfFeatures`` remembers what it fitted, keyed by its parameters and the
exact training texts, so within one fold the vectoriser is fitted once and
each matrix is computed once, however many models use it.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

_CACHE_SIZE = 32
_FITTED: OrderedDict = OrderedDict()
_MATRICES: OrderedDict = OrderedDict()


def clear_feature_cache() -> None:
    _FITTED.clear()
    _MATRICES.clear()


def _texts_key(texts) -> str:
    digest = hashlib.sha1()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x1f")
    return digest.hexdigest()


def _remember(cache: OrderedDict, key, value):
    cache[key] = value
    while len(cache) > _CACHE_SIZE:
        cache.popitem(last=False)
    return value


class TfidfFeatures(TransformerMixin, BaseEstimator):
    """Word n-gram plus character n-gram TF-IDF, stacked side by side.

    >>> TfidfFeatures(word_ngrams=(1, 1), char_ngrams=(2, 2)).fit_transform(["ab c", "c d"]).shape
    (2, 8)
    """

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
        texts = list(X)
        key = (repr(sorted(self.get_params().items())), _texts_key(texts))
        union = _FITTED.get(key)
        if union is None:
            union = self._union()
            _remember(_MATRICES, (key, key[1]), union.fit_transform(texts))
            _remember(_FITTED, key, union)
        self.union_ = union
        self.key_ = key
        return self

    def transform(self, X):
        texts = list(X)
        key = (self.key_, _texts_key(texts))
        matrix = _MATRICES.get(key)
        if matrix is None:
            matrix = _remember(_MATRICES, key, self.union_.transform(texts))
        return matrix

    def get_feature_names_out(self, input_features=None):
        return self.union_.get_feature_names_out()
