"""``python -m experiments bench``: the project's speed targets, measured.

``run_bench`` times inference against a plain ``transformers`` pipeline;
``bench_import`` times importing a large table; ``bench_overhead`` times a
config with and without its learning curve.

Both sides run in the same process, on the same paragraphs, with the same
weights and thread settings, their timed rounds interleaved so that a shared
machine's changing load reaches both. The project's path sorts texts by
length and pads each batch only to its longest member; the sentence encoder
runs on ONNX Runtime where that is available and matches PyTorch to 1e-3
(``backend``, see ``resolve_backend``), else under ``torch.inference_mode``,
in bfloat16 where the CPU has native bf16 kernels (``--precision fp32`` turns
that off); the plain pipeline is ``transformers.pipeline`` with its default
settings. The outputs are compared too, so a speed-up never hides a different
computation: against the pipeline, and, for ONNX, against PyTorch on the
embeddings and on the labels the embedding models give the gold corpus.
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
    backend: str = "torch"

    @property
    def ratio(self) -> float:
        return self.ours / self.plain


@dataclass
class LabelCheck:
    """Labels on the gold corpus from PyTorch embeddings against ONNX embeddings, one model and task."""

    name: str
    same: int
    total: int

    @property
    def identical(self) -> bool:
        return self.same == self.total


def _rate(func, texts: list[str], rounds: int) -> tuple[float, object]:
    rates, outputs = _rates({"f": func}, texts, rounds)
    return rates["f"], outputs["f"]


def _rates(funcs: dict, texts: list[str], rounds: int, chunk: int | None = None) -> tuple[dict[str, float], dict]:
    """Paragraphs per second of each function: for each chunk of ``chunk`` texts, its best of ``rounds``.

    The functions take turns on each chunk (in alternating order), so the
    sides are timed seconds apart and a change in the load of a shared
    machine reaches both rather than one; and a chunk needs only one quiet
    round among ``rounds`` to be timed fairly. The outputs are those of the
    last round, in order.
    """
    chunk = chunk or len(texts) or 1
    pieces = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    for func in funcs.values():
        func(texts[:8])  # warm-up: weights in cache, kernels chosen
    total = {name: 0.0 for name in funcs}
    out: dict[str, list] = {name: [] for name in funcs}
    for piece in pieces:
        best = {name: float("inf") for name in funcs}
        for r in range(rounds):
            for name in (list(funcs) if r % 2 == 0 else list(funcs)[::-1]):
                start = time.perf_counter()
                result = funcs[name](piece)
                best[name] = min(best[name], time.perf_counter() - start)
                if r == rounds - 1:
                    out[name].append(result)
        for name in funcs:
            total[name] += best[name]
    outputs = {name: results[0] if len(results) == 1 else np.concatenate([np.asarray(r) for r in results])
               for name, results in out.items()}
    return {name: len(texts) / seconds for name, seconds in total.items()}, outputs


def bench_texts(n: int) -> list[str]:
    corpus = [p["text"] for p in load_paragraphs(paths.PARAGRAPHS).values()]
    return [corpus[i % len(corpus)] for i in range(n)]


class _Lookup:
    """Stands in for a model's embedder: the vectors of texts encoded beforehand by one backend."""

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def transform(self, X) -> np.ndarray:
        return np.stack([self.table[t] for t in X])


