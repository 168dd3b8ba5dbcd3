"""Settling disagreements in the annotation app: ``annotate --review --adjudicator NAME``.

A ``ReviewSession`` serves, one by one, the paragraphs on which annotators'
standing labels differ and nobody has adjudicated yet. The page shows each
annotator's labels, rationale spans and note; the adjudicator takes one side
or sets new labels, always with a reason. Each decision is one record
appended to ``adjudications.jsonl`` by ``adjudication.record_adjudication``,
exactly as ``adjudicate`` writes it on the command line, so ``corpus`` takes
it into gold. Nothing is ever rewritten: deciding a paragraph again appends a
newer record, which supersedes the earlier one.
"""

from __future__ import annotations

import threading

from experiments.adjudication import record_adjudication
from experiments.agreement import compute_agreement, pending_disagreements
from experiments.annotate import codebook_view, document_titles, read_corpus
from experiments.annotations import Span, check_annotator_name, latest_labels
from experiments.codebook import Codebook
from experiments.errors import UserError
from experiments.paths import DataDir


class ReviewSession:
    """One adjudicator working through the open disagreements of a data folder."""

    def __init__(self, adjudicator: str, codebook: Codebook, data: DataDir = DataDir()):
        self.annotator = check_annotator_name(adjudicator)
        self.codebook = codebook
        self.data = data
        self.file = data.adjudications
        self.corpus = read_corpus(data)
        report = compute_agreement(codebook, self.corpus, data.annotations, data.adjudications)
        self.queue = [d.paragraph_id for d in pending_disagreements(report)]
        self.records = latest_labels(codebook, self.corpus, data.annotations)
        self.titles = document_titles(self.corpus)
        self.decided: dict[str, dict] = {}
        self.skipped: list[str] = []
        self._lock = threading.Lock()

    def current(self) -> str | None:
        waiting = [pid for pid in self.queue if pid not in self.decided and pid not in self.skipped]
        return waiting[0] if waiting else (self.skipped[0] if self.skipped else None)

    def progress(self) -> dict[str, int]:
        done = len(self.decided)
        skipped = sum(1 for pid in self.skipped if pid not in self.decided)
        return {"done": done, "skipped": skipped, "left": len(self.queue) - done - skipped, "total": len(self.queue)}

    def _side(self, name: str, pid: str) -> dict:
        record = self.records[pid][name]
        return {"annotator": name, "stance": record.stance, "frames": record.frames, "note": record.note,
                "rationale": record.rationale, "rationales": [s.model_dump() for s in record.rationales]}

    def state(self) -> dict:
        with self._lock:
            pid = self.current()
            view = None
            if pid is not None:
                p = self.corpus[pid]
                ids = [i for i, q in self.corpus.items() if q["doc_id"] == p["doc_id"]]
                at = ids.index(pid)
                context = lambda i: {"id": ids[i], "text": self.corpus[ids[i]]["text"]} if 0 <= i < len(ids) else None
                view = {"id": pid, "doc_id": p["doc_id"], "kind": p.get("kind", "body"), "text": p["text"],
                        "hash": p["hash"], "title": self.titles.get(p["doc_id"], p["doc_id"]), "position": at + 1,
                        "doc_size": len(ids), "before": context(at - 1), "after": context(at + 1),
                        "sides": [self._side(name, pid) for name in sorted(self.records.get(pid, {}))],
                        "revisit": pid in self.skipped}
            return {"mode": "review", "annotator": self.annotator, "paragraph": view, "progress": self.progress(),
                    "can_undo": False, "file": str(self.file), "learning": None, "notice": None, "practice": False}

    def _check(self, paragraph_id: str, text_hash: str) -> None:
        if paragraph_id not in self.queue:
            raise UserError(f"paragraph {paragraph_id!r} is not an open disagreement")
        if text_hash != self.corpus[paragraph_id]["hash"]:
            raise UserError(f"paragraph {paragraph_id!r} changed since the page loaded it; reload the page")

    def adjudicate(self, paragraph_id: str, text_hash: str, reason: str = "", take: str | None = None,
                   stance: str | None = None, frames: list[str] | None = None,
                   rationales: list[dict] | None = None) -> dict:
        """Record the decision (durably): ``take`` one annotator's labels, or ``stance``/``frames`` with a reason."""
        with self._lock:
            self._check(paragraph_id, text_hash)
            sides = self.records.get(paragraph_id, {})
            spans = [Span.model_validate(span) for span in rationales or []]
            if take is not None:
                if take not in sides:
                    raise UserError(f"{paragraph_id}: {take!r} has no label here; take one of {', '.join(sorted(sides))}")
                if stance is not None or frames:
                    raise UserError(f"{paragraph_id}: take one annotator's labels or set new ones, not both")
                stance, frames = sides[take].stance, list(sides[take].frames)
                spans = spans or list(sides[take].rationales)
                reason = f"took {take}'s labels" + (f": {reason.strip()}" if reason.strip() else "")
            elif stance is None:
                raise UserError(f"{paragraph_id}: choose a stance, or take one annotator's labels")
            elif not reason.strip():
                raise UserError(f"{paragraph_id}: new labels need a reason; write it in the reason field")
            record = record_adjudication(self.codebook, self.corpus, paragraph_id, stance, list(frames or []), reason,
                                         self.annotator, self.data.adjudications, rationales=spans)
            self.decided[paragraph_id] = record
        return self.state()

    def skip(self, paragraph_id: str, text_hash: str, note: str = "") -> dict:
        """Leave a disagreement for later in this session (nothing is written)."""
        with self._lock:
            self._check(paragraph_id, text_hash)
            if paragraph_id in self.skipped:
                self.skipped.remove(paragraph_id)
            self.skipped.append(paragraph_id)
        return self.state()

    def undo(self) -> dict:
        raise UserError("an adjudication is not withdrawn; adjudicate the paragraph again to replace it")

    def codebook_view(self) -> dict:
        return codebook_view(self.codebook)
