"""What the annotation app knows and does, without the web server.

A ``Session`` is one annotator working through a queue of paragraphs. Every
decision (label, skip, undo) is appended to ``<data>/annotations/<name>.jsonl``
and flushed to disk before the call returns; the session's state is replayed
from that file when it starts, so a restarted app resumes where the
annotator stopped and a closed browser loses nothing.

Queue orders:

- ``document``: reading order of the corpus;
- ``random``: shuffled with a seed (the same seed gives the same order);
- ``uncertain``: the paragraphs the suggesting model is least sure of first
  (active learning). A paragraph's uncertainty is the mean of its stance
  entropy and its frames' mean binary entropy, each divided by its maximum
  so it lies in [0, 1].

>>> round(uncertainty({"stance_probs": {"a": 0.5, "b": 0.5}, "frame_probs": {"x": 0.5}}), 3)
1.0
>>> round(uncertainty({"stance_probs": {"a": 1.0, "b": 0.0}, "frame_probs": {"x": 0.0}}), 3)
0.0
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments import paths
from experiments.annotations import Annotation, check_annotator_name, load_paragraphs, now, read_annotations
from experiments.codebook import Codebook
from experiments.corpus import load_documents
from experiments.errors import UserError
from experiments.io import append_jsonl, locked

ORDERS = ("document", "random", "uncertain")


@dataclass(frozen=True)
class DataDir:
    """Where the corpus and the annotation files live (``data/`` unless told otherwise)."""

    root: Path = paths.DATA

    @property
    def paragraphs(self) -> Path:
        return self.root / "paragraphs.jsonl"

    @property
    def annotations(self) -> Path:
        return self.root / "annotations"

    @property
    def adjudications(self) -> Path:
        return self.root / "adjudications.jsonl"


def read_corpus(data: DataDir) -> dict[str, dict[str, Any]]:
    """The corpus paragraphs of ``data`` by id, in reading order (see ``annotations.load_paragraphs``)."""
    return load_paragraphs(data.paragraphs)


def add_to_corpus(data: DataDir, incoming: list[dict]) -> list[str]:
    """Add new paragraphs to the corpus file; return the corpus ids of every incoming paragraph.

    A paragraph whose text is already in the corpus (same hash) keeps its
    existing id, so giving the same source twice adds nothing. An id that
    exists with different text is refused: document ids come from file
    names, and two different files must not share one.
    """
    with locked(data.paragraphs):
        corpus = read_corpus(data)
        by_hash = {p["hash"]: pid for pid, p in corpus.items()}
        ids, new = [], []
        stamp = now()
        for paragraph in incoming:
            if paragraph["hash"] in by_hash:
                ids.append(by_hash[paragraph["hash"]])
                continue
            if paragraph["id"] in corpus:
                raise UserError(f"{paragraph['source']}: paragraph id {paragraph['id']!r} already exists in "
                                f"{data.paragraphs} with different text; rename the file so its document id is new")
            record = {"id": paragraph["id"], "doc_id": paragraph["doc_id"], "position": paragraph.get("position"),
                      "kind": paragraph["kind"], "text": paragraph["text"], "hash": paragraph["hash"],
                      "n_words": len(paragraph["text"].split()), "source": paragraph["source"], "added": stamp}
            corpus[record["id"]] = record
            by_hash[record["hash"]] = record["id"]
            new.append(record)
            ids.append(record["id"])
        if new:
            append_jsonl(data.paragraphs, *new)
    return ids


def entropy(probabilities) -> float:
    p = np.clip(np.asarray(list(probabilities), dtype=float), 1e-12, 1.0)
    return float(-(p * np.log(p)).sum())


def uncertainty(prediction: dict) -> float:
    """How unsure a model is about one paragraph, in [0, 1] (see the module docstring)."""
    parts = []
    stance = list(prediction.get("stance_probs", {}).values())
    if len(stance) > 1:
        parts.append(entropy(stance) / math.log(len(stance)))
    frames = list(prediction.get("frame_probs", {}).values())
    if frames:
        parts.append(float(np.mean([entropy([p, 1 - p]) for p in frames])) / math.log(2))
    return float(np.mean(parts)) if parts else 0.0


def order_queue(ids: list[str], order: str, seed: int = 0, suggestions: dict[str, dict] | None = None) -> list[str]:
    """The paragraphs of ``ids`` in the order the annotator will see them."""
    if order == "document":
        return list(ids)
    if order == "random":
        return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    if order == "uncertain":
        if not suggestions:
            raise UserError("--order uncertain needs a model: add --suggest RUN_DIR")
        scores = [uncertainty(suggestions[pid]) for pid in ids]
        return [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], i))]
    raise UserError(f"--order {order!r}: use one of {', '.join(ORDERS)}")


def document_titles(corpus: dict[str, dict]) -> dict[str, str]:
    """Each document's title: the manifest's for seed documents, else its first headline, else its id."""
    titles: dict[str, str] = {}
    try:
        titles.update({doc.id: doc.title for doc in load_documents() if doc.title})
    except UserError:
        pass
    for paragraph in corpus.values():
        if paragraph["doc_id"] not in titles and paragraph.get("kind") == "headline":
            titles[paragraph["doc_id"]] = paragraph["text"]
    return titles


class Session:
    """One annotator's queue and decisions; every method that decides appends to their file first."""

    def __init__(self, annotator: str, codebook: Codebook, data: DataDir, queue: list[str],
                 suggestions: dict[str, dict] | None = None, suggest_info: dict | None = None):
        self.annotator = check_annotator_name(annotator)
        self.codebook = codebook
        self.data = data
        self.file = data.annotations / f"{annotator}.jsonl"
        self.corpus = read_corpus(data)
        missing = [pid for pid in queue if pid not in self.corpus]
        if missing:
            raise UserError(f"{data.paragraphs}: paragraph {missing[0]!r} is not in the corpus")
        self.queue = list(queue)
        self._in_queue = set(self.queue)
        self.suggestions = suggestions or {}
        self.suggest_info = suggest_info or {}
        self.titles = document_titles(self.corpus)
        self._neighbours = self._index_documents()
        self._lock = threading.Lock()
        self._served_at: tuple[str, float] | None = None
        self._replay()

    def _index_documents(self) -> dict[str, tuple[str | None, str | None, int, int]]:
        """Each paragraph's neighbours in its document, its position there and the document's length."""
        by_doc: dict[str, list[str]] = {}
        for pid, paragraph in self.corpus.items():
            by_doc.setdefault(paragraph["doc_id"], []).append(pid)
        out = {}
        for ids in by_doc.values():
            for i, pid in enumerate(ids):
                out[pid] = (ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None, i + 1, len(ids))
        return out

    def _replay(self) -> None:
        """Rebuild the state from the annotator's file: what is done, skipped, undone, and the undo stack."""
        self.status: dict[str, str] = {}
        self.labels: dict[str, Annotation] = {}
        self.history: list[str] = []
        self.undone: list[str] = []
        if not self.file.exists():
            return
        for _, record in read_annotations(self.file, self.corpus, self.codebook):
            pid = record.paragraph_id
            if pid not in self._in_queue or record.hash != self.corpus[pid]["hash"] or record.annotator != self.annotator:
                continue
            self._apply(record)

    def _apply(self, record: Annotation) -> None:
        pid = record.paragraph_id
        if record.action == "undo":
            self.status.pop(pid, None)
            if pid in self.history:
                del self.history[len(self.history) - 1 - self.history[::-1].index(pid)]
            if pid in self.undone:
                self.undone.remove(pid)
            self.undone.insert(0, pid)
            return
        self.status[pid] = "done" if record.action == "label" else "skipped"
        if record.action == "label":
            self.labels[pid] = record
        if pid in self.undone:
            self.undone.remove(pid)
        if pid in self.history:
            self.history.remove(pid)
        self.history.append(pid)

    def current(self) -> tuple[str | None, bool]:
        """The paragraph to show next and whether it was skipped before (served again at the end)."""
        for pid in self.undone:
            if pid not in self.status:
                return pid, False
        for pid in self.queue:
            if pid not in self.status:
                return pid, False
        skipped = [pid for pid in self.history if self.status.get(pid) == "skipped"]
        return (skipped[0], True) if skipped else (None, False)

    def progress(self) -> dict[str, int]:
        done = sum(1 for s in self.status.values() if s == "done")
        skipped = sum(1 for s in self.status.values() if s == "skipped")
        return {"done": done, "skipped": skipped, "left": len(self.queue) - done - skipped, "total": len(self.queue)}

    def _paragraph_view(self, pid: str | None) -> dict | None:
        if pid is None:
            return None
        p = self.corpus[pid]
        return {"id": pid, "doc_id": p["doc_id"], "text": p["text"], "kind": p.get("kind", "body")}

    def state(self) -> dict:
        """Everything the page shows: the paragraph, its neighbours, the suggestion, progress."""
        with self._lock:
            pid, revisit = self.current()
            view = None
            if pid is not None:
                before, after, position, doc_size = self._neighbours[pid]
                previous = self.labels.get(pid)
                view = {
                    **self._paragraph_view(pid),
                    "hash": self.corpus[pid]["hash"],
                    "title": self.titles.get(self.corpus[pid]["doc_id"], self.corpus[pid]["doc_id"]),
                    "position": position,
                    "doc_size": doc_size,
                    "before": self._paragraph_view(before),
                    "after": self._paragraph_view(after),
                    "suggestion": self.suggestions.get(pid),
                    "previous": {"stance": previous.stance, "frames": previous.frames, "note": previous.note}
                    if previous else None,
                    "revisit": revisit,
                }
                if self._served_at is None or self._served_at[0] != pid:
                    self._served_at = (pid, time.monotonic())
            return {
                "annotator": self.annotator,
                "paragraph": view,
                "progress": self.progress(),
                "can_undo": bool(self.history),
                "suggest": self.suggest_info or None,
                "file": str(self.file),
            }

    def _check_target(self, paragraph_id: str, text_hash: str) -> None:
        if paragraph_id not in self.corpus or paragraph_id not in self._in_queue:
            raise UserError(f"paragraph {paragraph_id!r} is not in this session's queue")
        if text_hash != self.corpus[paragraph_id]["hash"]:
            raise UserError(f"paragraph {paragraph_id!r} changed since the page loaded it; reload the page")

    def _seconds(self, paragraph_id: str) -> float | None:
        if self._served_at and self._served_at[0] == paragraph_id:
            return round(time.monotonic() - self._served_at[1], 1)
        return None

    def _write(self, record: Annotation) -> None:
        append_jsonl(self.file, record.model_dump(exclude_none=True))
        self._apply(record)

    def label(self, paragraph_id: str, text_hash: str, stance: str, frames: list[str], note: str = "") -> dict:
        """Save a label (durably) and return the next state."""
        with self._lock:
            self._check_target(paragraph_id, text_hash)
            if stance not in self.codebook.stance_labels:
                raise UserError(f"unknown stance {stance!r}; use one of {', '.join(self.codebook.stance_labels)}")
            unknown = [f for f in frames if f not in self.codebook.frame_labels]
            if unknown:
                raise UserError(f"unknown frame {unknown[0]!r}; use any of {', '.join(self.codebook.frame_labels)}")
            order = {name: i for i, name in enumerate(self.codebook.frame_labels)}
            frames = sorted(set(frames), key=order.__getitem__)
            suggestion = self.suggestions.get(paragraph_id)
            accepted = None
            if suggestion is not None:
                accepted = stance == suggestion.get("stance") and set(frames) == set(suggestion.get("frames", []))
            record = Annotation(
                paragraph_id=paragraph_id, hash=text_hash, annotator=self.annotator, stance=stance, frames=frames,
                note=note.strip(), timestamp=now(), seconds=self._seconds(paragraph_id),
                suggestion={**self.suggest_info, **suggestion} if suggestion else None, accepted_suggestion=accepted,
            )
            self._write(record)
        return self.state()

    def skip(self, paragraph_id: str, text_hash: str, note: str = "") -> dict:
        with self._lock:
            self._check_target(paragraph_id, text_hash)
            self._write(Annotation(paragraph_id=paragraph_id, hash=text_hash, annotator=self.annotator,
                                   action="skip", note=note.strip(), timestamp=now(),
                                   seconds=self._seconds(paragraph_id)))
        return self.state()

    def undo(self) -> dict:
        """Withdraw the latest label or skip; that paragraph is shown again, with its old labels."""
        with self._lock:
            if not self.history:
                raise UserError("nothing to undo")
            pid = self.history[-1]
            self._write(Annotation(paragraph_id=pid, hash=self.corpus[pid]["hash"], annotator=self.annotator,
                                   action="undo", timestamp=now()))
        return self.state()

    def codebook_view(self) -> dict:
        cb = self.codebook.model_dump()
        return {
            "version": self.codebook.version,
            "stance": {"question": cb["stance"]["question"],
                       "labels": [{k: label[k] for k in ("name", "key", "definition", "cues")} for label in cb["stance"]["labels"]],
                       "rules": cb["stance"]["decision_rules"]},
            "frames": {"question": cb["frames"]["question"],
                       "labels": [{k: label[k] for k in ("name", "key", "definition", "cues")} for label in cb["frames"]["labels"]],
                       "rules": cb["frames"]["decision_rules"]},
        }


