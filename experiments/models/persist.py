"""Saving a fitted model in a run directory, and loading it back.

A saved model is a directory:

- ``model.json``: the model card: registry name and parameters, task, label
  set in column order, codebook version, preprocessing, training data
  fingerprint and size, library versions;
- ``estimator.joblib``: the scikit-learn object (pipeline, vectoriser
  vocabulary, linear weights, thresholds) as a joblib pickle. Like every
  pickle it can run code when loaded: load only run directories you trust;
- ``weights/``: for transformer models, the network saved by
  ``save_pretrained`` (safetensors) with its tokenizer or SetFit head.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import joblib

from experiments.errors import UserError

FORMAT = 1
PREPROCESSING = "paragraphs segmented by experiments.corpus.segment_text: whitespace collapsed, text otherwise unchanged"


def save_model(estimator, directory: Path, card: dict) -> Path:
    """Write ``estimator`` and its card into ``directory`` (which must not exist yet)."""
    directory.mkdir(parents=True)
    if hasattr(estimator, "save"):
        (directory / "weights").mkdir()
        estimator.save(directory / "weights")
    joblib.dump(estimator, directory / "estimator.joblib")
    full = {"format": FORMAT, "preprocessing": PREPROCESSING,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"), **card}
    (directory / "model.json").write_text(json.dumps(full, indent=2) + "\n", encoding="utf-8")
    return directory


def load_model(directory: Path):
    """The fitted estimator and its card, from a directory written by ``save_model``."""
    directory = Path(directory)
    card_path = directory / "model.json"
    if not card_path.exists():
        raise UserError(f"{directory}: no saved model here (model.json is missing); run a config with final_fit: true")
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card.get("format") != FORMAT:
        raise UserError(f"{card_path}: saved with model format {card.get('format')}, this version reads {FORMAT}")
    estimator = joblib.load(directory / "estimator.joblib")
    if hasattr(estimator, "load_weights"):
        from experiments.models.encoders import quiet_transformers

        quiet_transformers()
        estimator.load_weights(directory / "weights")
    return estimator, card
