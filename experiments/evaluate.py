"""Cross-validated evaluation: every model on every fold, then metrics from the predictions.

``evaluate_task`` fits each configured model on each training part and
predicts its test part. Folds are the outer loop so that models sharing
features vectorise once per fold. Metrics are computed from the collected
predictions by ``metrics_from_predictions``, the same function that
re-scores a saved ``predictions.jsonl``.
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from tqdm.auto import tqdm

from experiments.config import Config, ModelConfig
from experiments.data import TaskData
from experiments.metrics import summarize
from experiments.models import build_model
from experiments.models.features import clear_feature_cache
from experiments.protocols import make_folds


@dataclass
class TaskResult:
    predictions: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    degenerate: dict[str, dict[str, int]] = field(default_factory=dict)
    folds: int = 0
    train_sizes: list[int] = field(default_factory=list)


def _final_step(estimator):
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


SINGLE_CLASS = "(single-class training part)"


def fit_model(spec: ModelConfig, data: TaskData, rows: np.ndarray, config: Config, seed: int):
    """Build and fit one configured model on ``rows`` of ``data``.

    A stance training part with a single class gets a constant predictor of
    that class (no classifier can learn from one class); its
    ``degenerate_`` names it so the run reports it.
    """
    if not data.multilabel and len(np.unique(data.y[rows])) < 2:
        model = DummyClassifier(strategy="most_frequent")
        model.degenerate_ = [SINGLE_CLASS]
    else:
        model = build_model(spec.name, data.task, seed, spec.params, config.min_train_positives,
                            labels=data.labels, device=config.device, precision=config.precision)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit([data.texts[i] for i in rows], data.y[rows])
    return model


def degenerate_labels(model, labels: list[str]) -> list[str]:
    """The labels a fitted model could not learn (predicted at their training prevalence)."""
    found = getattr(_final_step(model), "degenerate_", [])
    return [label if isinstance(label, str) else labels[label] for label in found]


def evaluate_task(data: TaskData, config: Config, progress: bool = True) -> TaskResult:
    """Fit and predict every model on every fold of the configured protocol."""
    folds = make_folds(data, config.protocol, config.seed)
    result = TaskResult(folds=len(folds), train_sizes=[len(f.train) for f in folds])
    seconds: dict[str, float] = defaultdict(float)
    degenerate: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    bar = tqdm(total=len(folds) * len(config.models), desc=f"{config.name}:{data.task}", unit="fit",
               disable=not progress, leave=False)
    for fold in folds:
        clear_feature_cache()
        x_test = [data.texts[i] for i in fold.test]
        for spec in config.models:
            start = time.perf_counter()
            model = fit_model(spec, data, fold.train, config, config.seed + fold.repeat)
            proba = np.asarray(model.predict_proba(x_test))
            pred = model.predict(x_test)
            seconds[spec.display] += time.perf_counter() - start
            for label in degenerate_labels(model, data.labels):
                degenerate[spec.display][label] += 1
            result.predictions.extend(_records(data, spec.display, fold, model, proba, pred))
            bar.update()
    bar.close()
    clear_feature_cache()
    result.seconds = {k: round(v, 3) for k, v in seconds.items()}
    result.degenerate = {m: dict(v) for m, v in degenerate.items()}
    return result


def _records(data: TaskData, model_name: str, fold, model, proba: np.ndarray, pred: np.ndarray) -> list[dict]:
    if data.multilabel:
        columns = data.labels
    else:
        # A training part may lack a class; map the model's columns back to the label set.
        columns = [data.labels[int(c)] for c in model.classes_]
    out = []
    for row, i in enumerate(fold.test):
        probs = {label: 0.0 for label in data.labels}
        probs.update({label: round(float(p), 6) for label, p in zip(columns, proba[row])})
        out.append({
            "task": data.task,
            "model": model_name,
            "repeat": fold.repeat,
            "fold": fold.fold,
            "id": data.ids[i],
            "doc_id": str(data.doc_ids[i]),
            "gold": data.decode(data.y[i]),
            "pred": data.decode(pred[row]),
            "proba": probs,
        })
    return out


def metrics_from_predictions(predictions: list[dict], task: str, labels: list[str], config: Config) -> dict:
    """Metrics per model from prediction records (as saved in ``predictions.jsonl``)."""
    by_model: dict[str, list[dict]] = defaultdict(list)
    for p in predictions:
        if p["task"] == task:
            by_model[p["model"]].append(p)
    encode = _encoder(task, labels)
    subset = [s for s in config.metrics.stance_subset if s in labels]
    out = {}
    for model_name, records in by_model.items():
        repeats: dict[int, dict[str, dict]] = defaultdict(dict)
        folds: dict[tuple[int, int], list[dict]] = defaultdict(list)
        for r in records:
            repeats[r["repeat"]][r["id"]] = r
            folds[(r["repeat"], r["fold"])].append(r)
        order = sorted(repeats[min(repeats)])
        pooled = [encode([repeats[k][i] for i in order]) for k in sorted(repeats)]
        per_fold = [encode(folds[key]) for key in sorted(folds)]
        out[model_name] = summarize(
            task, labels, subset, pooled, per_fold,
            resamples=config.metrics.bootstrap, confidence=config.metrics.confidence,
            seed=config.seed, min_support=config.metrics.min_support,
        )
    return out


def _encoder(task: str, labels: list[str]):
    index = {label: j for j, label in enumerate(labels)}

    def encode(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        if task == "stance":
            return (np.array([index[r["gold"]] for r in records]), np.array([index[r["pred"]] for r in records]))
        gold = np.zeros((len(records), len(labels)), dtype=int)
        pred = np.zeros_like(gold)
        for i, r in enumerate(records):
            gold[i, [index[f] for f in r["gold"]]] = 1
            pred[i, [index[f] for f in r["pred"]]] = 1
        return gold, pred

    return encode
