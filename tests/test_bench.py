"""``bench``: the project's inference path against a plain ``transformers`` pipeline, on the same paragraphs.

Speed itself is not asserted here (it depends on the machine); what is checked is that the bench measures
both models on ONNX Runtime and on PyTorch, that every side computes the same thing, that the labels on the
corpus are compared between the runtimes (and that the comparison can tell them apart), and what it prints.
"""

from __future__ import annotations

import re

import pytest

from experiments.bench import LabelCheck, Measurement, _rates, bench_texts, compare_backend_labels, run_bench


@pytest.fixture(scope="module")
def bench():
    lines: list[str] = []
    # fp32 on both sides, so the outputs must agree to float precision (bf16 is the default where supported).
    results = run_bench(n=16, rounds=1, batch_size=8, max_length=64, device="cpu", precision="fp32", log=lines.append)
    return results, lines


@pytest.mark.slow
def test_the_bench_measures_both_models_on_onnx_and_on_torch(bench):
    results, _ = bench
    assert [type(m) for m in results] == [Measurement] * 4
    assert [(m.name, m.backend) for m in results] == [
        ("sentence embeddings", "onnx"), ("sentence embeddings", "torch"),
        ("fine-tuned classifier", "onnx"), ("fine-tuned classifier", "torch"),
    ]
    for m in results:
        assert m.ours > 0 and m.plain > 0
    assert results[0].plain == results[1].plain and results[2].plain == results[3].plain  # one pipeline timing each


@pytest.mark.slow
def test_both_sides_compute_the_same_outputs(bench):
    results, _ = bench
    for m in results:
        assert m.max_abs_diff < 1e-3, m


@pytest.mark.slow
def test_the_bench_prints_its_setting_then_a_table_with_a_ratio_column(bench):
    results, lines = bench
    assert re.fullmatch(r"16 paragraphs \(the corpus, cycled\), batch size 8, \d+ threads, device cpu, "
                        r"inference precision fp32, backend auto, each chunk of 16 the best of 1, sides interleaved",
                        lines[0]), lines[0]
    assert lines[1].split() == ["model", "backend", "ours", "(par/s)", "pipeline", "(par/s)", "ratio", "max", "|diff|"]
    assert len(lines) == 2 + len(results) + 2
    for line, m in zip(lines[2:], results):
        assert line.startswith(m.name)
        assert line.split()[2] == m.backend
        assert f"{m.ratio:.2f}x" in line


@pytest.mark.slow
def test_the_bench_says_whether_onnx_changes_any_label_on_the_corpus(bench):
    _, lines = bench
    embeddings, classifier = lines[-2:]
    assert re.fullmatch(
        r"onnx against torch, sentence embeddings: max \|diff\| \d\.\de-\d\d; labels on the corpus \(60 paragraphs\) "
        r"identical: embed_logreg stance \(leave-one-document-out\) 60/60, zeroshot_codebook stance 60/60, "
        r"zeroshot_codebook frames 60/60", embeddings), embeddings
    assert re.fullmatch(r"onnx against torch, fine-tuned classifier: max \|diff\| \d\.\de-\d\d; labels on the corpus "
                        r"\(60 paragraphs\) identical: stance 60/60", classifier), classifier
    for line in (embeddings, classifier):
        assert float(re.search(r"max \|diff\| (\S+);", line).group(1)) < 1e-3


def test_the_ratio_is_how_many_times_faster_ours_is_than_the_pipeline():
    assert Measurement("sentence embeddings", ours=300.0, plain=200.0, max_abs_diff=0.0).ratio == 1.5
    assert Measurement("fine-tuned classifier", ours=50.0, plain=200.0, max_abs_diff=0.0).ratio == 0.25


class FakeEmbedder:
    """Unit vectors from each text's hash, with optional noise: a stand-in backend for the label comparison."""

    def __init__(self, noise: float = 0.0):
        self.noise = noise

    def encode(self, texts):
        import hashlib

        import numpy as np

        vectors = []
        for text in texts:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).normal(size=16)
            if self.noise:
                v = v + np.random.default_rng(seed + 1).normal(scale=self.noise, size=16)
            vectors.append(v / np.linalg.norm(v))
        return np.array(vectors, dtype=np.float32)


def test_the_label_comparison_finds_identical_labels_identical_and_different_ones_different():
    same = compare_backend_labels({"torch": FakeEmbedder(), "onnx": FakeEmbedder()})
    assert [c.name for c in same] == ["embed_logreg stance (leave-one-document-out)", "zeroshot_codebook stance",
                                      "zeroshot_codebook frames"]
    assert all(isinstance(c, LabelCheck) and c.identical and c.total == 60 for c in same)
    different = compare_backend_labels({"torch": FakeEmbedder(), "onnx": FakeEmbedder(noise=1.0)})
    assert not all(c.identical for c in different)
    assert all(0 <= c.same <= c.total == 60 for c in different)


def test_timed_rounds_interleave_the_sides_in_alternating_order_chunk_by_chunk():
    calls = []

    def side(name):
        def run(batch):
            calls.append((name, len(batch)))
            return [f"{name}{len(calls)}"] * len(batch)
        return run

    rates, outputs = _rates({"a": side("a"), "b": side("b")}, ["t"] * 10, rounds=3, chunk=6)
    assert calls == [("a", 8), ("b", 8),
                     ("a", 6), ("b", 6), ("b", 6), ("a", 6), ("a", 6), ("b", 6),
                     ("a", 4), ("b", 4), ("b", 4), ("a", 4), ("a", 4), ("b", 4)]
    # The outputs are the last round's, chunks in order.
    assert outputs["a"].tolist() == ["a7"] * 6 + ["a13"] * 4 and outputs["b"].tolist() == ["b8"] * 6 + ["b14"] * 4
    assert set(rates) == {"a", "b"} and all(r > 0 for r in rates.values())
    assert _rates({"a": side("a")}, ["t"] * 10, rounds=1)[1]["a"] == ["a16"] * 10  # one chunk by default


def test_bench_texts_cycle_through_the_corpus():
    texts = bench_texts(200)
    assert len(texts) == 200
    distinct = list(dict.fromkeys(texts))
    assert texts == [distinct[i % len(distinct)] for i in range(200)]
