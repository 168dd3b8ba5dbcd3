"""Inter-annotator agreement: the statistics and the report.

``compute_agreement`` compares the annotators' standing labels (see
``annotations.latest_labels``): Cohen's kappa per annotator pair, for stance and
for each frame as present/absent, Krippendorff's alpha (nominal) across all
annotators, the stance confusion matrix per pair, and the list of paragraphs
on which annotators disagree. ``format_agreement`` and ``report_json`` render
that report for a terminal or as JSON.

Anchoring: the annotation app can hide the model's suggestion on a share of
paragraphs (blind items; ``annotate --suggest RUN_DIR --blind 0.2``). Each
record then says whether the suggestion was shown (``suggested``) or hidden
(``blind``); a record without a suggestion is in neither condition. The report
compares every annotator's standing labels with what the model said, separately
for suggested and blind items (``Anchoring``): the share of equal stances with
a 95% Wilson interval, the share of equal frame sets and Cohen's kappa on
stance. Suggested minus blind stance agreement, with Newcombe's interval, is
the anchoring estimate: how much more often annotators side with the model when
they see it. Each pair's agreement is also split by what the two annotators saw
(both blind, both suggested, mixed), to show whether shared suggestions inflate
inter-annotator agreement.

Settling a disagreement is ``adjudication``'s job; the report shows each
disagreement's adjudication, if any.

A statistic that is undefined (kappa when both annotators used one and the
same label, fewer than two paragraphs in common, alpha without any variation)
is ``None`` and prints as ``n/a``.
"""

from __future__ import annotations

import itertools
import math
import textwrap
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import krippendorff
import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from experiments import paths
from experiments.annotations import Annotation, latest_adjudications, latest_labels
from experiments.codebook import Codebook

START_HINT = "agreement needs two — start the app with --annotator NAME"
BLIND_HINT = "python -m experiments annotate --suggest RUN_DIR --blind 0.2"
SUGGESTED, BLIND = "suggested", "blind"
# What the two annotators of a pair saw on a paragraph both labelled with a model suggestion recorded.
PAIR_CONDITIONS = {"both_blind": "both blind", "both_suggested": "both suggested", "mixed": "mixed"}
WRAP = 100


# --------------------------------------------------------------------------- report


@dataclass
class ConditionAgreement:
    """Stance agreement of a pair on the paragraphs where both saw the same kind of item (see ``PAIR_CONDITIONS``)."""

    n: int
    stance_agreement: float | None  # share of the n paragraphs with the same stance, 0..1
    stance_kappa: float | None


@dataclass
class PairAgreement:
    """Agreement of annotator ``a`` with annotator ``b`` on the paragraphs both labelled."""

    a: str
    b: str
    n: int
    stance_kappa: float | None
    stance_agreement: float | None  # share of the n paragraphs with the same stance, 0..1
    frame_kappa: dict[str, float | None]
    confusion: list[list[int]]  # rows: a's stance, columns: b's stance, in codebook order
    # The same paragraphs split by what the two saw: keys of PAIR_CONDITIONS. Paragraphs where
    # either record has no model suggestion are in none of them.
    by_condition: dict[str, ConditionAgreement] = field(default_factory=dict)


@dataclass
class ModelAgreement:
    """One annotator's standing labels against the model's suggestion, in one condition (suggested or blind)."""

    n: int  # standing labels in this condition whose suggestion records a stance
    stance_matches: int
    stance_agreement: float | None  # stance_matches / n
    stance_ci: list[float] | None  # 95% Wilson score interval of stance_agreement
    frames_agreement: float | None  # share with exactly the model's frame set
    stance_kappa: float | None  # Cohen's kappa, annotator vs model, on stance


@dataclass
class Anchoring:
    """Agreement with the model when its suggestion was shown vs hidden, for one annotator."""

    annotator: str
    suggested: ModelAgreement
    blind: ModelAgreement
    difference: float | None  # suggested minus blind stance agreement: the anchoring estimate
    difference_ci: list[float] | None  # 95% Newcombe hybrid score interval
    summary: str  # one plain-language line


