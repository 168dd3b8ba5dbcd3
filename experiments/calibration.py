"""Honest confidence: calibration fitted on out-of-document predictions, and selective prediction.

A run's out-of-fold predictions are what its models do on paragraphs they
did not train on (under leave-one-document-out: on documents they never
saw). From them, per model:

- stance gets a **temperature** ``T``: calibrated probabilities are
  ``softmax(log p / T)``, fitted by minimising the negative log-likelihood;
- frames get a **threshold per frame** (the one that maximises that frame's
  F1 on the out-of-fold predictions; 0.5 for a frame with too few positives)
  and one shared **slope** ``a``: ``q = sigmoid(a * (logit p - logit t))``,
  so a frame is predicted exactly when ``q >= 0.5``.

The **confidence** of a row is the calibrated probability that its label is
right: the top stance probability, or, for frames, the mean probability
that each of the row's yes/no frame decisions is right (its accuracy is then
the share of the row's frame decisions that are right).

``calibration_report`` also says how well this works on documents the
calibration never saw: for each held-out group it fits on the other groups'
predictions only (cross-fitting), and reports the expected calibration error
(ECE) before and after, and the coverage–accuracy curve of the cross-fitted
confidences (accuracy when only the most confident x% of rows are kept).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax
from sklearn.metrics import f1_score

EPS = 1e-6
COVERAGE_POINTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def fit_temperature(proba: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that makes ``softmax(log proba / T)`` fit ``gold`` class indices best.

    >>> p = np.array([[0.99, 0.01], [0.99, 0.01], [0.99, 0.01], [0.01, 0.99]])
    >>> round(fit_temperature(p, np.array([0, 1, 0, 1])), 1) > 1  # over-confident: softened
    True
    """
    logp = np.log(np.clip(proba, EPS, None))

    def nll(log_t: float) -> float:
        return -log_softmax(logp / np.exp(log_t), axis=1)[np.arange(len(gold)), gold].mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-3, 3), method="bounded").x))


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(np.log(np.clip(proba, EPS, None)) / temperature, axis=1)


def fit_thresholds(proba: np.ndarray, gold: np.ndarray, min_positives: int = 2) -> list[float]:
    """Per frame, the probability threshold with the best F1 on these predictions (0.5 with too few positives)."""
    thresholds = []
    for j in range(gold.shape[1]):
        positives = int(gold[:, j].sum())
        if positives < min_positives:
            thresholds.append(0.5)
            continue
        candidates = np.unique(np.clip(proba[:, j], 0.01, 0.99))
        best, best_f1 = 0.5, -1.0
        for t in candidates:
            pred = proba[:, j] >= t
            tp = int((pred & (gold[:, j] == 1)).sum())
            f1 = 2 * tp / (pred.sum() + positives) if pred.sum() + positives else 0.0
            if f1 > best_f1 + 1e-12:
                best, best_f1 = float(t), f1
        thresholds.append(round(best, 6))
    return thresholds


def _frame_logits(proba: np.ndarray, thresholds: list[float]) -> np.ndarray:
    return _logit(proba) - _logit(np.asarray(thresholds))


def fit_slope(proba: np.ndarray, gold: np.ndarray, thresholds: list[float]) -> float:
    """One shared slope for every frame's threshold-centred log-odds, by negative log-likelihood."""
    z = _frame_logits(proba, thresholds)

    def nll(log_a: float) -> float:
        q = np.clip(expit(np.exp(log_a) * z), EPS, 1 - EPS)
        return -(gold * np.log(q) + (1 - gold) * np.log1p(-q)).mean()

    return float(np.exp(minimize_scalar(nll, bounds=(-5, 3), method="bounded").x))


def fit(task: str, proba: np.ndarray, gold: np.ndarray, min_positives: int = 2) -> dict:
    """Calibration parameters for one model from its out-of-fold probabilities and gold labels."""
    if task == "stance":
        return {"method": "temperature", "temperature": round(fit_temperature(proba, gold), 6)}
    thresholds = fit_thresholds(proba, gold, min_positives)
    return {"method": "frame thresholds + shared slope", "thresholds": thresholds,
            "slope": round(fit_slope(proba, gold, thresholds), 6)}


def apply(task: str, proba: np.ndarray, params: dict | None) -> np.ndarray:
    """Calibrated probabilities (``params`` None: the model's own, frames thresholded at 0.5)."""
    if params is None:
        return proba
    if task == "stance":
        return apply_temperature(proba, params["temperature"])
    return expit(params["slope"] * _frame_logits(proba, params["thresholds"]))


