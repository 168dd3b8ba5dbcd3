"""Cross-validated evaluation: every model on every fold, then metrics from the predictions.

``evaluate_task`` fits each configured model on each training part and
predicts its test part. Folds are the outer loop so that the models of a
fold share one ``FeatureStore``: models with the same feature step fit it
once and transform the test part once. With a learning curve, the first repeat's
folds are also scored with smaller random parts of each training part; those
prediction records carry a ``fraction``. With a stance target column and
``target_mode: per_target``, one model per target is fitted on each fold and
the predictions are pooled. Metrics come from the collected predictions by
``task_metrics``, the same function that re-scores a saved
``predictions.jsonl``.
"""

from __future__ import annotations

import inspect
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
from experiments.errors import UserError
from experiments.metrics import HEADLINE, paired_tests, summarize
from experiments.models import build_model
from experiments.models.features import FeatureStore
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


def fit_model(spec: ModelConfig, data: TaskData, rows: np.ndarray, config: Config, seed: int,
              features: FeatureStore | None = None):
    """Build and fit one configured model on ``rows`` of ``data`` and the auxiliary rows.

    With ``features``, a pipeline fits its feature steps through that store,
    sharing them with the other models of the same training part.

    The auxiliary rows (``data.auxiliary``) join every training part and are
    never predicted; when their weight is not 1 the model gets
    ``sample_weight``. A stance training part with a single class gets a
    constant predictor of that class (no classifier can learn from one
    class); its ``degenerate_`` names it so the run reports it.
    """
    texts, y, weights = [data.texts[i] for i in rows], data.y[rows], None
    if data.auxiliary is not None and len(data.auxiliary) and spec.auxiliary:
        texts += data.auxiliary.texts
        y = np.concatenate([y, data.auxiliary.y])
        if np.any(data.auxiliary.weights != 1.0):
            weights = np.concatenate([np.ones(len(rows)), data.auxiliary.weights])
    if not data.multilabel and len(np.unique(y)) < 2:
        model = DummyClassifier(strategy="most_frequent")
        model.degenerate_ = [SINGLE_CLASS]
    else:
        model = build_model(spec.name, data.task, seed, spec.params, config.min_train_positives,
                            labels=data.labels, device=config.device, precision=config.precision)
        if features is not None:
            model = features.share(model)
    fit_params = {} if weights is None else _sample_weight(model, weights, spec)
    if "groups" in inspect.signature(_final_step(model).fit).parameters:
        # A model that chooses its own settings out of document gets each row's document (auxiliary rows: "").
        fit_params["groups"] = np.concatenate([data.doc_ids[rows].astype(str), [""] * (len(texts) - len(rows))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(texts, y, **fit_params)
    return model


def _sample_weight(model, weights: np.ndarray, spec: ModelConfig) -> dict[str, np.ndarray]:
    """``weights`` as the keyword argument ``model.fit`` takes: for a pipeline, its last step's."""
    name, final = model.steps[-1] if hasattr(model, "steps") else (None, model)
    if "sample_weight" not in inspect.signature(final.fit).parameters:
        raise UserError(f"data.auxiliary: model {spec.display!r} cannot weight its training rows; "
                        "set weight: 1.0 for every auxiliary dataset, or leave this model out")
    return {"sample_weight" if name is None else f"{name}__sample_weight": weights}


def degenerate_labels(model, labels: list[str]) -> list[str]:
    """The labels a fitted model could not learn (predicted at their training prevalence)."""
    found = getattr(_final_step(model), "degenerate_", [])
    return [label if isinstance(label, str) else labels[label] for label in found]


def _parts(data: TaskData, config: Config, train: np.ndarray, test: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (train, test) pairs one fold is fitted on: the fold itself, or one per stance target."""
    if data.targets is None or config.data.target_mode != "per_target":
        return [(train, test)]
    out = []
    for target in np.unique(data.targets[test]):
        part_train, part_test = train[data.targets[train] == target], test[data.targets[test] == target]
        if not len(part_train):
            raise UserError(f"{config.where('data.target_mode')}: target {str(target)!r} has test rows but no training rows in a fold; "
                            "use target_mode: input, or a protocol that trains on every target")
        out.append((part_train, part_test))
    return out


def _subsample(train: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    size = max(2, int(round(fraction * len(train))))
    return np.sort(rng.choice(train, size=min(size, len(train)), replace=False))


def evaluate_task(data: TaskData, config: Config, progress: bool = True) -> TaskResult:
    """Fit and predict every model on every fold of the configured protocol (and learning-curve part)."""
    folds = make_folds(data, config.protocol, config.seed)
    curve = config.protocol.learning_curve
    jobs = [(fold, None, 0) for fold in folds]
    if curve is not None:
        first = [fold for fold in folds if fold.repeat == 0]
        jobs += [(fold, f, r) for r in range(curve.repeats) for f in curve.fractions for fold in first]
    result = TaskResult(folds=len(folds), train_sizes=[len(f.train) for f in folds])
    seconds: dict[str, float] = defaultdict(float)
    degenerate: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    bar = tqdm(total=len(jobs) * len(config.models), desc=f"{config.name}:{data.task}", unit="fit",
               disable=not progress, leave=False)
    for fold, fraction, curve_repeat in jobs:
        features = FeatureStore()
        train = fold.train
        if fraction is not None:
            rng = np.random.default_rng([config.seed, curve_repeat, fold.fold, int(fraction * 1000)])
            train = _subsample(train, fraction, rng)
        for spec in config.models:
            start = time.perf_counter()
            for part_train, part_test in _parts(data, config, train, fold.test):
                x_test = [data.texts[i] for i in part_test]
                model = fit_model(spec, data, part_train, config, config.seed + fold.repeat, features)
                proba, pred = features.predict(model, x_test)
                proba = np.asarray(proba)
                records = _records(data, spec.display, fold, part_test, model, proba, pred)
                for r in records:
                    r["n_train"] = len(part_train)
                if fraction is None:
                    for label in degenerate_labels(model, data.labels):
                        degenerate[spec.display][label] += 1
                else:
                    for r in records:
                        r.update(fraction=fraction, curve_repeat=curve_repeat)
                result.predictions.extend(records)
            if fraction is None:
                seconds[spec.display] += time.perf_counter() - start
            else:
                seconds[f"{spec.display} (learning curve)"] += time.perf_counter() - start
            bar.update()
    bar.close()
    result.seconds = {k: round(v, 3) for k, v in seconds.items()}
    result.degenerate = {m: dict(v) for m, v in degenerate.items()}
    return result


def _records(data: TaskData, model_name: str, fold, test: np.ndarray, model, proba: np.ndarray, pred: np.ndarray) -> list[dict]:
    if data.multilabel:
        columns = data.labels
    else:
        # A training part may lack a class; map the model's columns back to the label set.
        columns = [data.labels[int(c)] for c in model.classes_]
    out = []
    for row, i in enumerate(test):
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
    return task_metrics(predictions, task, labels, config)["models"]


def _pooled(records: list[dict], encode, key: str = "repeat"):
    """One (gold, pred) per repeat over the same ids in id order, the per-fold pairs, and the ids' documents."""
    repeats: dict[int, dict[str, dict]] = defaultdict(dict)
    folds: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for r in records:
        repeats[r[key]][r["id"]] = r
        folds[(r[key], r["fold"])].append(r)
    order = sorted(repeats[min(repeats)])
    pooled = [encode([repeats[k][i] for i in order]) for k in sorted(repeats)]
    per_fold = [encode(folds[k]) for k in sorted(folds)]
    docs = np.array([repeats[min(repeats)][i]["doc_id"] for i in order])
    return pooled, per_fold, docs


def task_metrics(predictions: list[dict], task: str, labels: list[str], config: Config) -> dict:
    """Everything ``metrics.json`` holds for one task, computed from its prediction records.

    ``models``: each model's metrics with CIs (``summarize``); ``paired``:
    every pair of models compared on the same bootstrap resamples
    (``paired_tests``); ``learning_curve``: per model and training fraction,
    the headline metrics with CIs (absent without a learning curve).
    """
    main: dict[str, list[dict]] = defaultdict(list)
    curve: dict[str, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for p in predictions:
        if p["task"] != task:
            continue
        if "fraction" in p:
            curve[p["model"]][p["fraction"]].append(p)
        else:
            main[p["model"]].append(p)
    encode = _encoder(task, labels)
    subset = [s for s in config.metrics.stance_subset if s in labels]
    document_bootstrap = config.metrics.bootstrap_unit == "document"
    options = dict(resamples=config.metrics.bootstrap, confidence=config.metrics.confidence, seed=config.seed,
                   min_support=config.metrics.min_support)
    models, kept = {}, {}
    for model_name, records in main.items():
        pooled, per_fold, docs = _pooled(records, encode)
        kept[model_name] = {}
        models[model_name] = summarize(task, labels, subset, pooled, per_fold, **options,
                                       groups=docs if document_bootstrap else None, keep=kept[model_name])
    out = {"models": models, "paired": paired_tests(kept, HEADLINE[task][:2], config.metrics.confidence)}
    if curve:
        out["learning_curve"] = _curve_metrics(main, curve, task, labels, subset, encode, options,
                                               document_bootstrap)
    return out


def _curve_metrics(main, curve, task, labels, subset, encode, options, document_bootstrap) -> dict:
    """Headline metrics per model and training fraction; the full fraction reuses the first repeat's predictions."""
    metrics = HEADLINE[task][:2]
    out = {}
    for model_name, by_fraction in curve.items():
        points = []
        first_repeat = [r for r in main[model_name] if r["repeat"] == 0]
        parts = [*((f, recs, "curve_repeat") for f, recs in sorted(by_fraction.items())), (1.0, first_repeat, "repeat")]
        for fraction, records, key in parts:
            pooled, per_fold, docs = _pooled(records, encode, key)
            summary = summarize(task, labels, subset, pooled, per_fold, **{**options, "resamples": min(options["resamples"], 500)},
                                groups=docs if document_bootstrap else None)
            train_sizes = {(r[key], r["fold"]): r.get("n_train") for r in records}
            sizes = [n for n in train_sizes.values() if n is not None]
            points.append({"fraction": fraction, "n_train": round(float(np.mean(sizes)), 1) if sizes else None,
                           "n_test": summary["n"], **{m: summary["metrics"][m] for m in metrics}})
        out[model_name] = points
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