@dataclass
class Alpha:
    """Krippendorff's alpha (nominal) over the paragraphs labelled by two or more annotators."""

    n: int
    stance: float | None
    frames: dict[str, float | None]


@dataclass
class Disagreement:
    """A paragraph on which at least two annotators' standing labels differ."""

    paragraph_id: str
    doc_id: str
    text: str
    labels: dict[str, dict[str, Any]]  # annotator -> {"stance": ..., "frames": [...]}
    adjudication: dict[str, Any] | None = None


@dataclass
class AgreementReport:
    stance_labels: list[str]
    frame_labels: list[str]
    annotators: list[str]
    counts: dict[str, int]  # standing labels per annotator
    labelled: int  # paragraphs with at least one standing label
    pairs: list[PairAgreement]
    alpha: Alpha
    disagreements: list[Disagreement]
    stale: list[str] = field(default_factory=list)
    # Per annotator: standing labels made with a model suggestion on screen, and
    # how many of those kept the suggestion unchanged (a check on anchoring).
    suggested: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    # Per annotator with at least one model suggestion recorded: agreement with the model, suggested vs blind.
    anchoring: list[Anchoring] = field(default_factory=list)

    @property
    def message(self) -> str | None:
        """Why there is no agreement to compute, or ``None`` when there are two or more annotators."""
        if not self.annotators:
            return f"no annotator has labels yet; {START_HINT}"
        if len(self.annotators) == 1:
            return f"only one annotator ({self.annotators[0]}) has labels; {START_HINT}"
        return None


def _frame_set(record: Annotation) -> frozenset[str]:
    return frozenset(record.frames)


def ordered_frames(frames, codebook_frames: list[str]) -> list[str]:
    """``frames`` in codebook order, each once.

    >>> ordered_frames(["security", "humanitarian", "security"], ["humanitarian", "security", "gender"])
    ['humanitarian', 'security']
    """
    chosen = set(frames)
    return [f for f in codebook_frames if f in chosen]


def kappa(a: list, b: list) -> float | None:
    """Cohen's kappa, or ``None`` when it is undefined (fewer than 2 items, or one shared label only).

    >>> kappa(["x", "x", "y"], ["x", "y", "y"])
    0.4
    >>> kappa(["x", "x"], ["x", "x"]) is None
    True
    """
    if len(a) < 2 or len(set(a) | set(b)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(cohen_kappa_score(a, b))
    return None if math.isnan(value) else round(value, 12)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> list[float] | None:
    """Wilson score interval for a proportion ``successes / n``; ``None`` when ``n`` is 0.

    Wilson (1927), JASA 22:209-212; method 3 in Newcombe (1998), Statistics in
    Medicine 17:857-872, whose example 81/263 gives 0.2553 to 0.3662. Computed by
    ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``.

    >>> [round(x, 4) for x in wilson_interval(81, 263)]
    [0.2553, 0.3662]
    >>> wilson_interval(0, 0) is None
    True
    """
    if n == 0:
        return None
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]


def newcombe_interval(x1: int, n1: int, x2: int, n2: int, confidence: float = 0.95) -> list[float] | None:
    """Interval for the difference of two independent proportions ``x1/n1 - x2/n2``; ``None`` if either n is 0.

    Newcombe's hybrid score interval, method 10 of Newcombe (1998), "Interval
    estimation for the difference between independent proportions: comparison of
    eleven methods", Statistics in Medicine 17:873-890. With ``d = p1 - p2`` and
    Wilson intervals ``[l1, u1]``, ``[l2, u2]`` of each proportion::

        lower = d - sqrt((p1 - l1)**2 + (u2 - p2)**2)
        upper = d + sqrt((u1 - p1)**2 + (p2 - l2)**2)

    The paper's example (a), 56/70 - 48/80, gives 0.0524 to 0.3339:

    >>> [round(x, 4) for x in newcombe_interval(56, 70, 48, 80)]
    [0.0524, 0.3339]
    """
    first, second = wilson_interval(x1, n1, confidence), wilson_interval(x2, n2, confidence)
    if first is None or second is None:
        return None
    (l1, u1), (l2, u2) = first, second
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    return [d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)]


