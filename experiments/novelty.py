"""How unlike the training data new text is: similarity to the nearest training paragraph.

A run that saves models also saves the sentence embeddings of its training
paragraphs (``models/similarity.npz``) and, as the yardstick, what
leave-one-document-out saw: for every training paragraph, its similarity to
the nearest paragraph of *another* document (``models/similarity.json``).
``predict`` gives each new paragraph its nearest-training similarity and
reports the share that falls below the 10th percentile of that yardstick:
about 10% is what a new document like the training ones looks like; much
more says the input is unlike anything the models learned from, and their
scores say little about it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from experiments.errors import UserError

QUANTILE = 0.10
# Warn when the share of unfamiliar paragraphs is at least this many times the expected QUANTILE.
WARN_FACTOR = 3.0


def _embedder():
    from experiments.models.encoders import SentenceEmbedder

    return SentenceEmbedder(precision="fp32")


def save_reference(directory: Path, texts: list[str], groups: list[str]) -> None:
    """Embed the training paragraphs and record their out-of-document nearest-neighbour similarities."""
    vectors = _embedder().transform(texts)
    groups = np.asarray(groups)
    sims = vectors @ vectors.T
    nearest = np.array([sims[i, groups != groups[i]].max() if (groups != groups[i]).any() else np.nan
                        for i in range(len(texts))])
    seen = nearest[~np.isnan(nearest)]
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "similarity.npy", vectors.astype(np.float32))
    info = {
        "encoder": "all-MiniLM-L6-v2, fp32, L2-normalised",
        "n_train": len(texts),
        "reference": "each training paragraph's cosine similarity to the nearest paragraph of another document",
        "quantile": QUANTILE,
        "threshold": round(float(np.quantile(seen, QUANTILE)), 4) if len(seen) else None,
        "median": round(float(np.median(seen)), 4) if len(seen) else None,
    }
    (directory / "similarity.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


class Novelty:
    """Nearest-training similarity for new paragraphs, against a run's saved reference."""

    def __init__(self, vectors: np.ndarray, info: dict):
        self.vectors = vectors
        self.info = info
        self.threshold = info.get("threshold")

    @classmethod
    def load(cls, models_dir: Path) -> "Novelty | None":
        """The reference a run saved, or None for a run saved before it existed."""
        vectors_path, info_path = models_dir / "similarity.npy", models_dir / "similarity.json"
        if not vectors_path.exists() or not info_path.exists():
            return None
        try:
            return cls(np.load(vectors_path), json.loads(info_path.read_text(encoding="utf-8")))
        except (ValueError, OSError):
            raise UserError(f"{models_dir}: similarity.npy or similarity.json is damaged; re-run the config") from None

    def similarity(self, texts: list[str]) -> np.ndarray:
        """Cosine similarity of each text to its nearest training paragraph (new text is not cached)."""
        return (_embedder().encode(list(texts)) @ self.vectors.T).max(axis=1)

    def summary(self, unfamiliar: int, total: int) -> str | None:
        """A one-line warning when the share of unfamiliar paragraphs is large, else None."""
        if self.threshold is None or not total:
            return None
        share = unfamiliar / total
        if share < WARN_FACTOR * QUANTILE:
            return None
        return (f"warning: {unfamiliar} of {total} paragraphs ({share:.0%}) are less similar to the training data "
                f"than {1 - QUANTILE:.0%} of held-out paragraphs were to other documents (similarity < "
                f"{self.threshold:.2f}); the run's scores may not hold for this input")
