"""``python -m experiments bench --scale N``: rows per second and peak memory of ``predict`` at scale.

N paragraph-like rows are generated from the corpus's own sentences
(2 to 5 sentences each, drawn with a seed), written once as a JSON Lines
table, and labelled by ``predict`` exactly as a user runs it, as a separate
command, with each engine (local, Ray) and each model asked for. While a
command runs, every process it starts is sampled for its resident memory
(RSS); the result is the largest RSS any one process reached, and the sum
over processes at the busiest moment.

>>> rows = list(generate_rows(3, seed=1, sentences=["A b.", "C d.", "E f."]))
>>> [r["id"] for r in rows]
['scale-00000000', 'scale-00000001', 'scale-00000002']
>>> all(2 <= r["text"].count(".") <= 5 for r in rows)
True
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from experiments import paths
from experiments.errors import UserError

SENTENCE = re.compile(r"(?<=[.!?])\s+")
ENGINES = ("local", "ray")
MODELS = ("tfidf_logreg", "embed_logreg")


def corpus_sentences() -> list[str]:
    """The sentences of the corpus paragraphs (the source of the generated rows)."""
    from experiments.annotations import load_paragraphs

    sentences = [s.strip() for p in load_paragraphs().values() for s in SENTENCE.split(p["text"])]
    return [s for s in sentences if len(s.split()) >= 4]


def generate_rows(n: int, seed: int = 0, sentences: list[str] | None = None) -> Iterator[dict]:
    """``n`` rows ``{"id", "text"}``, each 2 to 5 corpus sentences in a random order (fixed by ``seed``)."""
    sentences = sentences if sentences is not None else corpus_sentences()
    rng = np.random.default_rng(seed)
    for start in range(0, n, 10_000):
        size = min(10_000, n - start)
        counts = rng.integers(2, 6, size=size)
        picks = rng.integers(0, len(sentences), size=int(counts.sum()))
        at = 0
        for i, k in enumerate(counts):
            yield {"id": f"scale-{start + i:08d}", "text": " ".join(sentences[j] for j in picks[at:at + k])}
            at += k


def write_rows(path: Path, rows: Iterable[dict]) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


@dataclass
class ScaleResult:
    engine: str
    model: str
    rows: int
    seconds: float
    peak_rss_mb: float  # the largest resident memory of any one process
    total_rss_mb: float  # all the command's processes together, at the busiest sample
    processes: int  # how many processes the command started, itself included

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("nan")


def run_measured(command: list[str], interval: float = 0.2, env: dict | None = None) -> tuple[float, float, float, int]:
    """Run ``command``; return (seconds, peak RSS of one process, peak total RSS, process count) in MiB.

    A failing command raises ``UserError`` with its last output line.
    """
    import psutil

    started = time.perf_counter()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    root = psutil.Process(process.pid)
    seen: set[int] = set()
    peak = total = 0.0
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            break
        now = 0.0
        for proc in tree:
            try:
                rss = proc.memory_info().rss / 2**20
            except psutil.Error:
                continue
            seen.add(proc.pid)
            peak = max(peak, rss)
            now += rss
        total = max(total, now)
        time.sleep(interval)
    seconds = time.perf_counter() - started
    if process.wait() != 0:
        log.seek(0)
        tail = log.read().decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no output)"]
        raise UserError(f"`{' '.join(command[2:])}` failed: {tail[0]}")
    return seconds, peak, total, len(seen)


def predict_command(run_dir: str, table: Path, out: Path, engine: str, model: str) -> list[str]:
    command = [sys.executable, "-m", "experiments", "predict", run_dir, str(table), "--model", model,
               "--no-similarity", "--no-progress", "--out", str(out)]
    return command + (["--engine", "ray"] if engine == "ray" else [])


def bench_scale(n: int, run_dir: str = "results/default", engines: Iterable[str] = ENGINES,
                models: Iterable[str] = MODELS, workdir: Path | None = None, seed: int = 0,
                log=print) -> list[ScaleResult]:
    """Generate ``n`` rows, label them with every engine and model, and print a table of rows/s and memory."""
    if n < 1:
        raise UserError(f"--scale {n}: give a number of rows of 1 or more")
    engines, models = list(engines), list(models)
    for engine in engines:
        if engine not in ENGINES:
            raise UserError(f"--engine {engine!r}: use {' or '.join(ENGINES)}")
    from experiments.predict import Predictor

    for model in models:  # a wrong run or model fails here, before rows are generated
        Predictor.from_run(run_dir, model=model)
    with tempfile.TemporaryDirectory(prefix="scale-", dir=workdir) as tmp:
        table = Path(tmp) / "rows.jsonl"
        t0 = time.perf_counter()
        written = write_rows(table, generate_rows(n, seed))
        log(f"{written:,} generated rows -> {table} ({table.stat().st_size / 2**20:,.0f} MiB, "
            f"{time.perf_counter() - t0:.0f} s)")
        results = []
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        for model in models:
            for engine in engines:
                out = Path(tmp) / f"out-{engine}-{model}" / ("labels.jsonl" if engine == "local" else "")
                out.parent.mkdir(exist_ok=True)
                seconds, peak, total, count = run_measured(predict_command(run_dir, table, out, engine, model), env=env)
                result = ScaleResult(engine, model, written, round(seconds, 1), round(peak), round(total), count)
                results.append(result)
                log(f"{model:<14} {engine:<6} {result.rows_per_s:>9,.0f} rows/s  {seconds:>8,.0f} s  "
                    f"peak RSS {peak:>6,.0f} MiB per process, {total:>6,.0f} MiB in all ({count} processes)")
    return results


def save_results(results: list[ScaleResult], out: Path = paths.RESULTS / "bench" / "scale.jsonl") -> Path:
    """Append the measurements, with the machine they ran on, to a JSON Lines log."""
    import platform

    out.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(out, "a", encoding="utf-8") as handle:
        for r in results:
            handle.write(json.dumps({**asdict(r), "rows_per_s": round(r.rows_per_s, 1), "time": stamp,
                                     "cpus": os.cpu_count(), "machine": platform.machine()}) + "\n")
    return out
