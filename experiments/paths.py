"""Path constants: every file location the project uses lives here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
MANIFEST = SEEDS / "manifest.yaml"
DATA = ROOT / "data"


@dataclass(frozen=True)
class DataDir:
    """Where the corpus, the annotation files and gold live (``data/`` unless told otherwise)."""

    root: Path = DATA

    @property
    def paragraphs(self) -> Path:
        return self.root / "paragraphs.jsonl"

    @property
    def annotations(self) -> Path:
        return self.root / "annotations"

    @property
    def adjudications(self) -> Path:
        return self.root / "adjudications.jsonl"

    @property
    def gold(self) -> Path:
        return self.root / "gold.jsonl"

    @property
    def imported(self) -> Path:
        """Datasets made by ``import``, one folder per name."""
        return self.root / "imported"


PARAGRAPHS = DataDir().paragraphs
ANNOTATIONS = DataDir().annotations
ADJUDICATIONS = DataDir().adjudications
GOLD = DataDir().gold
IMPORTED = DataDir().imported
CODEBOOK_MD = DATA / "CODEBOOK.md"
CONFIGS = ROOT / "configs"
CODEBOOK = CONFIGS / "codebook.yaml"
RESULTS = ROOT / "results"
REFERENCE = RESULTS / "reference"  # the runs the README cites, committed
EXPORTS = ROOT / "exports"


def cache_dir() -> Path:
    """Embeddings and exported ONNX models: ``$EXPERIMENTS_CACHE``, else ``.cache/``.

    Read on every call, so a test (or a user) can point it elsewhere after import.
    """
    return Path(os.environ.get("EXPERIMENTS_CACHE", ROOT / ".cache"))


def shown(path: Path | str) -> str:
    """A path as a user would type it: relative to the working directory when it is under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
