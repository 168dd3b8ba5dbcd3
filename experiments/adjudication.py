"""Adjudication: settling the disagreements the agreement report lists.

A decision is one record appended to ``data/adjudications.jsonl``
(``record_adjudication``, or interactively with ``adjudicate_interactive``;
the app's review page calls the same function). ``annotations.derive_gold``
then takes the adjudicated labels into gold. Annotation files are never
edited, and a newer decision on a paragraph supersedes an older one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from experiments import paths
from experiments.agreement import (
    compute_agreement,
    describe_labels,
    ordered_frames,
    pending_disagreements,
    wrap_paragraph,
)
from experiments.annotations import (
    Adjudication,
    Span,
    check_annotator_name,
    check_spans,
    latest_adjudications,
    latest_labels,
    now,
)
from experiments.codebook import Codebook
from experiments.errors import UserError
from experiments.io import append_jsonl


def stance_keys(codebook: Codebook) -> dict[str, str]:
    """Shortcut key -> stance label, from the codebook (``{"1": "favor", ...}``)."""
    return {label.key: label.name for label in codebook.stance.labels}


def frame_keys(codebook: Codebook) -> dict[str, str]:
    """Shortcut letter -> frame label, from the codebook (``{"h": "humanitarian", ...}``)."""
    return {label.key: label.name for label in codebook.frames.labels}


def parse_stance(codebook: Codebook, text: str, where: str) -> str:
    """A stance given by its name or its codebook key (``1``-``4``)."""
    value = text.strip()
    keys = stance_keys(codebook)
    if value in codebook.stance_labels:
        return value
    if value in keys:
        return keys[value]
    choices = ", ".join(f"{k} {n}" for k, n in keys.items())
    raise UserError(f"{where}: unknown stance {value!r}; type a key or name: {choices}")


def parse_frames(codebook: Codebook, text: str, where: str) -> list[str]:
    """Frames as comma- or space-separated names or codebook letters; empty means no frames.

    >>> from experiments.codebook import load_codebook
    >>> parse_frames(load_codebook(), "s, humanitarian", "x")
    ['humanitarian', 'security']
    """
    keys = frame_keys(codebook)
    chosen = []
    for token in text.replace(",", " ").split():
        if token in codebook.frame_labels:
            chosen.append(token)
        elif token in keys:
            chosen.append(keys[token])
        else:
            choices = ", ".join(f"{k} {n}" for k, n in keys.items())
            raise UserError(f"{where}: unknown frame {token!r}; use letters or names: {choices}")
    return ordered_frames(chosen, codebook.frame_labels)


def _paragraph(paragraphs: dict, paragraph_id: str) -> dict[str, Any]:
    if paragraph_id not in paragraphs:
        raise UserError(
            f"paragraph id {paragraph_id!r} does not exist in {paths.PARAGRAPHS.name}; "
            "copy the id from the agreement report"
        )
    return paragraphs[paragraph_id]


def resolve_choice(
    codebook: Codebook,
    paragraphs: dict[str, dict[str, Any]],
    paragraph_id: str,
    take: str | None = None,
    stance: str | None = None,
    frames: list[str] | None = None,
    annotations_dir: Path = paths.ANNOTATIONS,
) -> tuple[str, list[str]]:
    """The ``(stance, frames)`` an adjudication will record.

    Either ``take`` names an annotator whose standing label on the paragraph
    is adopted, or ``stance`` (and optionally ``frames``) are given directly.
    """
    _paragraph(paragraphs, paragraph_id)
    if take is not None and (stance is not None or frames):
        raise UserError(f"{paragraph_id}: give either --take ANNOTATOR or --stance/--frames, not both")
    if take is None:
        if stance is None:
            raise UserError(f"{paragraph_id}: an adjudication needs --stance (and --frames) or --take ANNOTATOR")
        return stance, list(frames or [])
    by = latest_labels(codebook, paragraphs, annotations_dir).get(paragraph_id, {})
    if take not in by:
        if not by:
            raise UserError(f"{paragraph_id}: no annotator has a standing label here; give --stance and --frames instead")
        raise UserError(
            f"{paragraph_id}: annotator {take!r} has no standing label here; take one of {', '.join(sorted(by))}"
        )
    return by[take].stance, ordered_frames(by[take].frames, codebook.frame_labels)


def record_adjudication(
    codebook: Codebook,
    paragraphs: dict[str, dict[str, Any]],
    paragraph_id: str,
    stance: str,
    frames: list[str],
    reason: str,
    adjudicator: str,
    adjudications: Path = paths.ADJUDICATIONS,
    rationales: list[Span] | None = None,
) -> dict[str, Any]:
    """Validate and append one adjudication record; return it. Annotation files are not touched.

    The adjudication file must read cleanly first (a torn last line is
    allowed and dropped), or nothing is written.
    """
    paragraph = _paragraph(paragraphs, paragraph_id)
    check_annotator_name(adjudicator)
    if stance not in codebook.stance_labels:
        raise UserError(
            f"{paragraph_id}: unknown stance {stance!r}; use one of {', '.join(codebook.stance_labels)}"
        )
    for frame in frames:
        if frame not in codebook.frame_labels:
            raise UserError(
                f"{paragraph_id}: unknown frame {frame!r}; use any of {', '.join(codebook.frame_labels)}"
            )
    if not (reason or "").strip():
        raise UserError(f"{paragraph_id}: an adjudication needs --reason")
    record = Adjudication(
        paragraph_id=paragraph_id,
        hash=paragraph["hash"],
        adjudicator=adjudicator,
        stance=stance,
        frames=ordered_frames(frames, codebook.frame_labels),
        reason=reason.strip(),
        rationales=rationales or [],
        timestamp=now(),
    ).model_dump()
    if rationales:
        check_spans(paragraph_id, rationales, paragraph["text"], codebook)
    try:
        # Read the file as ``corpus`` does: a bad line appended to would block gold at the next rebuild.
        latest_adjudications(codebook, paragraphs, adjudications)
    except UserError as exc:
        raise UserError(f"{exc}; nothing was recorded: fix that line, then adjudicate again") from None
    append_jsonl(adjudications, record)
    return record


class _Quit(Exception):
    """End of the interactive session (``q`` or end of input)."""


def adjudicate_interactive(
    codebook: Codebook,
    paragraphs: dict[str, dict[str, Any]],
    adjudicator: str,
    read: Callable[[str], str] = input,
    write: Callable[[str], Any] = print,
    annotations_dir: Path = paths.ANNOTATIONS,
    adjudications: Path = paths.ADJUDICATIONS,
) -> int:
    """Walk the pending disagreements and record a decision for each; return how many were recorded.

    Each decision is written as soon as it is made, so quitting loses nothing.
    """
    check_annotator_name(adjudicator)
    report = compute_agreement(codebook, paragraphs, annotations_dir, adjudications)
    pending = pending_disagreements(report)
    if not pending:
        write("no pending disagreements; nothing to adjudicate")
        return 0

    def ask(prompt: str) -> str:
        try:
            return read(prompt)
        except EOFError:
            raise _Quit from None

    def ask_until(prompt: str, parse: Callable[[str], Any]) -> Any:
        """Ask until ``parse`` accepts the answer; ``q`` quits, a refused answer prints its one-line reason."""
        while True:
            answer = ask(prompt)
            if answer.strip() == "q":
                raise _Quit
            try:
                return parse(answer)
            except UserError as exc:
                write(str(exc))

    stance_help = ", ".join(f"{k} {n}" for k, n in stance_keys(codebook).items())
    frame_help = ", ".join(f"{k} {n}" for k, n in frame_keys(codebook).items())
    recorded = 0
    try:
        for i, d in enumerate(pending, start=1):
            names = list(d.labels)
            write("")
            write(f"[{i}/{len(pending)}] {d.paragraph_id} (doc {d.doc_id})")
            for line in wrap_paragraph(d.text):
                write(line)
            width = max(len(n) for n in names)
            for number, name in enumerate(names, start=1):
                write(f"  {number}  {name.ljust(width)}  {describe_labels(**d.labels[name])}")
            hint = (f"type 1-{len(names)} or a name ({', '.join(names)}) to take those labels, "
                    "e to enter labels, s to skip, q to quit")
            while True:
                choice = ask("choice [number/name, e, s, q]: ").strip()
                if choice in ("q", "s", "e"):
                    break
                if choice in names:
                    break
                if choice.isdigit() and 1 <= int(choice) <= len(names):
                    choice = names[int(choice) - 1]
                    break
                write(hint)
            if choice == "q":
                raise _Quit
            if choice == "s":
                write(f"skipped {d.paragraph_id}")
                continue
            if choice == "e":
                stance = ask_until(f"stance ({stance_help}; q to quit): ",
                                   lambda answer: parse_stance(codebook, answer, d.paragraph_id))
                frames = ask_until(f"frames ({frame_help}; comma-separated, empty = none; q to quit): ",
                                   lambda answer: parse_frames(codebook, answer, d.paragraph_id))
            else:
                stance, frames = d.labels[choice]["stance"], list(d.labels[choice]["frames"])
            while not (reason := ask("reason: ").strip()):
                write("a reason is required: say why this decision (one line)")
            record_adjudication(codebook, paragraphs, d.paragraph_id, stance, frames, reason, adjudicator,
                                adjudications)
            recorded += 1
            write(f"recorded {d.paragraph_id}: {describe_labels(stance, frames)}")
    except _Quit:
        pass
    left = len(pending) - recorded
    write(f"{recorded} adjudication(s) recorded; {left} disagreement(s) still pending")
    return recorded