def condition(record: Annotation) -> str | None:
    """``"blind"`` (suggestion recorded but hidden), ``"suggested"`` (shown) or ``None`` (no model suggestion)."""
    if record.suggestion is None:
        return None
    return BLIND if record.blind else SUGGESTED


def _model_agreement(records: list[Annotation]) -> ModelAgreement:
    """Compare standing labels with their recorded suggestions; a suggestion without a stance is left out."""
    records = [r for r in records if (r.suggestion or {}).get("stance") is not None]
    mine = [r.stance for r in records]
    model = [r.suggestion["stance"] for r in records]
    n = len(records)
    matches = sum(x == y for x, y in zip(mine, model))
    frames = sum(set(r.frames) == set(r.suggestion.get("frames") or []) for r in records)
    return ModelAgreement(
        n=n,
        stance_matches=matches,
        stance_agreement=matches / n if n else None,
        stance_ci=wilson_interval(matches, n),
        frames_agreement=frames / n if n else None,
        stance_kappa=kappa(mine, model),
    )


def _points(value: float) -> str:
    return f"{100 * value + 0.0:.1f}"


def _anchoring_summary(name: str, shown: ModelAgreement, hidden: ModelAgreement,
                       difference: float | None, ci: list[float] | None) -> str:
    counts = f"(n={shown.n} suggested, {hidden.n} blind)"
    if not hidden.n:
        return (f"{name} has no blind items {counts}, so anchoring cannot be estimated; hide the suggestion "
                f"on a share of paragraphs with `{BLIND_HINT}`")
    if not shown.n:
        return f"{name} has no items with the suggestion shown {counts}; the difference is n/a"
    assert difference is not None and ci is not None
    if round(100 * difference, 1) == 0:
        how = "equally often whether or not they see its suggestion"
    else:
        how = (f"{_points(abs(difference))} percentage points {'more' if difference > 0 else 'less'} often "
               "when they see its suggestion")
    verdict = "excludes 0" if ci[0] > 0 or ci[1] < 0 else "includes 0, so no clear sign of anchoring"
    return (f"{name} agrees with the model's stance {how} {counts}; the difference's 95% CI is "
            f"[{_points(ci[0])}, {_points(ci[1])}] points, which {verdict}")


def _anchoring(name: str, records: list[Annotation]) -> Anchoring:
    shown = _model_agreement([r for r in records if condition(r) == SUGGESTED])
    hidden = _model_agreement([r for r in records if condition(r) == BLIND])
    if shown.n and hidden.n:
        difference = shown.stance_agreement - hidden.stance_agreement
        ci = newcombe_interval(shown.stance_matches, shown.n, hidden.stance_matches, hidden.n)
    else:
        difference, ci = None, None
    return Anchoring(name, shown, hidden, difference, ci, _anchoring_summary(name, shown, hidden, difference, ci))


def _pair_condition(a: Annotation, b: Annotation) -> str | None:
    ca, cb = condition(a), condition(b)
    if ca is None or cb is None:
        return None
    if ca == cb:
        return f"both_{ca}"
    return "mixed"