def compare_backend_labels(embedders: dict[str, SentenceEmbedder]) -> list[LabelCheck]:
    """Do the embedding models label the gold corpus identically from each backend's vectors?

    ``embedders`` maps a backend name to an embedder (the first is the
    reference). Checked: ``embed_logreg`` stance in leave-one-document-out
    (the project's protocol), and ``zeroshot_codebook`` stance and frames,
    each model exactly as the registry builds it, fed the given vectors.
    """
    from sklearn.base import clone

    from experiments.annotations import derive_gold
    from experiments.codebook import load_codebook
    from experiments.models.encoders import label_descriptions
    from experiments.models import build_model

    codebook = load_codebook()
    gold = derive_gold(codebook, load_paragraphs(paths.PARAGRAPHS)).gold
    texts = [g["text"] for g in gold]
    documents = np.array([g["doc_id"] for g in gold])
    stance = np.array([g["stance"] for g in gold])
    descriptions = [t for labels in (codebook.stance_labels, codebook.frame_labels)
                    for ts in label_descriptions(list(labels)).values() for t in ts]
    needed = list(dict.fromkeys(texts + descriptions))
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for backend, embedder in embedders.items():
        table = dict(zip(needed, embedder.encode(needed)))
        X = _Lookup(table).transform(texts)
        head = build_model("embed_logreg", "stance", seed=0).named_steps["clf"]
        lodo = np.empty(len(texts), dtype=object)
        for document in np.unique(documents):
            held = documents == document
            lodo[held] = clone(head).fit(X[~held], stance[~held]).predict(X[held])
        out = {"embed_logreg stance (leave-one-document-out)": lodo}
        for task, labels in (("stance", codebook.stance_labels), ("frames", codebook.frame_labels)):
            model = build_model("zeroshot_codebook", task, seed=0, labels=list(labels))
            model._embedder = lambda table=table: _Lookup(table)  # the vectors of this backend
            out[f"zeroshot_codebook {task}"] = model.fit(texts).predict(texts)
        predictions[backend] = out
    reference, *others = predictions.values()
    checks = []
    for name, labels in reference.items():
        same = np.ones(len(texts), dtype=bool)
        for other in others:
            agree = other[name] == labels
            same &= agree.all(axis=1) if agree.ndim == 2 else agree
        checks.append(LabelCheck(name, int(same.sum()), len(texts)))
    return checks


def _measure(name: str, sides: dict, backend: str, texts: list[str], rounds: int, chunk: int,
             results: list[Measurement]) -> dict[str, np.ndarray]:
    """Time ``sides`` ("ours", "plain", and "torch" when ours runs elsewhere), add one measurement per side of
    ours against the plain pipeline to ``results``, and return each side's outputs."""
    rates, outputs = _rates(sides, texts, rounds, chunk)
    for side, runtime in (("ours", backend), ("torch", "torch")):
        if side in sides:
            results.append(Measurement(name, rates[side], rates["plain"],
                                       float(np.abs(outputs[side] - outputs["plain"]).max()), runtime))
    return outputs


