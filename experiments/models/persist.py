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
import pickle
import struct
from datetime import datetime, timezone
from pathlib import Path

import joblib

from experiments.errors import UserError
from experiments.io import read_json_object, rerun_hint

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


# What unpickling a cut-off or overwritten file raises (found by truncating saved models at every length).
_DAMAGED = (pickle.UnpicklingError, EOFError, ValueError, IndexError, KeyError, TypeError, struct.error)


def _fix(directory: Path) -> str:
    """What to do about a damaged saved model: run the config of its run again (``RUN/models/TASK/NAME``)."""
    run_dir = directory.parent.parent.parent
    if (run_dir / "config.yaml").is_file():
        return rerun_hint(run_dir)
    return "re-run the config that saved it (with final_fit: true)"


def load_model(directory: Path):
    """The fitted estimator and its card, from a directory written by ``save_model``.

    A damaged ``model.json`` or ``estimator.joblib`` (cut off by a full disk
    or an interrupted copy) is a one-line ``UserError`` naming the file.
    """
    directory = Path(directory)
    card_path = directory / "model.json"
    if not card_path.exists():
        raise UserError(f"{directory}: no saved model here (model.json is missing); run a config with final_fit: true")
    card = read_json_object(card_path, _fix(directory))
    if card.get("format") != FORMAT:
        raise UserError(f"{card_path}: saved with model format {card.get('format')}, this version reads {FORMAT}")
    path = directory / "estimator.joblib"
    if not path.is_file():
        raise UserError(f"{path}: file not found; {_fix(directory)}")
    try:
        estimator = joblib.load(path)
    except _DAMAGED:
        raise UserError(f"{path}: cannot load the saved model (the file is damaged or cut off); {_fix(directory)}") from None
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{path}: cannot load the saved model with the installed packages ({exc}); install the "
                        f"versions it was saved with (see model.json, environment) or {_fix(directory)}") from None
    if hasattr(estimator, "load_weights"):
        from experiments.models.encoders import quiet_transformers

        quiet_transformers()
        estimator.load_weights(directory / "weights")
    return estimator, card
