"""Labelling new paragraphs with the models a run saved (``final_fit: true``).

From a notebook::

    from experiments.predict import Predictor
    predictor = Predictor.from_run("results/default")   # newest run of the config
    predictor.predict(["Foreign powers must stay out of Iran."])
    # [{'stance': 'against', 'stance_probs': {...}, 'frames': ['sovereignty'], 'frame_probs': {...}}]

From the command line, ``predict_files`` streams any number of paragraphs in
chunks to JSON Lines, CSV or Parquet. With ``--out`` it writes a hidden
``.<out>.partial`` file and a small state file after every chunk, so an
interrupted run resumes after the last finished chunk; the output appears
under its real name only when complete. For Parquet the partial file is an
Arrow stream, one record batch per chunk, and the Parquet file is written
from it at the end (in row groups of ``ROW_GROUP_ROWS``, so the file does
not depend on the chunk size). ``experiments.distributed`` runs the same
labelling on a Ray cluster (``--engine ray``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from tqdm.auto import tqdm

from experiments import calibration, rundir
from experiments.errors import UserError
from experiments.inputs import Inputs, count_paragraphs, iter_paragraphs
from experiments.io import dumps, write_text_atomic

TASKS = ("stance", "frames")
FORMATS = ("jsonl", "csv", "parquet")
ROW_GROUP_ROWS = 16_384  # rows per Parquet row group, whatever the chunk size


def _best_model(run_dir: Path, task: str, available: list[str]) -> tuple[str, dict | None]:
    """The run's choice for ``task`` (``metrics.json`` ``selection``), or the best saved model by ``SELECT_BY``."""
    from experiments.selection import choose

    if (run_dir / rundir.METRICS).exists():
        metrics = rundir.read_json(run_dir, rundir.METRICS)
        info = metrics["tasks"].get(task, {})
        models = info.get("models", {})
        chosen = info.get("selection")
        if not chosen or rundir.slug(chosen["model"]) not in available:
            chosen = choose(task, models, metrics.get("protocol", {}),
                            [name for name in models if rundir.slug(name) in available])
        if chosen:
            return rundir.slug(chosen["model"]), chosen
    return available[0], None


@dataclass
class TaskModel:
    task: str
    name: str
    labels: list[str]
    estimator: object
    card: dict
    selection: dict | None = None

    @property
    def calibration(self) -> dict | None:
        return self.card.get("calibration")


