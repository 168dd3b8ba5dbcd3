"""Stance and framing experiments on paragraphs about Iran.

The package is importable from notebooks and tests; ``python -m experiments``
is a thin command line over the same functions.
"""

__version__ = "0.1.0"
