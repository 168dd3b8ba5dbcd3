"""Annotation records → gold labels.

Annotations are append-only JSON Lines, one file per annotator in
``data/annotations/``. A later record by the same annotator for the same
paragraph supersedes an earlier one (a correction is a new record, never an
edit). ``derive_gold`` turns the records into ``data/gold.jsonl``:

- one annotator, or several who agree: their labels are gold;
- annotators who disagree: an adjudication record in
  ``data/adjudications.jsonl`` decides; without one the paragraph is left out
  and reported;
- a record whose text hash no longer matches the paragraph (the paragraph
  changed) is reported as stale and not used.

A record's ``action`` is ``label`` (the default), ``skip`` (the annotator
passed; no label) or ``undo`` (withdraws that annotator's label for the
paragraph, which goes back into their queue). Undo and skip are records too,
so the files only ever grow.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from experiments import paths
from experiments.codebook import Codebook
from experiments.errors import UserError
from experiments.io import read_jsonl, write_jsonl_atomic


ANNOTATOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")


def check_annotator_name(name: str) -> str:
    """Refuse names that could not safely be a file name in ``data/annotations/``."""
    if not ANNOTATOR_NAME.fullmatch(name or ""):
        raise UserError(f"annotator name {name!r} is not allowed; use 1-40 letters, digits, '_' or '-', "
                        "starting with a letter or digit (e.g. --annotator maryam)")
    return name


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Span(BaseModel):
    """Words of a paragraph that justify a label: character offsets into its text and the quoted text.

    ``label`` is ``stance`` (the span supports the stance) or a frame name.
    """

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0)
    end: int = Field(gt=0)
    text: str = Field(min_length=1)
    label: str = "stance"

    @model_validator(mode="after")
    def _ordered(self) -> "Span":
        if self.end <= self.start or self.end - self.start != len(self.text):
            raise ValueError("a rationale span needs start < end and end - start == len(text)")
        return self


def check_spans(where: str, spans: list[Span], text: str, codebook: Codebook) -> None:
    """Refuse a rationale span that does not quote the paragraph at its offsets or names an unknown label."""
    for span in spans:
        if text[span.start:span.end] != span.text:
            raise UserError(f"{where}: rationale {span.text[:40]!r} is not the paragraph's text at "
                            f"{span.start}-{span.end}; select the words again")
        if span.label != "stance" and span.label not in codebook.frame_labels:
            raise UserError(f"{where}: rationale label {span.label!r} is neither 'stance' nor a frame "
                            f"({', '.join(codebook.frame_labels)})")


QUOTE = re.compile(r'"([^"]+)"(?:\s*\(([a-z_]+)\))?')


def quoted_spans(rationale: str, text: str, frames: list[str]) -> list[Span]:
    """Spans for the quotes of a written rationale that appear word for word in the paragraph.

    Quotes before ``frames:`` support the stance; a quote after it supports
    the frame named in brackets just after it. A quote with ``...`` is
    matched piece by piece. Quotes that are not in the text are left out.

    >>> [(s.text, s.label) for s in quoted_spans('stance favor: "calls for"; frames: "the bombs" (security)',
    ...                                          "Many calls for help as the bombs fell.", ["security"])]
    [('calls for', 'stance'), ('the bombs', 'security')]
    """
    spans: list[Span] = []
    split = rationale.find("frames:")
    for match in QUOTE.finditer(rationale):
        if split >= 0 and match.start() > split:
            label = match.group(2)
            if label not in frames:
                continue
        else:
            label = "stance"
        for piece in (p.strip() for p in match.group(1).split("...")):
            start = text.find(piece) if piece else -1
            if start >= 0 and not any(s.start == start and s.label == label for s in spans):
                spans.append(Span(start=start, end=start + len(piece), text=piece, label=label))
    return spans


class Annotation(BaseModel):
    """One decision by one annotator about one paragraph: a label, a skip or an undo."""

    model_config = ConfigDict(extra="forbid")

    paragraph_id: str
    hash: str
    annotator: str
    action: Literal["label", "skip", "undo"] = "label"
    stance: str | None = None
    frames: list[str] = []
    rationale: str = ""
    # Selected words that justify the labels (offsets into the paragraph's text).
    rationales: list[Span] = []
    note: str = ""
    timestamp: str
    # True when the model's suggestion was hidden from the annotator (a blind
    # item): ``suggestion`` then records what the model said, unseen.
    blind: bool | None = None
    # What the model proposed (run, models, labels, probabilities) and
    # whether the saved labels are exactly that proposal.
    suggestion: dict[str, Any] | None = None
    accepted_suggestion: bool | None = None
    seconds: float | None = None

    @model_validator(mode="after")
    def _labels_match_action(self) -> "Annotation":
        if self.action == "label" and self.stance is None:
            raise ValueError("a label record needs a stance")
        if self.action != "label" and (self.stance is not None or self.frames):
            raise ValueError(f"a {self.action} record carries no stance or frames")
        return self


class Adjudication(BaseModel):
    """The decision that settles annotators' disagreement about a paragraph."""

    model_config = ConfigDict(extra="forbid")

    paragraph_id: str
    hash: str
    adjudicator: str = Field(min_length=1)
    stance: str
    frames: list[str]
    reason: str = Field(min_length=1)
    rationales: list[Span] = []
    timestamp: str