class Predictor:
    """The saved stance and/or frames models of one run, ready to label text."""

    def __init__(self, run_dir: Path, models: dict[str, TaskModel], novelty=None):
        self.run_dir = run_dir
        self.models = models
        self.novelty = novelty
        versions = {m.card.get("codebook_version") for m in models.values()}
        self.codebook_version = versions.pop() if len(versions) == 1 else ",".join(sorted(map(str, versions)))
        self._features = {task: _feature_digest(m.estimator) for task, m in models.items()}

    def _final_step(self, m: TaskModel, texts: list[str], matrices: dict) -> tuple:
        """The estimator that decides, and its input: a pipeline's feature steps run once per chunk for all
        tasks whose fitted features are identical (the stance and frames TF-IDF models fit the same vocabulary)."""
        digest = self._features.get(m.task)
        if digest is None:
            return m.estimator, texts
        if digest not in matrices:
            matrices[digest] = m.estimator[:-1].transform(texts)
        return m.estimator[-1], matrices[digest]

    @classmethod
    def from_run(cls, run_dir: str | Path, model: str | None = None, tasks: Iterable[str] = TASKS,
                 similarity: bool = True) -> "Predictor":
        """Load each task's model chosen by the run (``selection``), or the one named ``model``.

        With ``similarity`` each row also gets its similarity to the nearest
        training paragraph (``train_similarity``; see ``experiments.novelty``).
        """
        from experiments.models.persist import load_model
        from experiments.novelty import Novelty

        run_dir = rundir.run_with_models(run_dir)
        chosen: dict[str, TaskModel] = {}
        for task in tasks:
            task_dir = run_dir / rundir.MODELS / task
            available = sorted(p.name for p in task_dir.iterdir() if (p / "model.json").exists()) if task_dir.is_dir() else []
            if not available:
                continue
            selection = None
            if model is not None:
                if rundir.slug(model) not in available:
                    continue
                name = rundir.slug(model)
            else:
                name, selection = _best_model(run_dir, task, available)
            estimator, card = load_model(task_dir / name)
            chosen[task] = TaskModel(task, name, list(card["labels"]), estimator, card, selection)
        if not chosen:
            saved = sorted({p.name for p in (run_dir / rundir.MODELS).glob("*/*") if p.is_dir()})
            if model is not None:
                raise UserError(f"{run_dir}: no saved model named {model!r}; saved: {', '.join(saved) or 'none'}")
            raise UserError(f"{run_dir}/models: no saved model for {' or '.join(tasks)}")
        return cls(run_dir, chosen, Novelty.load(run_dir / rundir.MODELS) if similarity else None)

    def describe(self) -> dict[str, str]:
        return {task: m.name for task, m in self.models.items()}

    def predict(self, texts: list[str]) -> list[dict]:
        """Labels and per-label probabilities for each text, in order."""
        from experiments.models.encoders import read_only_embeddings

        with read_only_embeddings():  # new text is seen once: memory and the cache file stay flat
            return self._predict(texts)

    def _predict(self, texts: list[str]) -> list[dict]:
        texts = list(texts)
        rows: list[dict] = [{} for _ in texts]
        if not texts:
            return rows
        matrices: dict = {}
        if "stance" in self.models:
            m = self.models["stance"]
            decider, X = self._final_step(m, texts, matrices)
            proba = np.asarray(decider.predict_proba(X), dtype=float)
            full = np.zeros((len(texts), len(m.labels)))
            classes = [int(c) for c in m.estimator.classes_]
            full[:, classes] = proba
            full = calibration.apply("stance", full, m.calibration)
            for row, p, conf in zip(rows, full, calibration.confidence("stance", full)):
                row["stance"] = m.labels[int(p.argmax())]
                row["stance_probs"] = {label: round(float(v), 4) for label, v in zip(m.labels, p)}
                row["stance_confidence"] = round(float(conf), 4)
        if "frames" in self.models:
            m = self.models["frames"]
            decider, X = self._final_step(m, texts, matrices)
            proba = np.asarray(decider.predict_proba(X), dtype=float)
            if m.calibration is not None:
                proba = calibration.apply("frames", proba, m.calibration)
                chosen = proba >= 0.5
            else:
                chosen = np.asarray(decider.predict(X))
            for row, p, on, conf in zip(rows, proba, chosen, calibration.confidence("frames", proba)):
                row["frames"] = [label for label, flag in zip(m.labels, on) if flag]
                row["frame_probs"] = {label: round(float(v), 4) for label, v in zip(m.labels, p)}
                row["frames_confidence"] = round(float(conf), 4)
        for row in rows:
            row["confidence"] = min(row[k] for k in ("stance_confidence", "frames_confidence") if k in row)
        if self.novelty is not None:
            for row, sim in zip(rows, self.novelty.similarity(texts)):
                row["train_similarity"] = round(float(sim), 4)
                row["unfamiliar"] = bool(self.novelty.threshold is not None and sim < self.novelty.threshold)
        return rows


def _feature_digest(estimator) -> str | None:
    """A digest of a pipeline's fitted feature steps (everything before the final estimator), else None."""
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, Pipeline) or len(estimator.steps) < 2:
        return None
    import joblib

    return joblib.hash(estimator[:-1])


def predict_texts(texts: list[str], run_dir: str | Path, model: str | None = None) -> list[dict]:
    """Label a list of strings with a run's saved models (see ``Predictor``)."""
    return Predictor.from_run(run_dir, model).predict(texts)


def _output_rows(paragraphs: list[dict], predictions: list[dict], predictor: Predictor,
                 run: str | None = None) -> Iterator[dict]:
    """One output row per paragraph; ``run`` names the run directory as the user gave it (default: the predictor's)."""
    run = str(predictor.run_dir) if run is None else run
    for paragraph, predicted in zip(paragraphs, predictions):
        yield {
            "doc_id": paragraph["doc_id"],
            "paragraph_id": paragraph["id"],
            "hash": paragraph["hash"],
            "text": paragraph["text"],
            **predicted,
            "codebook_version": predictor.codebook_version,
            "run": run,
            "models": predictor.describe(),
        }


