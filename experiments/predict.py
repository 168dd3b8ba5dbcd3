"""Labelling new paragraphs with the models a run saved (``final_fit: true``).

From a notebook::

    from experiments.predict import Predictor
    predictor = Predictor.from_run("results/default")   # newest run of the config
    predictor.predict(["Foreign powers must stay out of Iran."])
    # [{'stance': 'against', 'stance_probs': {...}, 'frames': ['sovereignty'], 'frame_probs': {...}}]

From the command line, ``predict_files`` streams any number of paragraphs in
chunks to JSON Lines or CSV. With ``--out`` it writes a hidden
``.<out>.partial`` file and a small state file after every chunk, so an
interrupted run resumes after the last finished chunk; the output appears
under its real name only when complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from experiments.errors import UserError
from experiments.inputs import Inputs, count_paragraphs, iter_paragraphs
from experiments.io import dumps, write_text_atomic

TASKS = ("stance", "frames")
FORMATS = ("jsonl", "csv")
# The headline metric that picks a run's best model when none is named.
SELECT_BY = {"stance": "macro_f1", "frames": "micro_f1"}


def find_run_with_models(run_dir: Path) -> Path:
    """``run_dir`` itself, or the newest run under a config's results folder that saved models."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if (run_dir / "models").is_dir():
        return run_dir
    runs = sorted(d for d in run_dir.glob("[0-9]*") if (d / "models").is_dir() and (d / "meta.json").exists())
    if runs:
        return runs[-1]
    raise UserError(f"{run_dir}: no saved models; run the config with final_fit: true, "
                    "e.g. `python -m experiments run configs/default.yaml --set final_fit=true`")


def _best_model(run_dir: Path, task: str, available: list[str]) -> str:
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        models = json.loads(metrics_path.read_text(encoding="utf-8"))["tasks"].get(task, {}).get("models", {})
        scored = [(result["metrics"][SELECT_BY[task]]["value"] or 0.0, name) for name, result in models.items()
                  if _dir_name(name) in available]
        if scored:
            return _dir_name(max(scored, key=lambda pair: pair[0])[1])
    return available[0]


def _dir_name(display: str) -> str:
    from experiments.plots import slug

    return slug(display)


@dataclass
class TaskModel:
    task: str
    name: str
    labels: list[str]
    estimator: object
    card: dict


class Predictor:
    """The saved stance and/or frames models of one run, ready to label text."""

    def __init__(self, run_dir: Path, models: dict[str, TaskModel]):
        self.run_dir = run_dir
        self.models = models
        versions = {m.card.get("codebook_version") for m in models.values()}
        self.codebook_version = versions.pop() if len(versions) == 1 else ",".join(sorted(map(str, versions)))

    @classmethod
    def from_run(cls, run_dir: str | Path, model: str | None = None, tasks: Iterable[str] = TASKS) -> "Predictor":
        """Load the best saved model of each task (by the run's metrics), or the one named ``model``."""
        from experiments.models.persist import load_model

        run_dir = find_run_with_models(Path(run_dir))
        chosen: dict[str, TaskModel] = {}
        for task in tasks:
            task_dir = run_dir / "models" / task
            available = sorted(p.name for p in task_dir.iterdir() if (p / "model.json").exists()) if task_dir.is_dir() else []
            if not available:
                continue
            if model is not None:
                if _dir_name(model) not in available:
                    continue
                name = _dir_name(model)
            else:
                name = _best_model(run_dir, task, available)
            estimator, card = load_model(task_dir / name)
            chosen[task] = TaskModel(task, name, list(card["labels"]), estimator, card)
        if not chosen:
            saved = sorted({p.name for p in (run_dir / "models").glob("*/*") if p.is_dir()})
            if model is not None:
                raise UserError(f"{run_dir}: no saved model named {model!r}; saved: {', '.join(saved) or 'none'}")
            raise UserError(f"{run_dir}/models: no saved model for {' or '.join(tasks)}")
        return cls(run_dir, chosen)

    def describe(self) -> dict[str, str]:
        return {task: m.name for task, m in self.models.items()}

    def predict(self, texts: list[str]) -> list[dict]:
        """Labels and per-label probabilities for each text, in order."""
        from experiments.models.features import clear_feature_cache

        texts = list(texts)
        rows: list[dict] = [{} for _ in texts]
        if not texts:
            return rows
        # The TF-IDF matrix cache pays off when cross-validation folds share
        # texts; new text is seen once, so keep memory flat instead.
        clear_feature_cache()
        if "stance" in self.models:
            m = self.models["stance"]
            proba = np.asarray(m.estimator.predict_proba(texts), dtype=float)
            full = np.zeros((len(texts), len(m.labels)))
            classes = [int(c) for c in m.estimator.classes_]
            full[:, classes] = proba
            for row, p in zip(rows, full):
                row["stance"] = m.labels[int(p.argmax())]
                row["stance_probs"] = {label: round(float(v), 4) for label, v in zip(m.labels, p)}
        if "frames" in self.models:
            m = self.models["frames"]
            proba = np.asarray(m.estimator.predict_proba(texts), dtype=float)
            chosen = np.asarray(m.estimator.predict(texts))
            for row, p, on in zip(rows, proba, chosen):
                row["frames"] = [label for label, flag in zip(m.labels, on) if flag]
                row["frame_probs"] = {label: round(float(v), 4) for label, v in zip(m.labels, p)}
        clear_feature_cache()
        return rows


