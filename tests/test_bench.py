"""``bench``: the project's inference path against a plain ``transformers`` pipeline, on the same paragraphs.

Speed itself is not asserted here (it depends on the machine); what is checked is that the bench measures
both models, that the two sides compute the same thing, and what it prints.
"""

from __future__ import annotations

import re

import pytest

from experiments.bench import Measurement, bench_texts, run_bench


@pytest.fixture(scope="module")
def bench():
    lines: list[str] = []
    # fp32 on both sides, so the outputs must agree to float precision (bf16 is the default where supported).
    results = run_bench(n=16, rounds=1, batch_size=8, max_length=64, device="cpu", precision="fp32", log=lines.append)
    return results, lines


@pytest.mark.slow
def test_the_bench_measures_the_embedder_and_the_fine_tuned_classifier(bench):
    results, _ = bench
    assert [type(m) for m in results] == [Measurement, Measurement]
    assert [m.name for m in results] == ["sentence embeddings", "fine-tuned classifier"]
    for m in results:
        assert m.ours > 0 and m.plain > 0
        assert m.ratio == m.ours / m.plain


@pytest.mark.slow
def test_both_sides_compute_the_same_outputs(bench):
    results, _ = bench
    for m in results:
        assert m.max_abs_diff < 1e-3, m


@pytest.mark.slow
def test_the_bench_prints_its_setting_then_a_table_with_a_ratio_column(bench):
    results, lines = bench
    assert re.fullmatch(r"16 paragraphs \(the corpus, cycled\), batch size 8, \d+ threads, device cpu, "
                        r"inference precision fp32, best of 1",
                        lines[0]), lines[0]
    assert lines[1].split() == ["model", "ours", "(par/s)", "pipeline", "(par/s)", "ratio", "max", "|diff|"]
    assert len(lines) == 2 + len(results)
    for line, m in zip(lines[2:], results):
        assert line.startswith(m.name)
        assert f"{m.ratio:.2f}x" in line


def test_bench_texts_cycle_through_the_corpus():
    texts = bench_texts(200)
    assert len(texts) == 200
    distinct = list(dict.fromkeys(texts))
    assert texts == [distinct[i % len(distinct)] for i in range(200)]