def extra_columns(predictor: Predictor, needs_review: bool = False) -> list[str]:
    """The per-row fields after the labels, in CSV column order."""
    extra = [f"{task}_confidence" for task in TASKS if task in predictor.models] + ["confidence"]
    if predictor.novelty is not None:
        extra += ["train_similarity", "unfamiliar"]
    return extra + (["needs_review"] if needs_review else [])


def csv_header(predictor: Predictor, needs_review: bool = False) -> list[str]:
    header = ["doc_id", "paragraph_id", "hash", "text"]
    if "stance" in predictor.models:
        header += ["stance", *(f"p_stance_{label}" for label in predictor.models["stance"].labels)]
    if "frames" in predictor.models:
        header += ["frames", *(f"p_frame_{label}" for label in predictor.models["frames"].labels)]
    return header + extra_columns(predictor, needs_review) + ["codebook_version", "run",
                                                             *(f"{task}_model" for task in predictor.models)]


def _flat(row: dict, extra: list[str], frames=list) -> list:
    """A row's values in ``csv_header`` order; ``frames`` turns the list of frames into the cell."""
    flat = [row["doc_id"], row["paragraph_id"], row["hash"], row["text"]]
    if "stance" in row:
        flat += [row["stance"], *row["stance_probs"].values()]
    if "frames" in row:
        flat += [frames(row["frames"]), *row["frame_probs"].values()]
    flat += [row[k] for k in extra]
    flat += [row["codebook_version"], row["run"], *row["models"].values()]
    return flat


