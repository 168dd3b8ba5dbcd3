"""Path constants: every file location the project uses lives here."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
MANIFEST = SEEDS / "manifest.yaml"
DATA = ROOT / "data"
PARAGRAPHS = DATA / "paragraphs.jsonl"
ANNOTATIONS = DATA / "annotations"
ADJUDICATIONS = DATA / "adjudications.jsonl"
GOLD = DATA / "gold.jsonl"
CODEBOOK_MD = DATA / "CODEBOOK.md"
CONFIGS = ROOT / "configs"
CODEBOOK = CONFIGS / "codebook.yaml"
RESULTS = ROOT / "results"
REFERENCE = RESULTS / "reference"  # the runs the README cites, committed
EXPORTS = ROOT / "exports"
