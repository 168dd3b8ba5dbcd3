"""What the annotation app knows and does, without the web server.

A ``Session`` is one annotator working through a queue of paragraphs. Every
decision (label, skip, undo) is appended to ``<data>/annotations/<name>.jsonl``
and flushed to disk before the call returns; the session's state is replayed
from that file when it starts, so a restarted app resumes where the
annotator stopped and a closed browser loses nothing.

Queue orders:

- ``document``: reading order of the corpus;
- ``random``: shuffled with a seed (the same seed gives the same order);
- ``uncertain``: the paragraphs the model is least sure of first (active
  learning), with a diversity term so near-duplicates are not served in a row
  (``learner.uncertainty`` and ``learner.diverse_order``).

Learning while labelling: with a ``Learner`` the session retrains a fast
model in a background thread every ``retrain_every`` labels, on the
annotator's labels plus any gold outside the queue. The new model's
suggestions replace the old ones, the rest of an ``uncertain`` queue is
ranked again (the paragraph on screen keeps its place), and ``learning()``
reports the labels per class and the model's cross-validated quality. A
keypress never waits for training: decisions take the session lock only to
append a record, and the trainer takes it only to swap its results in.

Blind items: a share of the queue (``blind``) is shown without the model's
suggestion; the record says ``blind: true`` and keeps what the model said,
so ``agreement`` can measure how far suggestions anchor annotators.

A record stores the suggestion exactly as the page showed it, even when the
model was retrained between showing and saving.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from experiments.annotations import (
    Annotation, Span, check_annotator_name, check_spans, derive_gold, latest_labels, load_paragraphs, now,
    read_annotations,
)
from experiments.codebook import Codebook
from experiments.corpus import add_to_corpus, load_documents
from experiments.errors import UserError
from experiments.io import append_jsonl, read_jsonl
from experiments.learner import Learner, diverse_order, uncertainty
from experiments.paths import DataDir

ORDERS = ("document", "random", "uncertain")


def read_corpus(data: DataDir) -> dict[str, dict[str, Any]]:
    """The corpus paragraphs of ``data`` by id, in reading order (see ``annotations.load_paragraphs``)."""
    return load_paragraphs(data.paragraphs)


def order_queue(ids: list[str], order: str, seed: int = 0, suggestions: dict[str, dict] | None = None) -> list[str]:
    """The paragraphs of ``ids`` in the order the annotator will see them."""
    if order == "document":
        return list(ids)
    if order == "random":
        return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    if order == "uncertain":
        if not suggestions:
            return list(ids)  # document order until a model has suggested
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
    """One annotator's queue and decisions; every method that decides appends to their file first.

    ``learner`` (optional) is retrained every ``retrain_every`` labels on the
    labels so far plus ``background`` (gold records outside the queue);
    ``blind`` is the set of paragraph ids shown without suggestions.
    """

    def __init__(self, annotator: str, codebook: Codebook, data: DataDir, queue: list[str],
                 suggestions: dict[str, dict] | None = None, suggest_info: dict | None = None,
                 learner: Learner | None = None, retrain_every: int = 5, order: str = "document",
                 blind: set[str] | frozenset[str] = frozenset(), background: list[dict] | None = None,
                 diversity: float = 0.5, practice: bool = False):
        self.annotator = check_annotator_name(annotator)
        self.codebook = codebook
        self.data = data
        self.file = data.annotations / f"{annotator}.jsonl"
        self.corpus = read_corpus(data)
        missing = [pid for pid in queue if pid not in self.corpus]
        if missing:
            raise UserError(f"{data.paragraphs}: paragraph {missing[0]!r} is not in the corpus")
        if retrain_every < 1:
            raise UserError(f"--retrain-every {retrain_every}: use a number of labels of 1 or more")
        self.queue = list(queue)
        self._in_queue = set(self.queue)
        # Where the suggestions come from (the run, or the learner's version); a record stores both.
        self.suggestions = suggestions or {}
        self.suggest_info = suggest_info or {}
        self.order = order
        self.blind = set(blind) & self._in_queue
        self.practice = practice
        self.titles = document_titles(self.corpus)
        self._neighbours = self._index_documents()
        self._lock = threading.Lock()
        self._served_at: tuple[str, float] | None = None
        self._shown: dict[str, tuple[dict | None, dict]] = {}  # paragraph -> (suggestion, its source) as shown
        self._others = self._other_labels()
        self._notice: str | None = None
        self.learner = learner
        self.retrain_every = retrain_every
        self.diversity = diversity
        self.background = [r for r in (background or []) if r["id"] not in self._in_queue]
        self._vectors: dict[str, np.ndarray] = {}
        self._since = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._learning = {"model": learner.model if learner else None, "version": 0, "status": "waiting",
                          "trained_on": 0, "quality": [], "every": retrain_every, "seconds": None, "error": None,
                          "trained_at": None}
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

    def _other_labels(self) -> dict[str, dict[str, tuple[str, frozenset]]]:
        """Other annotators' standing labels on this queue, to say when a label starts a disagreement."""
        try:
            latest = latest_labels(self.codebook, self.corpus, self.data.annotations)
        except UserError:
            return {}  # a damaged file of someone else's is reported by `corpus`; it does not block labelling
        return {pid: {who: (r.stance, frozenset(r.frames)) for who, r in by.items() if who != self.annotator}
                for pid, by in latest.items() if pid in self._in_queue}

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

    def _standing(self) -> dict[str, Annotation]:
        """The annotator's standing labels (an undone label is not standing)."""
        return {pid: record for pid, record in self.labels.items() if self.status.get(pid) == "done"}

    def state(self) -> dict:
        """Everything the page shows: the paragraph, its neighbours, the suggestion, progress, learning."""
        with self._lock:
            pid, revisit = self.current()
            view = None
            if pid is not None:
                before, after, position, doc_size = self._neighbours[pid]
                previous = self.labels.get(pid)
                blind = pid in self.blind
                if self._served_at is None or self._served_at[0] != pid:
                    self._served_at = (pid, time.monotonic())
                    self._shown[pid] = (self.suggestions.get(pid), self.suggest_info)  # what a label records
                suggestion, source = self._shown[pid]
                view = {
                    **self._paragraph_view(pid),
                    "hash": self.corpus[pid]["hash"],
                    "title": self.titles.get(self.corpus[pid]["doc_id"], self.corpus[pid]["doc_id"]),
                    "position": position,
                    "doc_size": doc_size,
                    "before": self._paragraph_view(before),
                    "after": self._paragraph_view(after),
                    "suggestion": None if blind else suggestion,
                    "suggested_by": None if blind or not suggestion else describe_source(source),
                    "blind": blind,
                    "previous": {"stance": previous.stance, "frames": previous.frames, "note": previous.note,
                                 "rationales": [s.model_dump() for s in previous.rationales]}
                    if previous else None,
                    "revisit": revisit,
                }
            notice, self._notice = self._notice, None
            return {
                "mode": "label",
                "annotator": self.annotator,
                "paragraph": view,
                "progress": self.progress(),
                "can_undo": bool(self.history),
                "suggest": self.suggest_info or None,
                "learning": self._learning_view(),
                "notice": notice,
                "practice": self.practice,
                "file": str(self.file),
            }

    def _learning_view(self) -> dict:
        standing = self._standing()
        stance = Counter(r.stance for r in standing.values())
        frames = Counter(f for r in standing.values() for f in r.frames)
        pid, _ = self.current()
        upcoming = [p for p in self.queue if p not in self.status and p != pid][:5]
        return {
            **self._learning,
            "stance_counts": {label: stance[label] for label in self.codebook.stance_labels},
            "frame_counts": {label: frames[label] for label in self.codebook.frame_labels},
            "next_in": None if self.learner is None else max(self.retrain_every - self._since, 0),
            "order": self.order,
            "blind_share": round(len(self.blind) / max(len(self.queue), 1), 3),
            "upcoming": upcoming,
        }

    def learning(self) -> dict:
        """The live panel: labels per class and the learner's status and quality."""
        with self._lock:
            return {"learning": self._learning_view(), "progress": self.progress()}

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
        append_jsonl(self.file, record.model_dump(exclude_none=True, exclude={"rationales"} if not record.rationales else None))
        self._apply(record)
        if record.action in ("label", "undo") and self.learner is not None:
            self._since += 1
            if self._since >= self.retrain_every:
                self._wake.set()

    def label(self, paragraph_id: str, text_hash: str, stance: str, frames: list[str], note: str = "",
              rationales: list[dict] | None = None) -> dict:
        """Save a label (durably) and return the next state."""
        with self._lock:
            self._check_target(paragraph_id, text_hash)
            if stance not in self.codebook.stance_labels:
                raise UserError(f"unknown stance {stance!r}; use one of {', '.join(self.codebook.stance_labels)}")
            unknown = [f for f in frames if f not in self.codebook.frame_labels]
            if unknown:
                raise UserError(f"unknown frame {unknown[0]!r}; use any of {', '.join(self.codebook.frame_labels)}")
            spans = [Span.model_validate(span) for span in rationales or []]
            check_spans(f"paragraph {paragraph_id!r}", spans, self.corpus[paragraph_id]["text"], self.codebook)
            order = {name: i for i, name in enumerate(self.codebook.frame_labels)}
            frames = sorted(set(frames), key=order.__getitem__)
            suggestion, source = self._shown.get(paragraph_id, (self.suggestions.get(paragraph_id), self.suggest_info))
            blind = paragraph_id in self.blind
            accepted = None
            if suggestion is not None and not blind:
                accepted = stance == suggestion.get("stance") and set(frames) == set(suggestion.get("frames", []))
            record = Annotation(
                paragraph_id=paragraph_id, hash=text_hash, annotator=self.annotator, stance=stance, frames=frames,
                rationales=sorted(spans, key=lambda s: (s.start, s.end)), note=note.strip(), timestamp=now(),
                seconds=self._seconds(paragraph_id), suggestion={**source, **suggestion} if suggestion else None,
                accepted_suggestion=accepted,
                blind=True if blind else None,
            )
            self._write(record)
            others = [who for who, labels in self._others.get(paragraph_id, {}).items()
                      if labels != (stance, frozenset(frames))]
            if others:
                self._notice = (f"Your label differs from {', '.join(sorted(others))}'s: paragraph {paragraph_id} "
                                "leaves gold until someone adjudicates (annotate --review).")
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
        return codebook_view(self.codebook)

    # ------------------------------------------------------------------ learning while labelling

    def start_learning(self) -> None:
        """Start the background trainer; it trains once now when there is anything to learn from."""
        if self.learner is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._learn_loop, name="learner", daemon=True)
        self._thread.start()
        if self.background or self._standing():
            self._wake.set()

    def stop_learning(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _learn_loop(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            self.retrain()

    def retrain(self) -> bool:
        """Train a new model on the labels so far, then swap in its suggestions and rank the queue again.

        Runs in the trainer thread (or directly, in tests); returns whether a
        model was trained. A failure is reported on the page, never raised
        into the annotator's way.
        """
        with self._lock:
            standing = self._standing()
            self._since = 0
            self._learning["status"] = "training"
            rows = [(r["text"], r["stance"], list(r["frames"])) for r in self.background]
            rows += [(self.corpus[pid]["text"], r.stance, list(r.frames)) for pid, r in standing.items()]
            recent = [pid for pid in self.history if self.status.get(pid) == "done"][-5:]
        texts, stance, frames = (list(column) for column in zip(*rows)) if rows else ([], [], [])
        learner = dataclasses.replace(self.learner)  # a fresh model; the one suggesting now stays as it is
        if not learner.can_fit(stance):
            with self._lock:
                self._learning["status"] = "waiting"
            return False
        started = time.monotonic()
        try:
            from threadpoolctl import threadpool_limits

            # Small fits: one BLAS thread is many times faster than threads waiting for each other.
            with threadpool_limits(limits=1, user_api="blas"):
                learner.fit(texts, stance, frames)
                predictions = dict(zip(self.queue, learner.predict([self.corpus[pid]["text"] for pid in self.queue])))
                if self.order == "uncertain" and not self._vectors:
                    self._vectors = dict(zip(self.queue, learner.embed([self.corpus[pid]["text"] for pid in self.queue])))
                quality = [vars(q) for q in learner.quality(texts, stance, frames)]
        except Exception as exc:  # the annotator keeps labelling; the page says what went wrong
            with self._lock:
                self._learning.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        with self._lock:
            version = self._learning["version"] + 1
            self.suggestions = predictions
            self.suggest_info = {"learner": learner.model, "version": version, "trained_on": len(stance)}
            if self.order == "uncertain":
                self._rerank(predictions, recent)
            self._learning.update(status="ready", version=version, trained_on=len(stance), quality=quality,
                                  seconds=round(time.monotonic() - started, 2), error=None, trained_at=now())
        return True

    def _rerank(self, predictions: dict[str, dict], recent: list[str]) -> None:
        """Rank the paragraphs not yet decided by uncertainty and diversity; the one on screen stays first."""
        shown = self._served_at[0] if self._served_at and self._served_at[0] not in self.status else None
        decided = [pid for pid in self.queue if pid in self.status]
        rest = [pid for pid in self.queue if pid not in self.status and pid != shown]
        if not rest:
            return
        vectors = np.stack([self._vectors[pid] for pid in rest])
        near = np.stack([self._vectors[pid] for pid in recent if pid in self._vectors]) if recent else None
        ranked = diverse_order(rest, [uncertainty(predictions[pid]) for pid in rest], vectors, self.diversity, near)
        self.queue = decided + ([shown] if shown else []) + ranked


def describe_source(suggestion: dict) -> str:
    """Who made a suggestion, in a few words for the page."""
    if "learner" in suggestion:
        n = suggestion["trained_on"]
        return f"{suggestion['learner']} v{suggestion['version']}, learned from {n} label{'' if n == 1 else 's'}"
    models = suggestion.get("models") or {}
    return ", ".join(f"{task}: {name}" for task, name in models.items()) or "a saved run"


def codebook_view(codebook: Codebook) -> dict:
    """The codebook as the page shows it: questions, labels with keys, definitions and cues, decision rules."""
    cb = codebook.model_dump()
    view = {"version": codebook.version}
    for task in ("stance", "frames"):
        view[task] = {"question": cb[task]["question"],
                      "labels": [{k: label[k] for k in ("name", "key", "definition", "cues")} for label in cb[task]["labels"]],
                      "rules": cb[task]["decision_rules"]}
    return view


def gold_notice(data: DataDir, codebook: Codebook, queue: list[str]) -> list[str]:
    """What an annotator should know before labelling: paragraphs out of gold, and what a new label does."""
    try:
        report = derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications)
    except UserError as exc:
        return [f"warning: {exc}"]
    lines = []
    if report.unresolved:
        lines.append(f"{len(report.unresolved)} paragraph(s) are out of gold: annotators disagree and nobody has "
                     f"adjudicated ({', '.join(report.unresolved[:5])}{' ...' if len(report.unresolved) > 5 else ''}); "
                     "settle them with `annotate --review --adjudicator NAME`")
    in_gold = {g["id"]: g["annotators"] for g in report.gold}
    ours = [pid for pid in queue if pid in in_gold]
    if ours:
        who = sorted({a for pid in ours for a in in_gold[pid]})
        lines.append(f"{len(ours)} paragraph(s) of this queue are already gold (labelled by {', '.join(who)}); a label "
                     "that differs takes a paragraph out of gold until it is adjudicated. To try the app without "
                     "touching gold, add --practice")
    return lines


def start_session(
    annotator: str,
    codebook: Codebook,
    data: DataDir = DataDir(),
    source: list[str] | None = None,
    suggest: str | Path | None = None,
    order: str = "document",
    seed: int = 0,
    progress: bool = True,
    learn: str | None = None,
    retrain_every: int = 5,
    blind: float = 0.0,
    practice: bool = False,
    device: str = "auto",
) -> Session:
    """Check everything, add ``source`` paragraphs to the corpus, compute suggestions, order the queue.

    ``learn`` names the model retrained while labelling (``learner.LEARNERS``;
    ``None`` for none); ``blind`` is the share of the queue shown without
    suggestions. ``practice`` labels a copy of the corpus in a temporary
    folder, so nothing reaches ``data/`` or gold.
    """
    check_annotator_name(annotator)
    if order not in ORDERS:
        raise UserError(f"--order {order!r}: use one of {', '.join(ORDERS)}")
    if order == "uncertain" and suggest is None and learn is None:
        raise UserError("--order uncertain needs a model: add --suggest RUN_DIR or --learn MODEL")
    if not 0.0 <= blind < 1.0:
        raise UserError(f"--blind {blind}: give the share of paragraphs shown without suggestions, from 0 to below 1")
    learner = Learner(codebook, learn, seed, device) if learn is not None else None
    predictor = None
    if suggest is not None:
        from experiments.predict import Predictor

        predictor = Predictor.from_run(suggest)
        frames_model = predictor.models.get("frames")
        if frames_model and frames_model.labels != codebook.frame_labels:
            raise UserError(f"--suggest {suggest}: its frames model predicts {', '.join(frames_model.labels)}, not the "
                            "codebook's frames; suggest from a run with frame_level: project")
    background = read_gold(data) if learner is not None else []
    if practice:
        data = practice_copy(data)
    if source:
        from experiments.inputs import count_paragraphs, iter_paragraphs, open_inputs

        with open_inputs(list(source)) as inputs:
            count_paragraphs(inputs)
            ids = add_to_corpus(list(iter_paragraphs(inputs)), data.paragraphs)
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
    rng = np.random.default_rng(seed + 1)
    hidden = {ids[i] for i in rng.choice(len(ids), size=int(round(blind * len(ids))), replace=False)} if ids else set()
    return Session(annotator, codebook, data, queue, suggestions, info, learner=learner, retrain_every=retrain_every,
                   order=order, blind=hidden, background=background, practice=practice)


def read_gold(data: DataDir) -> list[dict]:
    """The gold records of ``data`` (none when gold has not been derived yet)."""
    if not data.gold.exists():
        return []
    return [record for _, record in read_jsonl(data.gold, torn_tail_ok=True)]


def practice_copy(data: DataDir) -> DataDir:
    """A temporary folder with a copy of the corpus and no annotations: practice labels go there."""
    practice = DataDir(Path(tempfile.mkdtemp(prefix="annotate-practice-")))
    if data.paragraphs.exists():
        shutil.copyfile(data.paragraphs, practice.paragraphs)
    return practice