def start_session(
    annotator: str,
    codebook: Codebook,
    data: DataDir = DataDir(),
    source: list[str] | None = None,
    suggest: str | Path | None = None,
    order: str = "document",
    seed: int = 0,
    progress: bool = True,
) -> Session:
    """Check everything, add ``source`` paragraphs to the corpus, compute suggestions, order the queue."""
    check_annotator_name(annotator)
    if order not in ORDERS:
        raise UserError(f"--order {order!r}: use one of {', '.join(ORDERS)}")
    if order == "uncertain" and suggest is None:
        raise UserError("--order uncertain needs a model: add --suggest RUN_DIR")
    predictor = None
    if suggest is not None:
        from experiments.predict import Predictor

        predictor = Predictor.from_run(suggest)
        frames_model = predictor.models.get("frames")
        if frames_model and frames_model.labels != codebook.frame_labels:
            raise UserError(f"--suggest {suggest}: its frames model predicts {', '.join(frames_model.labels)}, not the "
                            "codebook's frames; suggest from a run with frame_level: project")
    if source:
        from experiments.inputs import count_paragraphs, iter_paragraphs, open_inputs

        with open_inputs(list(source)) as inputs:
            count_paragraphs(inputs)
            ids = add_to_corpus(data, list(iter_paragraphs(inputs)))
        ids = list(dict.fromkeys(ids))
    else:
        ids = list(read_corpus(data))
    suggestions, info = None, None
    if predictor is not None:
        corpus = read_corpus(data)
        suggestions = {}
        from tqdm.auto import tqdm

        for start in tqdm(range(0, len(ids), 64), desc="suggestions", unit="batch", disable=not progress):
            batch = ids[start:start + 64]
            for pid, prediction in zip(batch, predictor.predict([corpus[pid]["text"] for pid in batch])):
                suggestions[pid] = prediction
        info = {"run": str(predictor.run_dir), "models": predictor.describe(), "codebook_version": predictor.codebook_version}
    queue = order_queue(ids, order, seed, suggestions)
    return Session(annotator, codebook, data, queue, suggestions, info)