def alpha_nominal(rows: list[list[float]]) -> float | None:
    """Krippendorff's alpha (nominal); rows are annotators, ``nan`` marks a missing value.

    ``None`` when no paragraph has two values or all values are the same.

    >>> alpha_nominal([[0, 1, 1], [0, 1, 0]])  # 1 - 5 * 2 / (36 - 18) = 4/9
    0.444444444444
    >>> alpha_nominal([[1, 1], [1, float("nan")]]) is None
    True
    """
    data = np.asarray(rows, dtype=float)
    if data.size == 0:
        return None
    pairable = data[:, (~np.isnan(data)).sum(axis=0) >= 2]
    values = pairable[~np.isnan(pairable)]
    if pairable.shape[1] == 0 or len(np.unique(values)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = float(krippendorff.alpha(reliability_data=pairable, level_of_measurement="nominal"))
    return None if math.isnan(value) else round(value, 12)


def compute_agreement(
    codebook: Codebook,
    paragraphs: dict[str, dict[str, Any]],
    annotations_dir: Path = paths.ANNOTATIONS,
    adjudications: Path = paths.ADJUDICATIONS,
) -> AgreementReport:
    """Agreement between annotators' standing labels, and the paragraphs they disagree on."""
    stances, frames = codebook.stance_labels, codebook.frame_labels
    stale: list[str] = []
    latest = latest_labels(codebook, paragraphs, annotations_dir, stale)
    # Paragraph order follows paragraphs.jsonl, not the order of annotation files.
    latest = {pid: latest[pid] for pid in paragraphs if pid in latest}
    counts: dict[str, int] = {}
    for by in latest.values():
        for name in by:
            counts[name] = counts.get(name, 0) + 1
    annotators = sorted(counts)
    counts = {name: counts[name] for name in annotators}
    suggested = {name: 0 for name in annotators}
    accepted = {name: 0 for name in annotators}
    for by in latest.values():
        for name, record in by.items():
            if condition(record) == SUGGESTED:
                suggested[name] += 1
                accepted[name] += bool(record.accepted_suggestion)
    anchoring = []
    for name in annotators:
        records = [by[name] for by in latest.values() if name in by]
        if any(condition(r) is not None for r in records):
            anchoring.append(_anchoring(name, records))

    pairs = []
    for a, b in itertools.combinations(annotators, 2):
        common = [by for by in latest.values() if a in by and b in by]
        sa = [by[a].stance for by in common]
        sb = [by[b].stance for by in common]
        if common:
            matrix = confusion_matrix(sa, sb, labels=stances).tolist()
            share = sum(x == y for x, y in zip(sa, sb)) / len(common)
        else:
            matrix, share = [[0] * len(stances) for _ in stances], None
        frame_kappa = {
            f: kappa([int(f in by[a].frames) for by in common], [int(f in by[b].frames) for by in common])
            for f in frames
        }
        by_condition = {}
        for key in PAIR_CONDITIONS:
            xs = [(by[a].stance, by[b].stance) for by in common if _pair_condition(by[a], by[b]) == key]
            by_condition[key] = ConditionAgreement(
                n=len(xs),
                stance_agreement=sum(x == y for x, y in xs) / len(xs) if xs else None,
                stance_kappa=kappa([x for x, _ in xs], [y for _, y in xs]),
            )
        pairs.append(PairAgreement(a, b, len(common), kappa(sa, sb), share, frame_kappa, matrix, by_condition))

    shared = [by for by in latest.values() if len(by) >= 2]
    index = {s: i for i, s in enumerate(stances)}

    def rows(value: Callable[[Annotation], float]) -> list[list[float]]:
        return [[value(by[name]) if name in by else np.nan for by in shared] for name in annotators]

    if len(annotators) >= 2 and shared:
        alpha = Alpha(
            n=len(shared),
            stance=alpha_nominal(rows(lambda r: index[r.stance])),
            frames={f: alpha_nominal(rows(lambda r, f=f: float(f in r.frames))) for f in frames},
        )
    else:
        alpha = Alpha(n=0, stance=None, frames=dict.fromkeys(frames))

    decided = latest_adjudications(codebook, paragraphs, adjudications)
    disagreements = []
    for pid, by in latest.items():
        if len({(r.stance, _frame_set(r)) for r in by.values()}) < 2:
            continue
        paragraph = paragraphs[pid]
        adjudication = decided.get(pid)
        disagreements.append(
            Disagreement(
                paragraph_id=pid,
                doc_id=paragraph["doc_id"],
                text=paragraph["text"],
                labels={
                    name: {"stance": by[name].stance, "frames": ordered_frames(by[name].frames, frames)}
                    for name in sorted(by)
                },
                adjudication=adjudication.model_dump() if adjudication else None,
            )
        )
    return AgreementReport(
        stance_labels=list(stances),
        frame_labels=list(frames),
        annotators=annotators,
        counts=counts,
        labelled=len(latest),
        pairs=pairs,
        suggested=suggested,
        accepted=accepted,
        anchoring=anchoring,
        alpha=alpha,
        disagreements=disagreements,
        stale=stale,
    )


def pending_disagreements(report: AgreementReport) -> list[Disagreement]:
    """The disagreements that have no adjudication yet, in paragraph order."""
    return [d for d in report.disagreements if d.adjudication is None]


def report_json(report: AgreementReport) -> dict[str, Any]:
    """The report as plain JSON-serialisable data (``None`` stays ``null``)."""
    out = asdict(report)
    out["message"] = report.message
    out["pending"] = [d.paragraph_id for d in pending_disagreements(report)]
    for pair in out["pairs"]:
        pair["confusion"] = {"rows": pair["a"], "columns": pair["b"], "labels": report.stance_labels,
                             "matrix": pair["confusion"]}
    return out


# --------------------------------------------------------------------------- text report


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value + 0.0:.{digits}f}"  # + 0.0: no "-0.000"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]], indent: str = "  ", left: int = 1) -> list[str]:
    """Left-align the first ``left`` column(s), right-align the others."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return (indent + "  ".join(cells)).rstrip()

    return [fmt(header), indent + "-" * (sum(widths) + 2 * (len(widths) - 1)), *map(fmt, rows)]


def describe_labels(stance: str, frames: list[str]) -> str:
    """``favor | humanitarian, security``; ``(no frames)`` when there are none.

    >>> describe_labels("none", [])
    'none | (no frames)'
    """
    return f"{stance} | {', '.join(frames) if frames else '(no frames)'}"


def wrap_paragraph(text: str, indent: str = "    ") -> list[str]:
    """A paragraph's text as indented lines of at most ``WRAP`` characters, for the report and the prompts."""
    return textwrap.wrap(" ".join(text.split()), width=WRAP, initial_indent=indent, subsequent_indent=indent) or [indent]


