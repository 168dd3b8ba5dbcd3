"""``bench --scale``: generated rows, and memory and time measured on the command's processes."""

from __future__ import annotations

import sys

import pytest

from experiments.errors import UserError
from experiments.scale import bench_scale, generate_rows, run_measured

SENTENCES = ["Strikes hit the capital.", "Exiles call for help.", "The union rejects war.", "Prices rose again."]


def test_generated_rows_are_fixed_by_the_seed_and_made_of_corpus_sentences():
    first = list(generate_rows(50, seed=3, sentences=SENTENCES))
    assert first == list(generate_rows(50, seed=3, sentences=SENTENCES))
    assert first != list(generate_rows(50, seed=4, sentences=SENTENCES))
    assert len({r["id"] for r in first}) == 50
    for row in first:
        parts = [p + "." for p in row["text"].split(". ") if p]
        assert 2 <= len(parts) <= 5 and all(p.rstrip(".") + "." in SENTENCES for p in parts)


def test_peak_memory_is_that_of_the_largest_process_of_the_command():
    grow = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    seconds, peak, total, processes = run_measured([sys.executable, "-c", grow], interval=0.05)
    assert peak >= 290 and total >= peak and processes == 1 and seconds >= 1.5


def test_a_failing_command_is_a_one_line_error():
    with pytest.raises(UserError, match=r"failed: ValueError: broken"):
        run_measured([sys.executable, "-c", "raise ValueError('broken')"])


def test_bad_sizes_and_engines_are_refused_before_any_work():
    with pytest.raises(UserError, match=r"--scale 0: give a number of rows of 1 or more"):
        bench_scale(0)
    with pytest.raises(UserError, match=r"--engine 'spark': use local or ray"):
        bench_scale(10, engines=["spark"])