def confidence(task: str, calibrated: np.ndarray) -> np.ndarray:
    """Per row: the probability that the predicted label is right (stance), or the mean one of its frame decisions (frames)."""
    if task == "stance":
        return calibrated.max(axis=1)
    return np.maximum(calibrated, 1 - calibrated).mean(axis=1)


def correct(task: str, calibrated: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Per row, how right the calibrated decision is: 1 or 0 for stance, the share of right frame decisions for frames."""
    if task == "stance":
        return (calibrated.argmax(axis=1) == gold).astype(float)
    return ((calibrated >= 0.5).astype(int) == gold).mean(axis=1)


def ece(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: the gap between confidence and accuracy, averaged over equal-width bins.

    >>> ece(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 1, 1, 0]))
    0.1
    """
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.sum() * abs(conf[mask].mean() - right[mask].mean())
    return round(float(total / len(conf)), 4)


def coverage_curve(conf: np.ndarray, right: np.ndarray, points=COVERAGE_POINTS) -> list[dict]:
    """Accuracy of the most confident share of rows, for each share in ``points``.

    >>> coverage_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 1, 0, 0]), points=(0.5, 1.0))
    [{'coverage': 0.5, 'n': 2, 'accuracy': 1.0}, {'coverage': 1.0, 'n': 4, 'accuracy': 0.5}]
    """
    order = np.argsort(-conf, kind="stable")
    out = []
    for share in points:
        n = max(1, int(round(share * len(conf))))
        out.append({"coverage": share, "n": n, "accuracy": round(float(right[order[:n]].mean()), 4)})
    return out


def calibration_report(task: str, proba: np.ndarray, gold: np.ndarray, groups: np.ndarray,
                       min_positives: int = 2, score=None) -> dict:
    """Parameters fitted on every row, and cross-fitted ECE and coverage on groups the fit never saw.

    ``score(gold, decided, groups)``, when given, scores the cross-fitted
    decisions (what ``predict`` outputs) as ``{"value": ..., "ci": [...]}``;
    without it the value is the plain macro-F1.
    """
    params = fit(task, proba, gold, min_positives)
    crossfit = np.zeros_like(proba, dtype=float)
    for group in np.unique(groups):
        held = groups == group
        if held.all():  # a single group: nothing to fit on but itself
            crossfit[held] = apply(task, proba[held], params)
            continue
        fold_params = fit(task, proba[~held], gold[~held], min_positives)
        crossfit[held] = apply(task, proba[held], fold_params)
    conf_raw, right_raw = confidence(task, proba), correct(task, proba, gold)  # the model's own scores, frames at 0.5
    conf_cal, right_cal = confidence(task, crossfit), correct(task, crossfit, gold)
    decided = crossfit.argmax(axis=1) if task == "stance" else (crossfit >= 0.5).astype(int)
    if score is None:
        labels = list(range(proba.shape[1])) if task == "stance" else None
        calibrated_f1 = {"value": round(float(f1_score(gold, decided, average="macro", zero_division=0,
                                                       labels=labels)), 4), "ci": None}
    else:
        calibrated_f1 = score(gold, decided, groups)
    return {
        **params,
        "n": int(len(gold)),
        # What predict outputs (frames thresholded at the out-of-document thresholds), scored on unseen groups.
        "calibrated_macro_f1": calibrated_f1,
        "ece_uncalibrated": ece(conf_raw, right_raw),
        "ece_calibrated": ece(conf_cal, right_cal),
        "evaluated_on": "each held-out group with calibration fitted on the other groups' out-of-fold predictions",
        "coverage": coverage_curve(conf_cal, right_cal),
    }


def from_records(records: list[dict], task: str, labels: list[str], min_positives: int = 2,
                 score=None) -> dict[str, dict]:
    """``calibration_report`` per model from a run's prediction records (first repeat, no learning-curve parts)."""
    by_model: dict[str, list[dict]] = {}
    for r in records:
        if r["task"] == task and "fraction" not in r and r["repeat"] == 0:
            by_model.setdefault(r["model"], []).append(r)
    out = {}
    for model, rows in by_model.items():
        proba = np.array([[r["proba"].get(label, 0.0) for label in labels] for r in rows], dtype=float)
        if task == "stance":
            gold = np.array([labels.index(r["gold"]) for r in rows])
        else:
            gold = np.array([[int(label in r["gold"]) for label in labels] for r in rows])
        groups = np.array([r["doc_id"] for r in rows])
        out[model] = calibration_report(task, proba, gold, groups, min_positives, score)
    return out