def _interval(ci: list[float] | None) -> str:
    """``[51.0, 100.0]`` in percent, or ``n/a``."""
    return "n/a" if ci is None else f"[{_points(ci[0])}, {_points(ci[1])}]"


def _wrap_keeping_code(text: str) -> list[str]:
    """Wrap with a hanging indent, never breaking inside a `command`, so it can be copied whole.

    >>> _wrap_keeping_code("run " + "word " * 18 + "`annotate --blind 0.2` now")[-1]
    '    `annotate --blind 0.2` now'
    """
    keep = "\N{NO-BREAK SPACE}"  # not a place textwrap breaks at
    parts = text.split("`")
    text = "`".join(part.replace(" ", keep) if i % 2 else part for i, part in enumerate(parts))
    return [line.replace(keep, " ") for line in
            textwrap.wrap(text, width=WRAP, initial_indent="  ", subsequent_indent="    ", break_long_words=False)]


def _model_lines(report: AgreementReport) -> list[str]:
    """Agreement with the model, suggested vs blind, per annotator, and the anchoring estimate."""
    if not report.anchoring:
        return ["", "agreement with the model: n/a, no standing label records a model suggestion",
                f"  to measure anchoring, start the app with `{BLIND_HINT}`"]
    out = ["", "agreement with the model: suggested = suggestion shown, blind = hidden (95% CI in %)"]
    rows = []
    for item in report.anchoring:
        for label, m in ((SUGGESTED, item.suggested), (BLIND, item.blind)):
            rows.append([item.annotator, label, str(m.n), _pct(m.stance_agreement), _interval(m.stance_ci),
                         _pct(m.frames_agreement), _num(m.stance_kappa)])
    out += _table(["annotator", "condition", "n", "stance %", "95% CI", "frames %", "stance κ"], rows, left=2)
    for item in report.anchoring:
        out += _wrap_keeping_code(item.summary)
    return out