def _format(rows: list[dict], fmt: str, predictor: Predictor, header: bool) -> str:
    if fmt == "jsonl":
        return "".join(dumps(row) + "\n" for row in rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    needs_review = bool(rows) and "needs_review" in rows[0]
    extra = extra_columns(predictor, needs_review)
    if header:
        writer.writerow(csv_header(predictor, needs_review))
    for row in rows:
        writer.writerow(_flat(row, extra, ";".join))
    return buffer.getvalue()


_FLOATS = ("stance_confidence", "frames_confidence", "confidence", "train_similarity")


def arrow_schema(predictor: Predictor, needs_review: bool = False):
    """The Parquet columns: ``csv_header``'s, typed (probabilities as doubles, ``frames`` a list of strings)."""
    import pyarrow as pa

    fields = []
    for name in csv_header(predictor, needs_review):
        if name.startswith(("p_stance_", "p_frame_")) or name in _FLOATS:
            kind = pa.float64()
        elif name in ("unfamiliar", "needs_review"):
            kind = pa.bool_()
        elif name == "frames":
            kind = pa.list_(pa.string())
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def arrow_table(rows: list[dict], schema):
    """``rows`` (as ``_output_rows`` makes them) as an Arrow table with ``schema`` (see ``arrow_schema``)."""
    import pyarrow as pa

    extra = [name for name in schema.names if name in (*_FLOATS, "unfamiliar", "needs_review")]  # extra_columns
    columns = list(zip(*(_flat(row, extra) for row in rows))) or [()] * len(schema)
    return pa.Table.from_arrays([pa.array(list(values), type=f.type) for values, f in zip(columns, schema)],
                                schema=schema)


def write_parquet(batches, schema, path: Path) -> int:
    """Write record batches to ``path`` in row groups of ``ROW_GROUP_ROWS`` and sync it; the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pending: list = []
    held = written = 0
    with open(path, "wb") as handle:
        with pq.ParquetWriter(handle, schema) as writer:
            for batch in batches:
                pending.append(batch)
                held += batch.num_rows
                while held >= ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(pending, schema=schema)
                    writer.write_table(table.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS)
                    rest = table.slice(ROW_GROUP_ROWS)
                    pending, held, written = rest.to_batches(), rest.num_rows, written + ROW_GROUP_ROWS
            if held:
                writer.write_table(pa.Table.from_batches(pending, schema=schema), row_group_size=ROW_GROUP_ROWS)
                written += held
        handle.flush()
        os.fsync(handle.fileno())
    return written


def _arrow_stream(rows: list[dict], schema, header: bool) -> bytes:
    """``rows`` as Arrow IPC stream messages (the schema first when ``header``): appendable, unlike Parquet."""
    parts = [schema.serialize().to_pybytes()] if header else []
    parts += [batch.serialize().to_pybytes() for batch in arrow_table(rows, schema).to_batches()]
    return b"".join(parts)


def _stream_to_parquet(partial: Path, out: Path, schema) -> None:
    """The finished Arrow stream ``partial`` as the Parquet file ``out`` (written beside it, then renamed)."""
    import pyarrow as pa

    tmp = out.with_name(f".{out.name}.partial.parquet")
    with pa.memory_map(str(partial)) as source:
        write_parquet(pa.ipc.open_stream(source), schema, tmp)
    os.replace(tmp, out)
    partial.unlink()


def _queue_rows(rows: list[dict]) -> str:
    """Rows that need review, as a JSON Lines table ``annotate --source`` reads (id, doc_id, text)."""
    return "".join(dumps({"id": r["paragraph_id"], "doc_id": r["doc_id"], "text": r["text"],
                          "confidence": r["confidence"], "stance": r.get("stance"), "frames": r.get("frames")}) + "\n"
                   for r in rows if r.get("needs_review"))


@dataclass
class PredictSummary:
    paragraphs: int
    resumed_from: int
    out: Path | None
    models: dict[str, str]
    run_dir: Path
    needs_review: int = 0
    unfamiliar: int = 0
    novelty_warning: str | None = None
    similarity_checked: bool = False
    selection: dict = field(default_factory=dict)


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
    min_confidence: float | None = None,
    review_queue: Path | None = None,
    similarity: bool = True,
) -> PredictSummary:
    """Label every paragraph of ``inputs`` into ``out`` (or ``stream``, standard output by default).

    With ``min_confidence`` a row whose calibrated ``confidence`` is below it
    gets ``needs_review: true``, and ``review_queue`` (a ``.jsonl`` path)
    collects those rows as a table that ``annotate --source`` takes.
    """
    suffix = out.suffix.lower() if out is not None else ""
    fmt = fmt or (suffix.lstrip(".") if suffix in (".csv", ".jsonl", ".parquet") else "jsonl")
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "parquet" and out is None:
        raise UserError("--format parquet needs --out FILE.parquet: Parquet is not written to standard output")
    if out is not None:
        if out.is_dir():
            raise UserError(f"--out {out}: is a folder; name a file (--engine ray writes a folder of shards)")
        inputs.check_output(out)
    if chunk_size < 1:
        raise UserError("--chunk-size must be at least 1")
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise UserError(f"--min-confidence {min_confidence}: give a probability between 0 and 1")
    if review_queue is not None:
        if min_confidence is None:
            raise UserError("--review-queue needs --min-confidence P: it collects the rows below P")
        if review_queue.suffix.lower() != ".jsonl":
            raise UserError(f"--review-queue {review_queue}: name a .jsonl file (annotate --source reads it)")
        if out is not None and review_queue.resolve() == out.resolve():
            raise UserError(f"--review-queue {review_queue}: must differ from --out")
        inputs.check_output(review_queue, "--review-queue")
    total = count_paragraphs(inputs)  # every input is checked before anything is written
    predictor = Predictor.from_run(run_dir, model, similarity=similarity)
    schema = arrow_schema(predictor, min_confidence is not None) if fmt == "parquet" else None
    state = {
        "run": str(predictor.run_dir.resolve()), "models": predictor.describe(), "format": fmt,
        "inputs": inputs.signature(), "columns": vars(inputs.columns), "chunk_size": chunk_size,
        "min_confidence": min_confidence, "review_queue": str(review_queue) if review_queue else None,
        "similarity": similarity,
    }
    done, counts = 0, {"needs_review": 0, "unfamiliar": 0}
    queue_partial = review_queue.with_name(f".{review_queue.name}.partial") if review_queue is not None else None
    if out is not None:
        partial = out.with_name(f".{out.name}.partial")
        state_path = out.with_name(f".{out.name}.partial.json")
        saved = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() and partial.exists() else None
        resumable = (saved and {k: saved.get(k) for k in state} == state and partial.stat().st_size >= saved["bytes"]
                     and (queue_partial is None or (queue_partial.exists()
                                                    and queue_partial.stat().st_size >= saved.get("queue_bytes", 0))))
        if resumable:
            done = saved["rows"]
            counts = saved.get("counts", counts)
            with open(partial, "r+b") as handle:  # drop a chunk that was cut off after the last saved state
                handle.truncate(saved["bytes"])
            if queue_partial is not None:
                with open(queue_partial, "r+b") as handle:
                    handle.truncate(saved.get("queue_bytes", 0))
        else:
            out.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(b"")
        sink = open(partial, "ab")
    else:
        sink = stream or sys.stdout
    if queue_partial is not None and not done:  # a resumed run keeps the queue it truncated above
        queue_partial.parent.mkdir(parents=True, exist_ok=True)
        queue_partial.write_bytes(b"")
    queue = open(queue_partial, "ab") if queue_partial is not None else None
    bar = tqdm(total=total, initial=done, unit="para", desc="predict", disable=not progress, dynamic_ncols=True)
    try:
        written = 0
        paragraphs = iter_paragraphs(inputs)
        for _ in range(done):
            next(paragraphs)
        for chunk in _chunks(paragraphs, chunk_size):
            rows = list(_output_rows(chunk, predictor.predict([p["text"] for p in chunk]), predictor))
            for row in rows:
                if min_confidence is not None:
                    row["needs_review"] = row["confidence"] < min_confidence
                    counts["needs_review"] += row["needs_review"]
                counts["unfamiliar"] += bool(row.get("unfamiliar"))
            if fmt == "parquet":
                sink.write(_arrow_stream(rows, schema, header=done + written == 0))
            else:
                text = _format(rows, fmt, predictor, header=fmt == "csv" and done + written == 0)
                sink.write(text.encode("utf-8") if out is not None else text)
            sink.flush()
            if queue is not None:
                queue.write(_queue_rows(rows).encode("utf-8"))
                queue.flush()
                os.fsync(queue.fileno())
            written += len(chunk)
            if out is not None:
                os.fsync(sink.fileno())
                write_text_atomic(state_path, json.dumps({**state, "rows": done + written, "bytes": sink.tell(),
                                                          "queue_bytes": queue.tell() if queue else 0,
                                                          "counts": counts}))
            bar.update(len(chunk))
    finally:
        bar.close()
        if out is not None:
            sink.close()
        if queue is not None:
            queue.close()
    if out is not None:
        if fmt == "parquet":
            _stream_to_parquet(partial, out, schema)
        else:
            os.replace(partial, out)
        state_path.unlink(missing_ok=True)
    if queue_partial is not None:
        os.replace(queue_partial, review_queue)
    return summarize(predictor, total, done, out, counts["needs_review"], counts["unfamiliar"])


def summarize(predictor: Predictor, total: int, resumed_from: int, out: Path | None, needs_review: int,
              unfamiliar: int) -> PredictSummary:
    """What a finished ``predict`` reports, whichever engine labelled the rows."""
    warning = predictor.novelty.summary(unfamiliar, total) if predictor.novelty is not None else None
    return PredictSummary(paragraphs=total, resumed_from=resumed_from, out=out, models=predictor.describe(),
                          run_dir=predictor.run_dir, needs_review=needs_review, unfamiliar=unfamiliar,
                          novelty_warning=warning, similarity_checked=predictor.novelty is not None,
                          selection={t: m.selection for t, m in predictor.models.items() if m.selection})


def predict_report(summary: PredictSummary, min_confidence: float | None, review_queue: str | None) -> str:
    """What a user should know after ``predict``: the models and why, review counts, and unfamiliar input."""
    from experiments.selection import describe

    lines = []
    for task, chosen in summary.selection.items():
        lines.append(f"{task}: {describe(chosen)}")
        if not chosen.get("transfer"):
            lines.append(f"note: the {task} model was chosen by a {chosen['protocol']} score, which does not test new "
                         "documents; a leave-one-document-out run (configs/default.yaml) chooses for transfer")
    if min_confidence is not None:
        where = f", written to {review_queue}" if review_queue else ""
        lines.append(f"{summary.needs_review} of {summary.paragraphs} paragraphs need review "
                     f"(confidence < {min_confidence}){where}")
    if summary.novelty_warning:
        lines.append(summary.novelty_warning)
    elif summary.similarity_checked:
        lines.append(f"{summary.unfamiliar} of {summary.paragraphs} paragraphs are less similar to the training data "
                     "than 90% of held-out paragraphs were to other documents")
    return "\n".join(lines)
