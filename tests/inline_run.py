"""A small run directory built by hand from inline data, as ``run_experiment`` would leave it.

For the tests whose expectations are exact numbers and rows worked out by hand (the most confident mistakes, per-document
scores, p-values, a label too rare to score, learning-curve tables) or that need two runs that differ in a named way
(another protocol, config or data fingerprint). Tests of the page's shape read the session's trained run (conftest
``run_dir``) instead.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml

# The smallest valid PNG (1 × 1 pixel); the report only embeds the bytes.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
STANCE = ["favor", "against", "neutral", "none"]
FRAMES = ["humanitarian", "security"]
TEXTS = {
    "p1": ("d1", "Aid now."),
    "p2": ("d1", "Strikes <b>now</b> & then."),
    "p3": ("d1", "Nothing to see."),
    "p4": ("d2", "Help them."),
    "p5": ("d2", "Weather report."),
}
GOLD = {"p1": "favor", "p2": "against", "p3": "none", "p4": "favor", "p5": "none"}
# (repeat, id) -> (predicted label, its probability) for tfidf_svm; majority always predicts "none".
SVM = {
    (0, "p1"): ("favor", 0.8), (0, "p2"): ("none", 0.9), (0, "p3"): ("favor", 0.6),
    (0, "p4"): ("favor", 0.7), (0, "p5"): ("none", 0.55),
    (1, "p1"): ("favor", 0.8), (1, "p2"): ("none", 0.7), (1, "p3"): ("none", 0.6),
    (1, "p4"): ("against", 0.95), (1, "p5"): ("none", 0.6),
}
FRAME_GOLD = {"p1": ["humanitarian"], "p2": ["security"], "p3": [], "p4": ["humanitarian", "security"], "p5": []}
FRAME_PRED = {  # tfidf_svm, repeat 0: (predicted frames, probabilities)
    "p1": (["humanitarian"], {"humanitarian": 0.9, "security": 0.1}),
    "p2": (["humanitarian"], {"humanitarian": 0.7, "security": 0.2}),  # FP humanitarian 0.7, FN security 0.2
    "p3": (["security"], {"humanitarian": 0.1, "security": 0.8}),  # FP security 0.8: the most confident
    "p4": (["humanitarian"], {"humanitarian": 0.6, "security": 0.05}),  # FN security 0.05: the least confident
    "p5": ([], {"humanitarian": 0.3, "security": 0.3}),
}
PAIRED = [
    {"a": "tfidf_svm", "b": "majority", "metric": "macro_f1", "diff": 0.366833, "ci": [0.257468, 0.449031],
     "p": 0.0, "resamples": 1000},
    {"a": "tfidf_svm", "b": "majority", "metric": "accuracy", "diff": 0.2, "ci": [-0.05, 0.4], "p": 0.21,
     "resamples": 1000},
]
CONFIG = {
    "name": "kfold_run", "description": "two models", "tasks": ["stance", "frames"], "seed": 13,
    "protocol": {"name": "kfold", "folds": 2, "repeats": 2, "learning_curve": None},
    "metrics": {"bootstrap": 1000, "confidence": 0.95, "min_support": 3, "bootstrap_unit": "paragraph"},
    "models": [{"name": "majority", "label": None, "params": {}},
               {"name": "tfidf_svm", "label": None, "params": {"C": 1.0}}],
}


def metric(value: float | None, low: float | None = None, high: float | None = None) -> dict:
    return {"value": value, "mean": value, "std": 0.1, "ci": [low, high]}


def model_result(names: list[str], labels: list[str], macro: float, support: dict[str, int]) -> dict:
    return {
        "n": 5,
        "metrics": {k: metric(macro, macro - 0.1, macro + 0.1) if k == "macro_f1" else metric(0.5, 0.4, 0.6) for k in names},
        "per_label": {l: {"precision": metric(0.5, 0.2, 0.8), "recall": metric(0.5, 0.2, 0.8), "f1": metric(0.5, 0.2, 0.8),
                          "support": support[l], "estimable": support[l] >= 3} for l in labels},
    }


def stance_records() -> list[dict]:
    out = []
    for repeat in (0, 1):
        for pid, (doc, _) in TEXTS.items():
            base = {"task": "stance", "repeat": repeat, "fold": 0, "id": pid, "doc_id": doc, "gold": GOLD[pid], "n_train": 3}
            out.append({**base, "model": "majority", "pred": "none", "proba": {l: float(l == "none") for l in STANCE}})
            pred, p = SVM[(repeat, pid)]
            rest = (1 - p) / 3
            out.append({**base, "model": "tfidf_svm", "pred": pred, "proba": {l: p if l == pred else rest for l in STANCE}})
    # A learning-curve prediction: the most confident mistake of all, but not part of the evaluation.
    out.append({"task": "stance", "model": "tfidf_svm", "repeat": 0, "fold": 0, "id": "p5", "doc_id": "d2", "gold": "none",
                "pred": "against", "proba": {"favor": 0.0, "against": 0.99, "neutral": 0.0, "none": 0.01}, "n_train": 1,
                "fraction": 0.5, "curve_repeat": 0})
    return out


def frame_records() -> list[dict]:
    out = []
    for pid, (doc, _) in TEXTS.items():
        base = {"task": "frames", "repeat": 0, "fold": 0, "id": pid, "doc_id": doc, "gold": FRAME_GOLD[pid], "n_train": 3}
        out.append({**base, "model": "majority", "pred": [], "proba": {f: 0.0 for f in FRAMES}})
        pred, proba = FRAME_PRED[pid]
        out.append({**base, "model": "tfidf_svm", "pred": pred, "proba": proba})
    return out


def write_run(root: Path, name: str = "kfold_run", *, fingerprint: str = "fp-1", config: dict | None = None,
              protocol: dict | None = None, curve: bool = True) -> Path:
    """A small but complete run directory, as ``run_experiment`` would leave it."""
    run_dir = root / name / "20260101-000000-abcdef"
    (run_dir / "plots" / "stance").mkdir(parents=True)
    config = {**CONFIG, "name": name} if config is None else config
    protocol = protocol or {"name": "kfold", "folds": 2, "repeats": 2,
                            "bootstrap": {"resamples": 1000, "confidence": 0.95, "unit": "paragraph"},
                            "paired_test": "paired bootstrap on the same resamples, two-sided"}
    stance_support = {"favor": 2 * 2, "against": 1 * 2, "neutral": 0, "none": 2 * 2}
    stance = {
        "labels": STANCE, "level": None, "n_paragraphs": 5, "folds": 4, "degenerate": {},
        "models": {"majority": model_result(["accuracy", "macro_f1", "macro_f1_subset"], STANCE, 0.15, stance_support),
                   "tfidf_svm": model_result(["accuracy", "macro_f1", "macro_f1_subset"], STANCE, 0.52, stance_support)},
        "paired": PAIRED,
    }
    if curve:
        stance["learning_curve"] = {m: [{"fraction": f, "n_train": n, "n_test": 5, "accuracy": metric(0.4, 0.3, 0.5),
                                         "macro_f1": metric(v, v - 0.1, v + 0.1)}
                                        for f, n, v in ((0.5, 1.0, 0.21 if m == "majority" else 0.31),
                                                        (1.0, 2.5, 0.22 if m == "majority" else 0.47))]
                                    for m in ("majority", "tfidf_svm")}
    frames = {
        "labels": FRAMES, "level": "project", "n_paragraphs": 5, "folds": 4, "degenerate": {},
        "models": {m: model_result(["micro_f1", "macro_f1", "hamming_loss", "subset_accuracy"], FRAMES, v,
                                   {"humanitarian": 3, "security": 3})
                   for m, v in (("majority", 0.0), ("tfidf_svm", 0.4))},
        "paired": [],
    }
    metrics = {"config": name, "protocol": protocol, "tasks": {"stance": stance, "frames": frames}}
    meta = {
        "run_id": run_dir.name, "config": name, "command": "python -m experiments run", "seed": 13,
        "data": {"source": "gold", "fingerprint": fingerprint, "n_paragraphs": 5, "codebook_version": "1.0.0"},
        "git": {"commit": "0123456789abcdef", "dirty": False}, "python": "3.11", "platform": "linux", "packages": {},
        "lock": {"file": "constraints.txt", "sha256": "x", "differs": {}},
        "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:03+00:00", "wall_seconds": 3.0,
        "tasks": {t: {"seconds_per_model": {"majority": 0.0, "tfidf_svm": 0.1}, "folds": 4, "mean_train_size": 2.5}
                  for t in ("stance", "frames")},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    records = stance_records() + frame_records()
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (run_dir / "texts.jsonl").write_text(
        "".join(json.dumps({"id": i, "doc_id": d, "text": t}) + "\n" for i, (d, t) in TEXTS.items()), encoding="utf-8")
    top = {"stance": {"tfidf_svm": {l: [[f"{l} word", 0.5], ["shared", 0.25]] for l in STANCE}}}
    (run_dir / "top_features.json").write_text(json.dumps(top), encoding="utf-8")
    for name_ in ("confusion_tfidf_svm.png", "model_comparison.png", "learning_curve.png", "mystery.png"):
        (run_dir / "plots" / "stance" / name_).write_bytes(PNG)
    return run_dir


# Fixtures: a test module imports them by name.

@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "results")


@pytest.fixture
def lodo(tmp_path):
    config = {**CONFIG, "name": "lodo_run", "protocol": {**CONFIG["protocol"], "name": "lodo"},
              "metrics": {**CONFIG["metrics"], "bootstrap_unit": "document"},
              "models": [CONFIG["models"][0], {"name": "tfidf_svm", "label": None, "params": {"C": 0.5}}]}
    protocol = {"name": "lodo", "group_column": "doc_id",
                "bootstrap": {"resamples": 1000, "confidence": 0.95, "unit": "document"},
                "paired_test": "paired bootstrap on the same resamples, two-sided"}
    return write_run(tmp_path / "results", "lodo_run", config=config, protocol=protocol, curve=False)
