"""The codebook: the single source of truth for stance and frame labels.

``load_codebook`` validates ``configs/codebook.yaml``; ``render_markdown``
turns it into the annotators' guide committed as ``data/CODEBOOK.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from experiments import paths
from experiments.errors import UserError
from experiments.io import read_yaml, write_text_atomic

STANCE_LABELS = ("favor", "against", "neutral", "none")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Example(_Strict):
    paragraph: str
    quote: str


class Rule(_Strict):
    id: str
    title: str
    rule: str


class StanceLabel(_Strict):
    name: str
    key: str
    definition: str
    cues: list[str]
    examples: list[Example]
    illustrations: list[str] = []


class FrameLabel(StanceLabel):
    generic_frame: str
    justification: str


class StanceSection(_Strict):
    question: str
    intervention_definition: str
    labels: list[StanceLabel]
    decision_rules: list[Rule]


class FrameSection(_Strict):
    question: str
    labels: list[FrameLabel]
    decision_rules: list[Rule]


class GenericFrame(_Strict):
    name: str
    title: str
    description: str


class GenericFrames(_Strict):
    citation: str
    labels: list[GenericFrame]


class Codebook(_Strict):
    version: str
    title: str
    unit: str
    general_rules: list[Rule]
    stance: StanceSection
    frames: FrameSection
    generic_frames: GenericFrames

    @model_validator(mode="after")
    def _consistent(self) -> "Codebook":
        names = [label.name for label in self.stance.labels]
        if tuple(names) != STANCE_LABELS:
            raise ValueError(f"stance.labels must be {', '.join(STANCE_LABELS)} in that order, got {', '.join(names)}")
        generic = {g.name for g in self.generic_frames.labels}
        for i, frame in enumerate(self.frames.labels):
            if frame.generic_frame not in generic:
                raise ValueError(
                    f"frames.labels.{i}.generic_frame: {frame.generic_frame!r} is not in generic_frames "
                    f"(choose one of {', '.join(sorted(generic))})"
                )
        for section, labels in (("stance", self.stance.labels), ("frames", self.frames.labels)):
            seen_keys: set[str] = set()
            seen_names: set[str] = set()
            for i, label in enumerate(labels):
                if label.name in seen_names:
                    raise ValueError(f"{section}.labels.{i}.name: {label.name!r} is defined twice")
                if label.key in seen_keys:
                    raise ValueError(f"{section}.labels.{i}.key: shortcut {label.key!r} is used twice")
                seen_names.add(label.name)
                seen_keys.add(label.key)
        return self

    @cached_property
    def stance_labels(self) -> list[str]:
        return [label.name for label in self.stance.labels]

    @cached_property
    def frame_labels(self) -> list[str]:
        return [label.name for label in self.frames.labels]

    @cached_property
    def generic_labels(self) -> list[str]:
        """Generic frames that at least one project frame maps to, in codebook order."""
        used = {frame.generic_frame for frame in self.frames.labels}
        return [g.name for g in self.generic_frames.labels if g.name in used]

    def to_generic(self, frames: list[str]) -> list[str]:
        """Map project frames to their Policy Frames Codebook frames.

        ``["humanitarian", "security"]`` becomes the generic frames those two
        map to, deduplicated, in codebook order.
        """
        mapping = {frame.name: frame.generic_frame for frame in self.frames.labels}
        targets = {mapping[f] for f in frames}
        return [g for g in self.generic_labels if g in targets]


@dataclass(frozen=True)
class Evidence:
    """One piece of codebook text that says what a label looks like.

    ``kind`` is ``definition``, ``cue`` or ``illustration`` (written for the
    codebook) or ``example`` (quoted from the seed ``paragraph``; a model may
    use it only when it trains on that paragraph, or it would see a test
    paragraph's label).
    """

    label: str
    text: str
    kind: str
    paragraph: str | None = None


def label_evidence(codebook: Codebook, labels: list[str]) -> list[Evidence]:
    """Definitions, cues, illustrations and quoted examples for each of ``labels``, in label order.

    A generic frame (``frame_level: generic``) gets its own description plus
    the evidence of every project frame mapped to it.
    """
    project = {label.name: label for label in [*codebook.stance.labels, *codebook.frames.labels]}
    generic = {g.name: g for g in codebook.generic_frames.labels}
    # A label set is generic when it uses a generic-only frame name ("economic" exists at both levels).
    is_generic = bool(set(labels) - set(project))
    out: list[Evidence] = []
    for name in labels:
        if is_generic and name in generic:
            g = generic[name]
            out.append(Evidence(name, f"{g.title}: {g.description}", "definition"))
            sources = [f for f in codebook.frames.labels if f.generic_frame == name]
        elif name in project:
            sources = [project[name]]
        else:
            raise UserError(f"the codebook defines no label {name!r}; labels come from configs/codebook.yaml")
        for label in sources:
            out.append(Evidence(name, " ".join(label.definition.split()), "definition"))
            out += [Evidence(name, cue, "cue") for cue in label.cues]
            out += [Evidence(name, " ".join(text.split()), "illustration") for text in label.illustrations]
            out += [Evidence(name, ex.quote, "example", ex.paragraph) for ex in label.examples]
    return out


def load_codebook(path: Path = paths.CODEBOOK) -> Codebook:
    """Load and validate the codebook; a problem is a ``UserError`` naming the key path."""
    raw = read_yaml(path, "codebook", "the codebook lives in configs/codebook.yaml")
    try:
        return Codebook.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key; remove it or check its spelling"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    return f"{where}: {message}" if where else message


def render_markdown(codebook: Codebook) -> str:
    """The codebook as a Markdown guide for annotators."""
    out: list[str] = [
        f"# {codebook.title}",
        "",
        f"Codebook version **{codebook.version}**. Generated from `configs/codebook.yaml` by "
        "`python -m experiments codebook`; edit the YAML, not this file.",
        "",
        "## Unit of annotation",
        "",
        codebook.unit.strip(),
        "",
        "## General rules",
        "",
    ]
    out += _rules(codebook.general_rules)
    stance = codebook.stance
    out += ["## Stance toward foreign intervention", "", f"**Question.** {stance.question.strip()}", ""]
    out += [f"**Foreign intervention.** {stance.intervention_definition.strip()}", ""]
    out += ["One label per paragraph.", "", "| key | label | definition |", "|---|---|---|"]
    out += [f"| `{l.key}` | **{l.name}** | {_cell(l.definition)} |" for l in stance.labels]
    out.append("")
    for label in stance.labels:
        out += _label_section(label)
    out += ["### Decision rules for stance", ""]
    out += _rules(stance.decision_rules)
    frames = codebook.frames
    out += ["## Framing", "", f"**Question.** {frames.question.strip()}", ""]
    out += ["Zero or more labels per paragraph.", ""]
    out += ["| key | frame | definition | generic frame (Boydstun et al. 2014) |", "|---|---|---|---|"]
    titles = {g.name: g.title for g in codebook.generic_frames.labels}
    out += [
        f"| `{f.key}` | **{f.name}** | {_cell(f.definition)} | {titles[f.generic_frame]} |" for f in frames.labels
    ]
    out.append("")
    for frame in frames.labels:
        out += _label_section(frame)
        out += [f"*Generic frame:* {titles[frame.generic_frame]}. {frame.justification.strip()}", ""]
    out += ["### Decision rules for frames", ""]
    out += _rules(frames.decision_rules)
    out += ["## The generic Policy Frames Codebook frames", "", codebook.generic_frames.citation.strip(), ""]
    out += ["| frame | what it covers |", "|---|---|"]
    out += [f"| {g.title} | {_cell(g.description)} |" for g in codebook.generic_frames.labels]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _label_section(label: StanceLabel) -> list[str]:
    lines = [f"### `{label.key}` {label.name}", "", label.definition.strip(), ""]
    lines.append("*Cues:* " + "; ".join(f"“{c}”" for c in label.cues))
    lines.append("")
    lines.append("*Examples from the seeds:*")
    lines.append("")
    lines += [f"- > {ex.quote.strip()}  \n  — `{ex.paragraph}`" for ex in label.examples]
    lines.append("")
    if label.illustrations:
        lines.append("*Illustrations (written for this codebook, not drawn from any document):*")
        lines.append("")
        lines += [f"- {text.strip()}" for text in label.illustrations]
        lines.append("")
    return lines


def _rules(rules: list[Rule]) -> list[str]:
    lines: list[str] = []
    for rule in rules:
        lines += [f"- **{rule.title}** (`{rule.id}`). {' '.join(rule.rule.split())}"]
    lines.append("")
    return lines


def write_markdown(codebook_path: Path = paths.CODEBOOK, out: Path = paths.CODEBOOK_MD) -> Path:
    write_text_atomic(out, render_markdown(load_codebook(codebook_path)))
    return out