def _condition_lines(compared: list[PairAgreement]) -> list[str]:
    """Each pair's stance agreement split by what the two annotators saw."""
    if not any(c.n for p in compared for c in p.by_condition.values()):
        return ["", "stance agreement by what the pair saw: n/a, no paragraph in common has a model suggestion "
                    "recorded for both"]
    out = ["", "stance agreement by what the pair saw (shared suggestions can inflate agreement)"]
    rows = [
        [f"{p.a} / {p.b}", PAIR_CONDITIONS[key], str(c.n), _num(c.stance_kappa), _pct(c.stance_agreement)]
        for p in compared for key, c in p.by_condition.items()
    ]
    return out + _table(["pair", "condition", "n", "stance κ", "stance %"], rows, left=2)


def format_agreement(report: AgreementReport, codebook: Codebook | None = None) -> str:
    """The report as aligned plain text for a terminal."""
    stances = report.stance_labels if codebook is None else codebook.stance_labels
    frames = report.frame_labels if codebook is None else codebook.frame_labels
    out: list[str] = []
    shared = report.alpha.n
    out.append(
        f"{len(report.annotators)} annotator(s), {report.labelled} paragraph(s) labelled, "
        f"{shared} labelled by two or more"
    )
    if report.annotators:
        out += _table(
            ["annotator", "labels", "with suggestion", "kept suggestion"],
            [[a, str(report.counts[a]), str(report.suggested.get(a, 0)),
              _pct(report.accepted[a] / report.suggested[a]) if report.suggested.get(a) else "n/a"]
             for a in report.annotators],
        )
    if report.stale:
        out.append(f"{len(report.stale)} stale annotation(s) ignored (the paragraph text changed since)")
    if report.annotators:
        out += _model_lines(report)
    if report.message:
        out.append(report.message)
        return "\n".join(out)

    compared = [p for p in report.pairs if p.n]
    apart = [f"{p.a} / {p.b}" for p in report.pairs if not p.n]
    out += ["", "Cohen's kappa per pair (stance; each frame present/absent)"]
    header = ["pair", "n", "stance κ", "stance %", *frames]
    rows = [
        [f"{p.a} / {p.b}", str(p.n), _num(p.stance_kappa), _pct(p.stance_agreement),
         *(_num(p.frame_kappa[f]) for f in frames)]
        for p in compared
    ]
    out += _table(header, rows)
    if apart:
        out.append(f"  no paragraph in common: {', '.join(apart)}")
    out += _condition_lines(compared)

    out += ["", f"Krippendorff's alpha (nominal), all annotators, n = {report.alpha.n} paragraph(s)"]
    out += _table(
        ["label", "α"],
        [["stance", _num(report.alpha.stance)], *([f, _num(report.alpha.frames[f])] for f in frames)],
    )

    for p in compared:
        out += ["", f"stance confusion, n = {p.n}: rows {p.a}, columns {p.b}"]
        out += _table([f"{p.a} \\ {p.b}", *stances], [[s, *map(str, row)] for s, row in zip(stances, p.confusion)])

    pending = pending_disagreements(report)
    done = len(report.disagreements) - len(pending)
    out += ["", f"disagreements: {len(report.disagreements)} ({done} adjudicated, {len(pending)} pending)"]
    for d in report.disagreements:
        adj = d.adjudication
        status = f"adjudicated by {adj['adjudicator']}" if adj else "pending"
        out += ["", f"{d.paragraph_id} (doc {d.doc_id}) [{status}]", *wrap_paragraph(d.text)]
        width = max(len(name) for name in d.labels)
        out += [f"  {name.ljust(width)}  {describe_labels(l['stance'], l['frames'])}" for name, l in d.labels.items()]
        if adj:
            out.append(f"  {'=>'.ljust(width)}  {describe_labels(adj['stance'], ordered_frames(adj['frames'], frames))}"
                       f" — {' '.join(adj['reason'].split())}")
    return "\n".join(out)
