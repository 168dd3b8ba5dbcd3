"""Stance and framing experiments on paragraphs about Iran.

The package is importable from notebooks and tests; ``python -m experiments``
is a thin command line over the same functions.
"""

import os

# Nothing may download at run time: Hugging Face libraries read these when first imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__version__ = "0.1.0"
