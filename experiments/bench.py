"""``python -m experiments bench``: the project's speed targets, measured.

``run_bench`` times inference against a plain ``transformers`` pipeline;
``bench_import`` times importing a large table; ``bench_overhead`` times a
config with and without its learning curve.

Both sides run in the same process, on the same paragraphs, with the same
weights and thread settings. The project's path sorts texts by length, pads
each batch only to its longest member and runs under
``torch.inference_mode``, in bfloat16 where the CPU has native bf16 kernels
(``--precision fp32`` turns that off); the plain pipeline is
``transformers.pipeline`` with its default settings. The outputs are compared too, so a speed-up never
hides a different computation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from experiments import paths
from experiments.annotations import load_paragraphs
from experiments.errors import UserError
from experiments.models.encoders import (
    DEFAULT_MODEL, SentenceEmbedder, resolve_device, resolve_model_dir, resolve_precision, setup_torch,
)


@dataclass
class Measurement:
    name: str
    ours: float
    plain: float
    max_abs_diff: float

    @property
    def ratio(self) -> float:
        return self.ours / self.plain


def _rate(func, texts: list[str], rounds: int) -> tuple[float, object]:
    func(texts[:8])  # warm-up: weights in cache, kernels chosen
    best, out = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        out = func(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best, out


def bench_texts(n: int) -> list[str]:
    corpus = [p["text"] for p in load_paragraphs(paths.PARAGRAPHS).values()]
    return [corpus[i % len(corpus)] for i in range(n)]


def run_bench(n: int = 240, batch_size: int = 16, rounds: int = 3, model: str = DEFAULT_MODEL,
              device: str = "auto", max_length: int = 256, precision: str = "auto", log=print) -> list[Measurement]:
    """Paragraphs per second for the embedding encoder and the fine-tuned classifier, ours and plain."""
    import torch
    from transformers import pipeline

    from experiments.models.finetune import TransformerClassifier

    setup_torch(0)
    device = resolve_device(device)
    texts = bench_texts(n)
    model_dir = str(resolve_model_dir(model))
    log(f"{n} paragraphs (the corpus, cycled), batch size {batch_size}, {torch.get_num_threads()} threads, "
        f"device {device}, inference precision {resolve_precision(precision, device)}, best of {rounds}")
    results = []

    embedder = SentenceEmbedder(model=model, device=device, batch_size=batch_size, max_length=max_length,
                                precision=precision, cache=False)
    ours_rate, ours = _rate(embedder.encode, texts, rounds)
    extractor = pipeline("feature-extraction", model=model_dir, tokenizer=model_dir, device=device,
                         tokenize_kwargs={"truncation": True, "max_length": max_length})

    def plain_embed(batch: list[str]) -> np.ndarray:
        # Mean pooling and L2 normalisation, as the sentence-transformers config of this model does.
        vectors = np.stack([np.asarray(tokens[0]).mean(axis=0) for tokens in extractor(batch)])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    plain_rate, plain = _rate(plain_embed, texts, rounds)
    results.append(Measurement("sentence embeddings", ours_rate, plain_rate, float(np.abs(ours - plain).max())))

    classifier = TransformerClassifier(model=model, labels=["favor", "against", "neutral", "none"], max_steps=1,
                                       batch_size=4, max_length=max_length, device=device, precision=precision)
    classifier.fit(texts[:8], np.array([0, 1, 2, 3] * 2))
    ours_rate, ours = _rate(lambda b: classifier.predict_proba(b, batch_size=batch_size), texts, rounds)
    scorer = pipeline("text-classification", model=classifier.model_, tokenizer=classifier.tokenizer_, device=device,
                      top_k=None, truncation=True, max_length=max_length)
    order = [f"LABEL_{i}" for i in range(len(classifier.classes_))]

    def plain_classify(batch: list[str]) -> np.ndarray:
        return np.array([[{d["label"]: d["score"] for d in row}[label] for label in order] for row in scorer(batch)])

    plain_rate, plain = _rate(plain_classify, texts, rounds)
    results.append(Measurement("fine-tuned classifier", ours_rate, plain_rate, float(np.abs(ours - plain).max())))

    log(f"{'model':<24}{'ours (par/s)':>14}{'pipeline (par/s)':>18}{'ratio':>8}{'max |diff|':>12}")
    for m in results:
        log(f"{m.name:<24}{m.ours:>14.1f}{m.plain:>18.1f}{m.ratio:>7.2f}x{m.max_abs_diff:>12.1e}")
    return results


def bench_import(rows: int = 100_000, log=print) -> float:
    """Seconds to import a generated stance table of ``rows`` rows with targets, a split and a label map."""
    import csv
    import tempfile

    from experiments.importer import ImportOptions, import_table

    stances = ("FAVOR", "AGAINST", "NONE")
    with tempfile.TemporaryDirectory(prefix="experiments-bench-") as scratch:
        table = Path(scratch) / "table.csv"
        with open(table, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "target", "text", "stance", "split"])
            for i in range(rows):
                writer.writerow([i, f"target {i % 5}", f"Post {i} on topic {i % 97}, with a few more words.",
                                 stances[i % 3], ("train", "dev", "test")[i % 3]])
        options = ImportOptions(id_column="id", target_column="target", stance_column="stance", split_column="split",
                                label_map={s: s.lower() for s in stances})
        start = time.perf_counter()
        summary = import_table(table, "bench", options, root=Path(scratch) / "imported")
        seconds = time.perf_counter() - start
    log(f"import: {summary.rows} rows in {seconds:.2f} s ({summary.rows / seconds:,.0f} rows/s)")
    return seconds


def bench_overhead(config: Path, log=print) -> tuple[float, float]:
    """Wall seconds of a config without and with its learning curve (paired tests are always on)."""
    import tempfile

    from experiments.config import load_config
    from experiments.run import run_experiment

    if load_config(config).protocol.learning_curve is None:
        raise UserError(f"{config}: has no protocol.learning_curve to measure; pick a config with one")
    times = []
    with tempfile.TemporaryDirectory(prefix="experiments-bench-") as scratch:
        for overrides in (["protocol.learning_curve=null"], []):
            start = time.perf_counter()
            run_experiment(config, overrides, results=Path(scratch), progress=False, log=lambda *_: None)
            times.append(time.perf_counter() - start)
    log(f"{config}: {times[0]:.1f} s without the learning curve, {times[1]:.1f} s with it "
        f"({times[1] / times[0]:.2f}x; paired tests are computed in both)")
    return times[0], times[1]