@dataclass
class GoldReport:
    """What ``derive_gold`` found: gold records and everything it did not use."""

    gold: list[dict[str, Any]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"{len(self.gold)} gold paragraphs"]
        if self.unlabelled:
            out.append(f"{len(self.unlabelled)} paragraphs have no annotation yet")
        if self.stale:
            out.append(
                f"{len(self.stale)} stale annotation(s) ignored, the paragraph text changed since: "
                + "; ".join(self.stale[:5])
                + (" ..." if len(self.stale) > 5 else "")
            )
        if self.unresolved:
            out.append(
                f"{len(self.unresolved)} disagreement(s) without adjudication left out of gold: "
                + ", ".join(self.unresolved[:10])
            )
        return out


def load_paragraphs(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The corpus paragraphs by id, in file (reading) order (default: ``paths.PARAGRAPHS``).

    A last line cut off by a crash while the annotation app was appending
    new paragraphs is ignored: it was never confirmed.
    """
    path = paths.PARAGRAPHS if path is None else path
    if not path.exists():
        raise UserError(f"{path}: not found; run `python -m experiments corpus` first")
    return {record["id"]: record for _, record in read_jsonl(path, torn_tail_ok=True)}


def _check_labels(where: str, stance: str | None, frames: list[str], codebook: Codebook) -> None:
    if stance is not None and stance not in codebook.stance_labels:
        raise UserError(f"{where}: unknown stance {stance!r}; use one of {', '.join(codebook.stance_labels)}")
    for frame in frames:
        if frame not in codebook.frame_labels:
            raise UserError(f"{where}: unknown frame {frame!r}; use any of {', '.join(codebook.frame_labels)}")


def _read_records(path: Path, model: type[BaseModel], paragraphs: dict, codebook: Codebook,
                  unknown_id: str | None = None) -> list[tuple[str, Any]]:
    """Validated records of one file, each with its ``file:line`` for messages.

    ``unknown_id`` replaces the end of the message for a paragraph id that
    is not in ``paragraphs`` (after "paragraph id 'x' ").
    """
    out = []
    for lineno, raw in read_jsonl(path, torn_tail_ok=True):
        where = f"{path}:{lineno}"
        try:
            record = model.model_validate(raw)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(p) for p in error["loc"]) or "record"
            problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"].removeprefix("Value error, ")
            raise UserError(f"{where}: {key}: {problem}") from None
        if record.paragraph_id not in paragraphs:
            problem = unknown_id or (f"does not exist in {paths.PARAGRAPHS.name}; "
                                     "fix the id or run `python -m experiments corpus`")
            raise UserError(f"{where}: paragraph id {record.paragraph_id!r} {problem}")
        _check_labels(where, record.stance, record.frames, codebook)
        if getattr(record, "rationales", None):
            check_spans(where, record.rationales, paragraphs[record.paragraph_id]["text"], codebook)
        out.append((where, record))
    return out


def annotation_files(directory: Path | None = None) -> list[Path]:
    directory = paths.ANNOTATIONS if directory is None else directory
    return sorted(directory.glob("*.jsonl")) if directory.exists() else []


def read_annotations(path: Path, paragraphs: dict, codebook: Codebook,
                     unknown_id: str | None = None) -> list[tuple[str, Annotation]]:
    """Every validated record of one annotator file, in file order, with its ``file:line``."""
    return _read_records(path, Annotation, paragraphs, codebook, unknown_id)


def latest_labels(
    codebook: Codebook, paragraphs: dict, annotations_dir: Path | None = None, stale: list[str] | None = None,
    unknown_id: str | None = None,
) -> dict[str, dict[str, Annotation]]:
    """``{paragraph_id: {annotator: label record}}``: each annotator's standing label.

    A later label supersedes an earlier one, an undo withdraws it, a skip
    changes nothing. Records whose hash no longer matches the paragraph are
    listed in ``stale`` (when given) and ignored.
    """
    latest: dict[str, dict[str, Annotation]] = defaultdict(dict)
    for path in annotation_files(annotations_dir):
        for where, record in read_annotations(path, paragraphs, codebook, unknown_id):
            if record.annotator != path.stem:
                raise UserError(f"{where}: annotator {record.annotator!r} in {path.name}; "
                                f"each annotator's records belong in their own file ({record.annotator}.jsonl)")
            if record.hash != paragraphs[record.paragraph_id]["hash"]:
                if stale is not None:
                    stale.append(f"{where} ({record.paragraph_id})")
                continue
            if record.action == "label":
                latest[record.paragraph_id][record.annotator] = record
            elif record.action == "undo":
                latest[record.paragraph_id].pop(record.annotator, None)
    return {pid: by for pid, by in latest.items() if by}


def latest_adjudications(
    codebook: Codebook, paragraphs: dict, adjudications: Path | None = None, stale: list[str] | None = None,
    unknown_id: str | None = None,
) -> dict[str, Adjudication]:
    """The latest adjudication of each paragraph; records whose hash no longer matches go to ``stale``."""
    adjudications = paths.ADJUDICATIONS if adjudications is None else adjudications
    decided: dict[str, Adjudication] = {}
    if adjudications.exists():
        for where, record in _read_records(adjudications, Adjudication, paragraphs, codebook, unknown_id):
            if record.hash != paragraphs[record.paragraph_id]["hash"]:
                if stale is not None:
                    stale.append(f"{where} ({record.paragraph_id})")
                continue
            decided[record.paragraph_id] = record
    return decided


def derive_gold(
    codebook: Codebook,
    paragraphs: dict[str, dict[str, Any]],
    annotations_dir: Path | None = None,
    adjudications: Path | None = None,
    unknown_id: str | None = None,
) -> GoldReport:
    """Combine every annotator's latest valid record (and adjudications) into gold labels.

    The files default to ``paths.ANNOTATIONS`` and ``paths.ADJUDICATIONS``,
    looked up at call time. ``unknown_id`` is what the error for a record
    naming a paragraph that ``paragraphs`` lacks says after the id (by
    default: fix the id or rebuild the corpus).
    """
    report = GoldReport()
    latest = latest_labels(codebook, paragraphs, annotations_dir, report.stale, unknown_id)
    decided = latest_adjudications(codebook, paragraphs, adjudications, report.stale, unknown_id)

    frame_order = {name: i for i, name in enumerate(codebook.frame_labels)}
    for pid, paragraph in paragraphs.items():
        by_annotator = latest.get(pid, {})
        if pid in decided:
            final, source = decided[pid], "adjudicated"
        elif not by_annotator:
            report.unlabelled.append(pid)
            continue
        else:
            decisions = {(r.stance, frozenset(r.frames)) for r in by_annotator.values()}
            if len(decisions) > 1:
                report.unresolved.append(pid)
                continue
            final = next(iter(by_annotator.values()))
            source = "single" if len(by_annotator) == 1 else "agreed"
        # The rationale of whoever holds the gold labels: the adjudicator's spans, else those of every
        # annotator whose labels are the gold ones; a written rationale's quotes count as spans too.
        backers = [r for r in by_annotator.values() if (r.stance, set(r.frames)) == (final.stance, set(final.frames))]
        spans: list[Span] = list(getattr(final, "rationales", []) or []) if source == "adjudicated" else []
        if not spans:
            for record in backers:
                spans += record.rationales or quoted_spans(record.rationale, paragraph["text"], record.frames)
        spans = list({(s.start, s.end, s.label): s for s in spans}.values())
        report.gold.append(
            {
                "id": pid,
                "doc_id": paragraph["doc_id"],
                "kind": paragraph["kind"],
                "text": paragraph["text"],
                "hash": paragraph["hash"],
                "stance": final.stance,
                "frames": sorted(set(final.frames), key=frame_order.__getitem__),
                "annotators": sorted(by_annotator),
                "source": source,
                "rationale": " | ".join(r.rationale for r in backers if r.rationale),
                "rationales": [s.model_dump() for s in sorted(spans, key=lambda s: (s.start, s.end, s.label))],
            }
        )
    return report


def write_gold(report: GoldReport, out: Path | None = None) -> Path:
    out = paths.GOLD if out is None else out
    write_jsonl_atomic(out, report.gold)
    return out


def label_stats(gold: list[dict[str, Any]], codebook: Codebook) -> str:
    """Label distribution per document and overall, as a plain-text table."""
    docs = sorted({g["doc_id"] for g in gold}, key=[g["doc_id"] for g in gold].index)
    columns = [*codebook.stance_labels, *codebook.frame_labels]
    rows = []
    for doc in [*docs, "ALL"]:
        items = [g for g in gold if doc in ("ALL", g["doc_id"])]
        counts = Counter(g["stance"] for g in items)
        counts.update(f for g in items for f in g["frames"])
        rows.append([doc, str(len(items)), *(str(counts[c]) for c in columns)])
    header = ["document", "n", *columns]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    rule = "-" * len(fmt(header))
    lines = ["stance: " + ", ".join(codebook.stance_labels) + " | frames: " + ", ".join(codebook.frame_labels)]
    return "\n".join([*lines, fmt(header), rule, *map(fmt, rows[:-1]), rule, fmt(rows[-1])])