def predict_texts(texts: list[str], run_dir: str | Path, model: str | None = None) -> list[dict]:
    """Label a list of strings with a run's saved models (see ``Predictor``)."""
    return Predictor.from_run(run_dir, model).predict(texts)


def _output_rows(paragraphs: list[dict], predictions: list[dict], predictor: Predictor) -> Iterator[dict]:
    for paragraph, predicted in zip(paragraphs, predictions):
        yield {
            "doc_id": paragraph["doc_id"],
            "paragraph_id": paragraph["id"],
            "hash": paragraph["hash"],
            "text": paragraph["text"],
            **predicted,
            "codebook_version": predictor.codebook_version,
            "run": str(predictor.run_dir),
            "models": predictor.describe(),
        }


def csv_header(predictor: Predictor) -> list[str]:
    header = ["doc_id", "paragraph_id", "hash", "text"]
    if "stance" in predictor.models:
        header += ["stance", *(f"p_stance_{label}" for label in predictor.models["stance"].labels)]
    if "frames" in predictor.models:
        header += ["frames", *(f"p_frame_{label}" for label in predictor.models["frames"].labels)]
    return header + ["codebook_version", "run", *(f"{task}_model" for task in predictor.models)]


def _format(rows: Iterable[dict], fmt: str, predictor: Predictor, header: bool) -> str:
    if fmt == "jsonl":
        return "".join(dumps(row) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(csv_header(predictor))
    for row in rows:
        flat = [row["doc_id"], row["paragraph_id"], row["hash"], row["text"]]
        if "stance" in row:
            flat += [row["stance"], *row["stance_probs"].values()]
        if "frames" in row:
            flat += [";".join(row["frames"]), *row["frame_probs"].values()]
        flat += [row["codebook_version"], row["run"], *row["models"].values()]
        writer.writerow(flat)
    return buffer.getvalue()


@dataclass
class PredictSummary:
    paragraphs: int
    resumed_from: int
    out: Path | None
    models: dict[str, str]
    run_dir: Path


def _chunks(records: Iterator[dict], size: int) -> Iterator[list[dict]]:
    chunk: list[dict] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def predict_files(
    run_dir: str | Path,
    inputs: Inputs,
    out: Path | None = None,
    fmt: str | None = None,
    model: str | None = None,
    chunk_size: int = 256,
    progress: bool = True,
    stream=None,
) -> PredictSummary:
    """Label every paragraph of ``inputs`` into ``out`` (or ``stream``, standard output by default)."""
    fmt = fmt or (out.suffix.lstrip(".").lower() if out is not None and out.suffix.lower() in (".csv", ".jsonl") else "jsonl")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise UserError("--chunk-size must be at least 1")
    total = count_paragraphs(inputs)  # every input is checked before anything is written
    predictor = Predictor.from_run(run_dir, model)
    state = {
        "run": str(predictor.run_dir.resolve()), "models": predictor.describe(), "format": fmt,
        "inputs": inputs.signature(), "columns": vars(inputs.columns), "chunk_size": chunk_size,
    }
    done = 0
    if out is not None:
        partial = out.with_name(f".{out.name}.partial")
        state_path = out.with_name(f".{out.name}.partial.json")
        saved = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() and partial.exists() else None
        if saved and {k: saved.get(k) for k in state} == state and partial.stat().st_size >= saved["bytes"]:
            done = saved["rows"]
            with open(partial, "r+b") as handle:  # drop a chunk that was cut off after the last saved state
                handle.truncate(saved["bytes"])
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"")
        sink = open(partial, "ab")
    else:
        sink = stream or sys.stdout
    bar = tqdm(total=total, initial=done, unit="para", desc="predict", disable=not progress, dynamic_ncols=True)
    try:
        written = 0
        paragraphs = iter_paragraphs(inputs)
        for _ in range(done):
            next(paragraphs)
        for chunk in _chunks(paragraphs, chunk_size):
            predictions = predictor.predict([p["text"] for p in chunk])
            text = _format(_output_rows(chunk, predictions, predictor), fmt, predictor, header=fmt == "csv" and done + written == 0)
            sink.write(text.encode("utf-8") if out is not None else text)
            sink.flush()
            written += len(chunk)
            if out is not None:
                os.fsync(sink.fileno())
                write_text_atomic(state_path, json.dumps({**state, "rows": done + written, "bytes": sink.tell()}))
            bar.update(len(chunk))
    finally:
        bar.close()
        if out is not None:
            sink.close()
    if out is not None:
        os.replace(partial, out)
        state_path.unlink(missing_ok=True)
    return PredictSummary(paragraphs=total, resumed_from=done, out=out, models=predictor.describe(), run_dir=predictor.run_dir)