def run_bench(n: int = 240, batch_size: int = 16, rounds: int = 3, model: str = DEFAULT_MODEL,
              device: str = "auto", max_length: int = 256, precision: str = "auto", backend: str = "auto",
              chunk: int | None = None, log=print) -> list[Measurement]:
    """Paragraphs per second for the embedding encoder and the fine-tuned classifier, ours and plain.

    Both models run on ``backend`` (``auto``: ONNX Runtime where it is
    available and matches PyTorch, see ``resolve_backend``); where that is
    not PyTorch, the PyTorch path is timed too (a second row), and the labels
    on the gold corpus are compared between the two: those the embedding
    models give (``compare_backend_labels``) and the classifier's argmax.
    Timing goes by chunks of ``chunk`` paragraphs (default: four batches),
    each the best of ``rounds`` with the sides taking turns (``_rates``).
    """
    import torch
    from transformers import pipeline

    from experiments.models.finetune import TransformerClassifier

    setup_torch(0)
    device = resolve_device(device)
    texts = bench_texts(n)
    chunk = chunk or 4 * batch_size
    model_dir = str(resolve_model_dir(model))
    embedder = SentenceEmbedder(model=model, device=device, batch_size=batch_size, max_length=max_length,
                                precision=precision, cache=False, backend=backend)
    used = embedder.backend_()
    log(f"{n} paragraphs (the corpus, cycled), batch size {batch_size}, {torch.get_num_threads()} threads, "
        f"device {device}, inference precision {resolve_precision(precision, device)}, "
        f"backend {backend}, each chunk of {min(chunk, n)} the best of {rounds}, sides interleaved")
    results = []

    extractor = pipeline("feature-extraction", model=model_dir, tokenizer=model_dir, device=device,
                         tokenize_kwargs={"truncation": True, "max_length": max_length})

    def plain_embed(batch: list[str]) -> np.ndarray:
        # Mean pooling and L2 normalisation, as the sentence-transformers config of this model does.
        vectors = np.stack([np.asarray(tokens[0]).mean(axis=0) for tokens in extractor(batch)])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    sides = {"ours": embedder.encode, "plain": plain_embed}
    if used != "torch":
        reference = SentenceEmbedder(model=model, device=device, batch_size=batch_size, max_length=max_length,
                                     precision=precision, cache=False, backend="torch")
        sides["torch"] = reference.encode
    embedded = _measure("sentence embeddings", sides, used, texts, rounds, chunk, results)

    classifier = TransformerClassifier(model=model, labels=["favor", "against", "neutral", "none"], max_steps=1,
                                       batch_size=4, max_length=max_length, device=device, precision=precision,
                                       backend=backend)
    classifier.fit(texts[:8], np.array([0, 1, 2, 3] * 2))
    classifier_used = classifier.runtime()  # decided (and exported) before the clock starts, as for a large call
    scorer = pipeline("text-classification", model=classifier.model_, tokenizer=classifier.tokenizer_, device=device,
                      top_k=None, truncation=True, max_length=max_length)
    order = [f"LABEL_{i}" for i in range(len(classifier.classes_))]

    def plain_classify(batch: list[str]) -> np.ndarray:
        return np.array([[{d["label"]: d["score"] for d in row}[label] for label in order] for row in scorer(batch)])

    sides = {"ours": lambda b: classifier.predict_proba(b, batch_size=batch_size), "plain": plain_classify}
    if classifier_used != "torch":
        on_torch = TransformerClassifier(**{**classifier.get_params(), "backend": "torch"})
        on_torch.__dict__.update({k: v for k, v in vars(classifier).items() if k.endswith("_")})  # same weights
        sides["torch"] = lambda b: on_torch.predict_proba(b, batch_size=batch_size)
    scored = _measure("fine-tuned classifier", sides, classifier_used, texts, rounds, chunk, results)

    log(f"{'model':<24}{'backend':>8}{'ours (par/s)':>14}{'pipeline (par/s)':>18}{'ratio':>8}{'max |diff|':>12}")
    for m in results:
        log(f"{m.name:<24}{m.backend:>8}{m.ours:>14.1f}{m.plain:>18.1f}{m.ratio:>7.2f}x{m.max_abs_diff:>12.1e}")
    if used != "torch":
        checks = compare_backend_labels({"torch": reference, used: embedder})
        log(f"{used} against torch, sentence embeddings: max |diff| "
            f"{np.abs(embedded['ours'] - embedded['torch']).max():.1e}; {_verdict(checks)}")
    if classifier_used != "torch":
        corpus = [p["text"] for p in load_paragraphs(paths.PARAGRAPHS).values()]
        same = int((classifier.predict_proba(corpus).argmax(1) == on_torch.predict_proba(corpus).argmax(1)).sum())
        checks = [LabelCheck("stance", same, len(corpus))]
        log(f"{classifier_used} against torch, fine-tuned classifier: max |diff| "
            f"{np.abs(scored['ours'] - scored['torch']).max():.1e}; {_verdict(checks)}")
    return results


def _verdict(checks: list[LabelCheck]) -> str:
    same = "identical" if all(c.identical for c in checks) else "DIFFERENT"
    return (f"labels on the corpus ({checks[0].total} paragraphs) {same}: "
            + ", ".join(f"{c.name} {c.same}/{c.total}" for c in checks))


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
