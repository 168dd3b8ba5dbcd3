"""Metrics with bootstrap confidence intervals.

Every metric is computed from weighted counts, so one matrix product scores
a thousand bootstrap resamples at once: row ``b`` of the weight matrix ``W``
says how often each test paragraph is drawn in resample ``b`` (a row of ones
is the plain score). The same resamples are used for every model of a run,
so differences between models are paired.

Undefined values are ``nan``, never a misleading 0 or 1: precision of a label
that is never predicted, recall of a label absent from the test data, F1 of a
label that is neither. Macro averages run over the labels that are defined,
as scikit-learn does when it is given no explicit label list.
"""

from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def stance_scores(gold: np.ndarray, pred: np.ndarray, labels: list[str], subset: list[str], W: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1, subset macro-F1 and per-label P/R/F1 for each weight row.

    >>> s = stance_scores(np.array([0, 0, 1]), np.array([0, 1, 1]), ["a", "b"], ["a"], np.ones((1, 3)))
    >>> float(s["accuracy"][0]), float(s["f1/a"][0]), float(s["f1/b"][0])
    (0.6666666666666666, 0.6666666666666666, 0.6666666666666666)
    """
    k = len(labels)
    onehot = np.zeros((len(gold), k * k))
    onehot[np.arange(len(gold)), gold * k + pred] = 1
    confusion = (W @ onehot).reshape(-1, k, k)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support = confusion.sum(axis=2)
    predicted = confusion.sum(axis=1)
    f1 = _ratio(2 * tp, support + predicted)
    out = {
        "accuracy": _ratio(tp.sum(axis=1), confusion.sum(axis=(1, 2))),
        "macro_f1": _nanmean(f1, axis=1),
        "macro_f1_subset": _nanmean(f1[:, [labels.index(s) for s in subset]], axis=1),
    }
    precision, recall = _ratio(tp, predicted), _ratio(tp, support)
    for j, label in enumerate(labels):
        out[f"precision/{label}"] = precision[:, j]
        out[f"recall/{label}"] = recall[:, j]
        out[f"f1/{label}"] = f1[:, j]
    return out


def frame_scores(gold: np.ndarray, pred: np.ndarray, labels: list[str], subset: list[str], W: np.ndarray) -> dict[str, np.ndarray]:
    """Micro- and macro-F1, Hamming loss, subset accuracy and per-frame P/R/F1 for each weight row.

    >>> g = np.array([[1, 0], [1, 1]]); p = np.array([[1, 0], [0, 1]])
    >>> s = frame_scores(g, p, ["x", "y"], [], np.ones((1, 2)))
    >>> float(s["micro_f1"][0]), float(s["hamming_loss"][0]), float(s["subset_accuracy"][0])
    (0.8, 0.25, 0.5)
    """
    gold, pred = gold.astype(bool), pred.astype(bool)
    tp, fp, fn = W @ (gold & pred), W @ (~gold & pred), W @ (gold & ~pred)
    n = W.sum(axis=1)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    out = {
        "micro_f1": _ratio(2 * tp.sum(axis=1), (2 * tp + fp + fn).sum(axis=1)),
        "macro_f1": _nanmean(f1, axis=1),
        "hamming_loss": _ratio(W @ (gold != pred).sum(axis=1), n * gold.shape[1]),
        "subset_accuracy": _ratio(W @ (gold == pred).all(axis=1), n),
    }
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    for j, label in enumerate(labels):
        out[f"precision/{label}"] = precision[:, j]
        out[f"recall/{label}"] = recall[:, j]
        out[f"f1/{label}"] = f1[:, j]
    return out


SCORERS = {"stance": stance_scores, "frames": frame_scores}
HEADLINE = {"stance": ["accuracy", "macro_f1", "macro_f1_subset"], "frames": ["micro_f1", "macro_f1", "hamming_loss", "subset_accuracy"]}


def bootstrap_weights(
    n: int, resamples: int, seed: int, chunk: int = 200, groups: np.ndarray | None = None
) -> Iterator[np.ndarray]:
    """Multinomial resampling weights over ``n`` test paragraphs, in chunks of rows.

    With ``groups`` (one group index per paragraph, e.g. its document) whole
    groups are drawn with replacement and every paragraph of a drawn group
    gets the group's count: the clustered bootstrap, for paragraphs that are
    not independent. The stream depends only on ``n``, ``groups``,
    ``resamples`` and ``seed``, so every model in a run sees the same
    resamples, which makes differences between models paired.

    >>> W = next(bootstrap_weights(4, 3, seed=0, groups=np.array([0, 0, 1, 1])))
    >>> bool((W[:, 0] == W[:, 1]).all() and (W[:, 2] == W[:, 3]).all() and (W.sum(axis=1) == 4).all())
    True
    """
    rng = np.random.default_rng(seed)
    if groups is not None:
        _, index = np.unique(groups, return_inverse=True)
        g = int(index.max()) + 1
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        if groups is None:
            yield rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        else:
            yield rng.multinomial(g, np.full(g, 1.0 / g), size=size).astype(float)[:, index]
        done += size


def _value(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 6)


def summarize(
    task: str,
    labels: list[str],
    subset: list[str],
    pooled: list[tuple[np.ndarray, np.ndarray]],
    folds: list[tuple[np.ndarray, np.ndarray]],
    resamples: int,
    confidence: float,
    seed: int,
    min_support: int,
    groups: np.ndarray | None = None,
    keep: dict | None = None,
) -> dict:
    """Point estimate, fold mean and std, and bootstrap CI for every metric of one model.

    ``pooled`` holds one ``(gold, pred)`` pair per repeat, each over the same
    test paragraphs in the same order (out-of-fold predictions); ``folds``
    holds the ``(gold, pred)`` of every single fold. The bootstrap resamples
    paragraphs (or, with ``groups``, whole documents) and averages each
    resample over the repeats. When ``keep`` is a dict, the point estimate
    and the resampled values of each headline metric are stored in it, for
    paired comparisons between models.
    """
    scorer = SCORERS[task]
    n = len(pooled[0][0])
    plain = [scorer(g, p, labels, subset, np.ones((1, n))) for g, p in pooled]
    point = {k: _nanmean(np.array([s[k][0] for s in plain]), axis=0) for k in _keys(task, labels)}
    per_fold = [scorer(g, p, labels, subset, np.ones((1, len(g)))) for g, p in folds]
    draws: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for W in bootstrap_weights(n, resamples, seed, groups=groups):
        scored = [scorer(g, p, labels, subset, W) for g, p in pooled]
        for k in draws:
            draws[k].append(_nanmean(np.stack([s[k] for s in scored]), axis=0))
    alpha = (1 - confidence) / 2

    def describe(key: str) -> dict:
        fold_values = np.array([f[key][0] for f in per_fold])
        fold_values = fold_values[~np.isnan(fold_values)]
        boot = np.concatenate(draws[key])
        boot = boot[~np.isnan(boot)]
        low, high = (np.quantile(boot, [alpha, 1 - alpha]) if len(boot) else (np.nan, np.nan))
        return {
            "value": _value(point[key]),
            "mean": _value(fold_values.mean()) if len(fold_values) else None,
            "std": _value(fold_values.std(ddof=1)) if len(fold_values) > 1 else None,
            "ci": [_value(low), _value(high)],
        }

    if keep is not None:
        keep.update({k: (float(point[k]), np.concatenate(draws[k])) for k in HEADLINE[task]})
    gold_pooled = pooled[0][0]
    support = np.bincount(gold_pooled, minlength=len(labels)) if task == "stance" else gold_pooled.sum(axis=0)
    result = {"n": n, "metrics": {k: describe(k) for k in HEADLINE[task]}, "per_label": {}}
    for j, label in enumerate(labels):
        entry = {m: describe(f"{m}/{label}") for m in ("precision", "recall", "f1")}
        entry["support"] = int(support[j])
        entry["estimable"] = bool(support[j] >= min_support)
        result["per_label"][label] = entry
    return result


def _keys(task: str, labels: list[str]) -> list[str]:
    return [*HEADLINE[task], *(f"{m}/{l}" for l in labels for m in ("precision", "recall", "f1"))]


def paired_tests(kept: dict[str, dict], metrics: list[str], confidence: float) -> list[dict]:
    """Every pair of models compared on the same resamples: difference, its CI and a two-sided p-value.

    In each comparison ``a`` is the model with the higher point estimate, so
    ``diff`` = a − b is never negative. ``kept`` maps a model to what ``summarize(..., keep=...)`` stored. The
    p-value is the paired bootstrap's: twice the smaller share of resampled
    differences on either side of zero (capped at 1), so p < 0.05 means the
    95% interval of the difference excludes zero.

    >>> kept = {"a": {"f1": (0.6, np.array([0.5, 0.6, 0.7]))}, "b": {"f1": (0.4, np.array([0.3, 0.4, 0.5]))}}
    >>> paired_tests(kept, ["f1"], 0.95)[0]["p"]
    0.0
    """
    alpha = (1 - confidence) / 2
    out = []
    names = list(kept)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for metric in metrics:
                first, second = a, b
                (pa, da), (pb, db) = kept[a][metric], kept[b][metric]
                if pb > pa:  # report the better model first, so differences read as gains
                    first, second, (pa, da), (pb, db) = b, a, (pb, db), (pa, da)
                if len(da) != len(db):
                    continue  # different test sets: not comparable
                diff = da - db
                diff = diff[~np.isnan(diff)]
                if not len(diff) or np.isnan(pa) or np.isnan(pb):
                    continue
                low, high = np.quantile(diff, [alpha, 1 - alpha])
                p = min(1.0, 2 * min(float((diff <= 0).mean()), float((diff >= 0).mean())))
                out.append({"a": first, "b": second, "metric": metric, "diff": _value(pa - pb), "ci": [_value(low), _value(high)],
                            "p": round(p, 4), "resamples": int(len(diff))})
    return out


def calibration_bins(confidence, correct, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A reliability diagram's bins and the expected calibration error (ECE).

    Returns, per bin, the mean confidence and the share of right predictions
    (both nan where the bin is empty) and the number of predictions, then the
    ECE: the count-weighted mean of |share right − mean confidence|. Bin ``i``
    holds the confidences in ``[i/bins, (i+1)/bins)``; the last also holds 1.0.
    (scikit-learn's ``calibration_curve`` drops empty bins and gives neither
    the counts nor the ECE.)

    Two bins: {0.1, 0.2} with 1 of 2 right and {0.8, 0.9, 0.95} with 2 of 3
    right; ECE = 2/5·|1/2 − 0.15| + 3/5·|2/3 − 0.88333| = 0.14 + 0.13 = 0.27.

    >>> conf, acc, counts, ece = calibration_bins([0.1, 0.2, 0.8, 0.9, 0.95], [0, 1, 1, 1, 0], bins=2)
    >>> conf.round(4).tolist(), acc.round(4).tolist(), counts.tolist(), round(ece, 4)
    ([0.15, 0.8833], [0.5, 0.6667], [2, 3], 0.27)
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    index = np.clip(np.floor(confidence * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    mean_confidence = _ratio(np.bincount(index, weights=confidence, minlength=bins), counts)
    accuracy = _ratio(np.bincount(index, weights=correct, minlength=bins), counts)
    gaps = np.nan_to_num(np.abs(accuracy - mean_confidence))
    ece = float((counts * gaps).sum() / counts.sum()) if counts.sum() else float("nan")
    return mean_confidence, accuracy, counts, ece
