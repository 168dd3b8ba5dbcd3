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

from experiments import paths
from experiments.codebook import load_codebook
from experiments.config import Config, load_config, to_yaml
from experiments.data import load_dataset, task_data
from experiments.evaluate import evaluate_task, metrics_from_predictions
from experiments.io import dumps
from experiments.report import write_summary

PACKAGES = ("numpy", "scipy", "scikit-learn", "datasets", "matplotlib", "pydantic", "pyyaml", "iterative-stratification")


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
) -> Path:
    """Run every model of a config under its protocol and write a run directory; return its path."""
    started = time.time()
    config = load_config(config_path, overrides)
    codebook = load_codebook()
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
        meta["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (staging / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        write_summary(staging)
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


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
