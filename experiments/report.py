"""The report page: one or more finished runs side by side, as a self-contained HTML page and its
Markdown twin.

``write_report(run_dirs)`` lays out what the run directories saved (scores,
paired tests, config and data differences, learning curves, error analysis,
n-grams, every plot) as one list of blocks, which ``render`` turns into HTML
(plots embedded, compressed, inline CSS, nothing fetched) and Markdown, so
the two cannot drift apart; every path they show or link is relative to the
report's folder. No number is typed by hand and nothing is retrained: the
numbers come from ``summary`` (formats) and ``analysis`` (mistakes,
per-document scores, config differences).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from itertools import groupby
from pathlib import Path
from typing import Any
from urllib.parse import quote

from experiments.analysis import (
    CHANCE_BASELINES, differences, frame_mistakes, labels_by_document, most_confident_mistakes, per_document_scores,
    probability,
)
from experiments.io import write_text_atomic
from experiments.plots import METRIC_NAMES, describe_protocol, metric_name, plot_caption, plot_files, plot_rank
from experiments.render import (
    Bullets, Compare, Contents, Details, Figures, Heading, Para, Span, Table, anchor, code, muted, num, relative,
    render_html, render_markdown, strong, walk,
)
from experiments.rundir import Run, open_runs
from experiments.selection import describe as describe_selection
from experiments.summary import (
    SIGNIFICANCE, accuracy_at, calibrated_cell, f2, fmt_p, fraction_header, paired_sentence,
)

TOP_NGRAMS = 8
SECOND_METRIC = {"stance": "accuracy", "frames": "micro_f1"}
SECOND_WHAT = {"stance": "accuracy", "frames": "micro-F1"}


def report_paths(first_run: Path, out: Path | None = None) -> tuple[Path, Path]:
    """Where the HTML page and its Markdown twin go.

    >>> report_paths(Path("results/default/r1"))
    (PosixPath('results/default/r1/report.html'), PosixPath('results/default/r1/report.md'))
    >>> report_paths(Path("results/default/r1"), Path("reports/kfold_vs_lodo.html"))
    (PosixPath('reports/kfold_vs_lodo.html'), PosixPath('reports/kfold_vs_lodo.md'))
    >>> report_paths(Path("r1"), Path("reports/compare"))
    (PosixPath('reports/compare.html'), PosixPath('reports/compare.md'))
    """
    if out is None:
        html_path = Path(first_run) / "report.html"
    else:
        out = Path(out)
        if out.is_dir():
            html_path = out / "report.html"
        elif out.suffix.lower() in (".html", ".htm"):
            html_path = out
        elif out.suffix.lower() == ".md":
            html_path = out.with_suffix(".html")
        else:
            html_path = out.with_name(out.name + ".html")
    return html_path, html_path.with_suffix(".md")


def report_blocks(runs: list[Run], where: Path | None = None) -> list:
    """The report's content, rendered to HTML and to Markdown alike; ``where`` is the report's folder
    (the first run directory by default): run directories are linked relative to it."""
    where = Path(where) if where is not None else runs[0].dir
    blocks: list = []
    blocks += _header(runs, where)
    blocks += [Contents()]
    blocks += _how_to_read(runs)
    blocks += _side_by_side(runs)
    blocks += _confidence(runs)
    blocks += _paired(runs)
    blocks += _configs(runs)
    blocks += _curves(runs)
    blocks += _errors(runs)
    blocks += _ngrams(runs)
    blocks += _per_label(runs)
    blocks += _plots_side_by_side(runs, _shown_plots(blocks))
    used: set[str] = set()
    for b in walk(blocks):
        if isinstance(b, Heading):
            b.anchor = anchor(b.text, used)
    return blocks


def _shown_plots(blocks: list) -> set[Path]:
    """The plot files the blocks already show, so that every plot appears (and is embedded) once."""
    shown: set[Path] = set()
    for b in walk(blocks):
        if isinstance(b, Figures):
            shown |= {p.resolve() for p, _ in b.items}
        elif isinstance(b, Compare):
            shown |= {p.resolve() for _, p in b.items}
    return shown


def _title(runs: list[Run]) -> str:
    names = [r.label for r in runs]
    return "Run report: " + (" vs ".join(names) if len(names) <= 3 else f"{len(names)} runs")


def _when(stamp: str | None) -> str:
    if not stamp:
        return "?"
    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M") + (" UTC" if t.tzinfo is not None else "")


def _commit(meta: dict) -> str:
    git = meta.get("git") or {}
    return (git.get("commit") or "unknown")[:10] + (" + uncommitted changes" if git.get("dirty") else "")


def _header(runs: list[Run], where: Path) -> list:
    blocks: list = [Heading(1, _title(runs))]
    commits = sorted({_commit(r.meta) for r in runs})
    first = min(_when(r.meta.get("started")) for r in runs)
    blocks.append(Para(
        [f"{len(runs)} run{'s' if len(runs) > 1 else ''}, started {first}"
         + (" onwards" if len(runs) > 1 else "") + ", from commit ",
         *_join([code(c) for c in commits], ", "),
         ". Every number below is read from the run directories’ saved files; nothing was retrained."],
        "lead"))
    rows = []
    for r in runs:
        b = r.protocol["bootstrap"]
        rows.append([[strong(r.label), Span("sub", r.meta["run_id"])], describe_protocol(r.protocol),
                     f"{b['confidence']:.0%} CI, {b['resamples']} {b['unit']} resamples",
                     str(r.meta["data"]["n_paragraphs"]), _when(r.meta.get("started")),
                     f"{r.meta.get('wall_seconds', 0):.1f} s", code(_commit(r.meta))])
    blocks.append(Table(["run", "protocol", "bootstrap", "paragraphs", "started", "wall time", "commit"],
                        rows, "lllrrrl"))
    links = []
    for r in runs:
        rel = relative(r.dir, where)
        here = rel == "."
        links.append([r.label, " ", Span("link", code("./" if here else rel), href="./" if here else quote(rel) + "/"),
                      " (this report’s folder)" if here else ""])
    blocks.append(Para(["Run directories (relative to this report): ", *_join(links, "; "), "."]))
    blocks += _data_warnings(runs)
    return blocks


def _join(items: list, sep: str) -> list:
    out: list = []
    for i, item in enumerate(items):
        out += [sep, item] if i else [item]
    return out


def _data_warnings(runs: list[Run]) -> list:
    out = []
    fingerprints = {r.meta["data"]["fingerprint"] for r in runs}
    if len(fingerprints) > 1:
        out.append(Para([strong("These runs used different data"), " (data fingerprints ",
                         *_join([code(f) for f in sorted(fingerprints)], ", "),
                         "). Their scores are not directly comparable: a difference between them may come from the "
                         "data, not from the protocol or the models. See ", Span("link", "Configs and data",
                                                                                 "#configs-and-data"), "."], "warning"))
    if len({_commit(r.meta) for r in runs}) > 1:
        out.append(Para("The runs come from different commits (or one has uncommitted changes): code changes "
                        "between them may explain differences.", "note"))
    return out


def _how_to_read(runs: list[Run]) -> list:
    n = max(r.meta["data"]["n_paragraphs"] for r in runs)
    boots = {(r.protocol["bootstrap"]["resamples"], r.protocol["bootstrap"]["confidence"]) for r in runs}
    resamples, confidence = sorted(boots)[0]
    level = f"{confidence:.0%}"
    min_support = {r.config.get("metrics", {}).get("min_support") for r in runs} - {None}
    support = f" ({', '.join(map(str, sorted(min_support)))} in these runs)" if min_support else ""
    items = [
        [strong("A score"), " is computed on out-of-fold predictions: every paragraph is predicted by a model "
         "that did not see it in training, and the scores of repeated runs are averaged. ",
         strong("n"), " is the number of test paragraphs scored (each once per repeat), not the number of articles."],
        [strong("[low, high]"), f" is a {level} bootstrap confidence interval: the test paragraphs (or whole articles, "
         f"with a document bootstrap) are drawn again with replacement {resamples} times and the score is recomputed; "
         "the interval holds the middle "
         f"{level} of those scores. It says how much the score would move on another sample like this one; it does "
         "not cover a different corpus, codebook or annotator."],
        [strong("Why the intervals are wide."), f" With {n} paragraphs one paragraph is {100 / n:.1f} points of "
         "accuracy, and a rare label has only a handful of examples, so its F1 can jump on a single paragraph. "
         "Overlapping intervals do not show that two models are equal: the paired test asks that directly."],
        [strong("A paired test"), " scores two models on the same resamples and looks at their difference. "
         f"p < {SIGNIFICANCE} (", strong("bold"), f" rows) means the {level} interval of the difference excludes zero: "
         "it is unlikely to be resampling noise on this corpus. It does not say the difference is large, that it "
         f"holds on other data, or that it matters; p ≥ {SIGNIFICANCE} does not show the models are equal. With many "
         f"pairs compared, about one in twenty falls below {SIGNIFICANCE} by chance. “p < 0.001” means that not one "
         f"of {resamples} resamples went the other way: the bootstrap cannot resolve smaller p-values."],
        [strong("Not estimable"), " marks a label with fewer test examples than ", code("metrics.min_support"), support,
         ": its precision, recall and F1 would rest on one or two paragraphs, so no number is shown rather than a "
         "misleading 0 or 1. (It still enters macro-F1 where its F1 is defined.)"],
        [strong("Leave-one-document-out (LODO)"), " trains on all other articles and tests on the held-out one, so it "
         "is the honest estimate for a new article. k-fold CV puts paragraphs of the same article on both sides and "
         "rewards wording that is specific to an article; it is usually optimistic. Paragraphs of one article are not "
         "independent, so a ", strong("document-clustered bootstrap"), " resamples whole articles: its intervals are "
         "wider, because the corpus holds far fewer articles than paragraphs. With very few articles (a handful) "
         "even that interval is too narrow and the p-values too small: read them as rough."],
    ]
    return [Heading(2, "How to read this"), Bullets(items)]


def _tasks(runs: list[Run]) -> list[str]:
    seen: list[str] = []
    for r in runs:
        seen += [t for t in r.metrics["tasks"] if t not in seen]
    return seen


def _models(runs: list[Run], task: str) -> list[str]:
    seen: list[str] = []
    for r in runs:
        seen += [m for m in r.metrics["tasks"].get(task, {}).get("models", {}) if m not in seen]
    return seen


def _best(info: dict, models: list[str] | None = None) -> str | None:
    models = [m for m in (models if models is not None else info["models"]) if m in info["models"]]
    scored = [m for m in models if info["models"][m]["metrics"]["macro_f1"]["value"] is not None]
    return max(scored, key=lambda m: info["models"][m]["metrics"]["macro_f1"]["value"]) if scored else None


def _short_protocol(r: Run) -> str:
    b = r.protocol["bootstrap"]
    return f"{describe_protocol(r.protocol, short=True)}, {b['unit']} bootstrap"


def _side_by_side(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Models side by side"),
                    Para(["One column group per run; ", strong("bold"), ": the best macro-F1 of that run. "
                          "The protocol under each run name says how the score was obtained."])]
    for task in _tasks(runs):
        second = SECOND_METRIC.get(task, "accuracy")
        models = _models(runs, task)
        present = [r for r in runs if task in r.metrics["tasks"]]
        groups: list[tuple[Any, int]] = [("", 1)]
        header = ["model"]
        for r in present:
            groups.append(([strong(r.label), muted(" · " + _short_protocol(r))], 3))
            header += ["macro-F1 [95% CI]", f"{METRIC_NAMES[second]} [95% CI]", "n"]
        rows = []
        for model in models:
            row: list = [model]
            for r in present:
                info = r.metrics["tasks"][task]
                result = info["models"].get(model)
                if result is None:
                    row += ["—", "—", "—"]
                    continue
                cell = num(result["metrics"]["macro_f1"])
                row += [strong(cell) if model == _best(info) else cell, num(result["metrics"].get(second)),
                        str(result["n"])]
            rows.append(row)
        blocks += [Heading(3, task), Table(header, rows, "l" + "rrr" * len(present), groups)]
        if len(present) > 1:
            bests = []
            for r in present:
                info = r.metrics["tasks"][task]
                b = _best(info)
                if b:
                    bests.append([strong(r.label), f" ({describe_protocol(r.protocol, short=True)}): {b} ",
                                  num(info["models"][b]["metrics"]["macro_f1"])])
            blocks.append(Para(["Best macro-F1 per run: ", *_join(bests, "; "), "."]))
        for r in present:
            b = _best(r.metrics["tasks"][task])
            if b and r.base_name(b) in CHANCE_BASELINES:
                blocks.append(Para([strong(f"In {r.label}, the best {task} model is the chance baseline {b}:"),
                                    " no trained model beats guessing from the label frequencies on macro-F1 here."],
                                   "warning"))
    return blocks


def _confidence(runs: list[Run]) -> list:
    """Which model labels new text and why, and how far its confidence can be trusted on new documents."""
    with_calibration = [r for r in runs if any(i.get("calibration") for i in r.metrics["tasks"].values())]
    if not with_calibration:
        return []
    blocks: list = [Heading(2, "Model for new text, calibration and coverage"),
                    Para(["Each run picks, per task, the model with the best macro-F1 (",
                          code("selection"), " in metrics.json); only a leave-one-document-out run tests new "
                          "documents. Calibration is fitted on out-of-fold predictions; ECE and calibrated "
                          "macro-F1 are measured on each document with calibration fitted on the others. "
                          "Accuracy at x% is that of the most confident x% of paragraphs (frames: the share of "
                          "right frame decisions)."])]
    for task in _tasks(with_calibration):
        blocks.append(Heading(3, task))
        for r in with_calibration:
            info = r.metrics["tasks"].get(task)
            if not info or not info.get("calibration"):
                continue
            chosen = info.get("selection")
            if chosen:
                blocks.append(Para([strong(r.label), f": new text is labelled by {describe_selection(chosen)}."]
                                   + ([] if chosen.get("transfer") else
                                      [" This protocol does not hold out documents, so the choice is not a transfer estimate."]),
                                   "" if chosen.get("transfer") else "warning"))
            points = (0.2, 0.5, 1.0)
            rows = []
            for model, c in info["calibration"].items():
                at = accuracy_at(c)
                rows.append([strong(model) if chosen and chosen["model"] == model else model,
                             f"{c['ece_uncalibrated']:.3f}", f"{c['ece_calibrated']:.3f}",
                             calibrated_cell(c),
                             *(f2(at[x]) if x in at else "—" for x in points)])
            blocks.append(Table(["model", "ECE before", "ECE after", "calibrated macro-F1",
                                 *(f"accuracy at {int(x * 100)}%" for x in points)], rows, "l" + "r" * 6))
        plots = [(r.label, r.dir / "plots" / task / "coverage.png") for r in with_calibration
                 if (r.metrics["tasks"].get(task) or {}).get("calibration")]
        plots = [(label, plot) for label, plot in plots if plot.is_file()]
        if plots:
            blocks.append(Compare(plot_caption("coverage.png", task, _models(runs, task)), plots))
    return blocks


def _paired(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Paired tests"),
                    Para(["Every pair of models of a run, compared on the same bootstrap resamples; the better model "
                          f"comes first, so differences are gains. Rows with p < {SIGNIFICANCE} are ", strong("bold"),
                          " and marked ●."])]
    for r in runs:
        for task, info in r.metrics["tasks"].items():
            blocks.append(Heading(3, f"{r.label} · {task}"))
            pairs = info.get("paired") or []
            if not pairs:
                blocks.append(Para("No paired tests in this run (one model, or an older run directory).", "note"))
                continue
            blocks += _few_documents_note(r)
            order = sorted(pairs, key=lambda p: (p["metric"] != "macro_f1", p["metric"]))
            rows, marked = [], set()
            for i, p in enumerate(order):
                sig = p["p"] < SIGNIFICANCE
                if sig:
                    marked.add(i)
                low, high = p["ci"]
                rows.append([p["a"], p["b"], metric_name(p["metric"], r.subset(task)),
                             Span("num", (f2(p["diff"]), f"[{f2(low)}, {f2(high)}]")),
                             f"p {fmt_p(p['p'], p['resamples'])}", "●" if sig else ""])
            headline = [p for p in order if p["metric"] == "macro_f1"]
            sig = [p for p in headline if p["p"] < SIGNIFICANCE]
            rest = [p for p in headline if p["p"] >= SIGNIFICANCE]
            if sig:
                blocks.append(Para(f"In words ({len(sig)} of {len(headline)} macro-F1 comparisons significant):"))
                blocks.append(Bullets([paired_sentence(p, r.subset(task)) for p in sig]))
            if rest:
                blocks.append(Para(["No detectable macro-F1 difference (p ≥ 0.05) between ",
                                    *_join([f"{p['a']} and {p['b']}" for p in rest], "; "),
                                    ". That is not evidence that they are equal."]))
            blocks.append(Details(f"All {len(order)} comparisons, every metric ({len(marked)} with p < {SIGNIFICANCE})",
                                  [Table(["better", "worse", "metric", "difference [95% CI]", "p",
                                          f"p < {SIGNIFICANCE}"], rows, "lllrrl", marked=marked)]))
    return blocks


def _documents(r: Run) -> int:
    """How many documents the run predicted (or saved the text of)."""
    return len({p["doc_id"] for p in r.predictions}) or len(set(r.texts))


def _few_documents_note(r: Run) -> list:
    if r.protocol["bootstrap"]["unit"] != "document":
        return []
    g = _documents(r)
    if not g or g > 20:
        return []
    distinct = math.comb(2 * g - 1, g)
    return [Para([strong(f"Only {g} documents."), f" The document bootstrap can draw only {distinct} different "
                  "resamples, and bootstrap intervals over this few clusters are known to be too narrow: treat these "
                  "CIs and p-values as rough."], "note")]


def _yaml_value(v) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, ensure_ascii=False)


def _configs(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Configs and data")]
    rows = []
    for r in runs:
        d = r.meta["data"]
        rows.append([strong(r.label), code(d["source"]), code(d["fingerprint"]), str(d["n_paragraphs"]),
                     str(_documents(r) or "?"), d.get("codebook_version") or "?", str(r.meta.get("seed", "?"))])
    blocks.append(Table(["run", "data source", "fingerprint", "paragraphs", "documents", "codebook", "seed"], rows,
                        "lllrrll"))
    fingerprints = {r.meta["data"]["fingerprint"] for r in runs}
    if len(fingerprints) > 1:
        blocks.append(Para([strong("The data fingerprints differ:"), " these runs did not see the same paragraphs "
                            "and labels, so their scores are not directly comparable."], "warning"))
    elif len(runs) > 1:
        blocks.append(Para("All runs used the same data (same fingerprint)."))
    if len(runs) < 2:
        blocks.append(Para("One run: no config to compare it with."))
        return blocks
    diff = differences([r.config for r in runs])
    if not diff:
        blocks.append(Para("The resolved configs are identical."))
        return blocks
    blocks.append(Details(f"The {len(diff)} config key{'s' if len(diff) > 1 else ''} that differ between the runs "
                          "(dotted paths into config.yaml; models are matched by their name)",
                          [Table(["key", *(r.label for r in runs)],
                                 [[code(k), *(code(_yaml_value(v)) for v in vals)] for k, vals in diff],
                                 "l" + "l" * len(runs))]))
    return blocks


def _curves(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Learning curves")]
    any_curve = False
    for task in _tasks(runs):
        with_curve = [r for r in runs if r.metrics["tasks"].get(task, {}).get("learning_curve")]
        if not with_curve:
            continue
        any_curve = True
        blocks.append(Heading(3, task))
        for r in with_curve:
            info = r.metrics["tasks"][task]
            curve = info["learning_curve"]
            points = next(iter(curve.values()))
            blocks.append(Para([strong(r.label), f" ({describe_protocol(r.protocol, short=True)}): macro-F1 [95% CI] "
                                "by the share of each training part used; n = training paragraphs. Every point is "
                                f"scored on the same {points[0]['n_test']} test paragraphs, with the first repeat’s "
                                "folds only, so 100% can differ a little from the main table."]))
            rows = [[model, *(num(pt.get("macro_f1")) for pt in pts)] for model, pts in curve.items()]
            blocks.append(Table(["model", *(fraction_header(pt) for pt in points)], rows, "l" + "r" * len(points)))
        plots = [(r.label, r.dir / "plots" / task / "learning_curve.png") for r in with_curve]
        plots = [(label, plot) for label, plot in plots if plot.is_file()]
        if plots:
            blocks.append(Compare(plot_caption("learning_curve.png", task, _models(runs, task)), plots))
    if not any_curve:
        blocks.append(Para(["No run in this report has a learning curve (set ", code("protocol.learning_curve"),
                            " in the config to get one)."]))
    else:
        without = [r.label for r in runs if not any(i.get("learning_curve") for i in r.metrics["tasks"].values())]
        if without:
            blocks.append(Para(["No learning curve in ", *_join([strong(w) for w in without], ", "), " (",
                                code("protocol.learning_curve"), " was not set)."]))
    return blocks


def _labels_text(x) -> str:
    if isinstance(x, list):
        return ", ".join(x) if x else "(no frame)"
    return str(x)


def _errors(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Error analysis"),
                    Para(["Per run and task, the mistakes the best trained model was most sure of (the best by "
                          "macro-F1, leaving out the chance baselines ",
                          *_join([code(b) for b in sorted(CHANCE_BASELINES)], " and "),
                          "), from the first repeat, each paragraph once; then how each model scored on each "
                          "article, pooled over all repeats. p is the model’s predicted probability; for the "
                          "linear SVM it is a softmax of its margins, which ranks predictions but is not calibrated."])]
    for r in runs:
        for task, info in r.metrics["tasks"].items():
            blocks.append(Heading(3, f"{r.label} · {task}"))
            records = [p for p in r.predictions if p["task"] == task]
            if not records:
                blocks.append(Para("No predictions.jsonl in this run directory.", "note"))
                continue
            trained = [m for m in info["models"] if r.base_name(m) not in CHANCE_BASELINES]
            model = _best(info, trained) or _best(info)
            first = min(p["repeat"] for p in records)
            chosen = [p for p in records if p["model"] == model and p["repeat"] == first]
            blocks.append(Para([strong(model), " (macro-F1 ", num(info["models"][model]["metrics"]["macro_f1"]),
                                f"), repeat {first}."]))
            inside = _stance_mistakes(r, chosen) if task == "stance" else _frame_mistakes(r, chosen, info, model)
            per_document, notes = _per_document(r, task, records, list(info["models"]))
            what = "most confident mistakes" if task == "stance" else "most and least confident frame mistakes"
            blocks.append(Details(f"The {what} with their text, and {SECOND_WHAT[task]} per document",
                                  inside + per_document))
            blocks += notes
    return blocks


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _text_cell(r: Run, record: dict):
    text = r.texts.get(record["id"])
    return text if text is not None else muted("(text not saved in this run)")


def _stance_mistakes(r: Run, chosen: list[dict]) -> list:
    mistakes = most_confident_mistakes(chosen)
    title = Heading(4, "Most confident mistakes")
    if not mistakes:
        return [title, Para("No wrong prediction in this repeat.")]
    rows = [[str(i + 1), [code(p["id"]), Span("sub", p["doc_id"])], _text_cell(r, p), p["gold"], strong(p["pred"]),
             _pct(probability(p, p["pred"])), _pct(probability(p, p["gold"]))] for i, p in enumerate(mistakes)]
    return [title, Table(["#", "paragraph · document", "text", "gold", "predicted", "p(predicted)", "p(gold)"],
                         rows, "rltllrr", kind="errors")]


def _frame_mistakes(r: Run, chosen: list[dict], info: dict, model: str) -> list:
    fp, fn = frame_mistakes(chosen)
    rare = set((info.get("degenerate") or {}).get(model, {}))
    blocks: list = []
    for title, items, what in (("Most confident false positives", fp, "wrongly predicted"),
                               ("Least confident false negatives", fn, "missed")):
        blocks.append(Heading(4, title))
        if not items:
            blocks.append(Para("None in this repeat."))
            continue
        rows = [[str(i + 1), [code(p["id"]), Span("sub", p["doc_id"])], _text_cell(r, p),
                 [strong(f), Span("sub", "not learnt in some folds") if f in rare else ""], _pct(prob),
                 [_labels_text(p["gold"]), Span("sub", ["predicted: ", _labels_text(p["pred"])])]]
                for i, (p, f, prob) in enumerate(items)]
        blocks.append(Table(["#", "paragraph · document", "text", what, "p(frame)", "gold · predicted frames"],
                            rows, "rltlrw", kind="errors"))
    return blocks


def _per_document(r: Run, task: str, records: list[dict], models: list[str]) -> tuple[list, list]:
    """The per-document table, and the notes that must stay in view (labels concentrated in one document)."""
    scores = per_document_scores(records, task)
    docs = sorted({d for m in scores.values() for d in m})
    what = "accuracy" if task == "stance" else "micro-F1"
    rows = []
    for d in docs:
        n = next(scores[m][d][0] for m in scores if d in scores[m])
        rows.append([code(d), str(n), *(_pct(s) if (s := scores.get(m, {}).get(d, (0, None))[1]) is not None else "n/a"
                                         for m in models)])
    total = per_document_scores([{**p, "doc_id": "all"} for p in records], task)
    n_all = next(iter(total.values()))["all"][0] if total else 0
    rows.append([strong("all documents"), strong(str(n_all)),
                 *(strong(_pct(total[m]["all"][1]) if total.get(m) and total[m]["all"][1] is not None else "n/a")
                   for m in models)])
    blocks = [Heading(4, f"Per document ({what}, pooled over repeats; n = paragraphs)"),
              Table(["document", "n", *models], rows, "lr" + "r" * len(models))]
    notes: list = []
    first_model, first_repeat = records[0]["model"], min(p["repeat"] for p in records)
    skewed = labels_by_document([p for p in records if p["model"] == first_model and p["repeat"] == first_repeat])
    if skewed:
        lodo = r.protocol["name"] == "lodo"
        notes.append(Para([strong("Labels concentrated in one document:"), " ",
                           *_join([f"{label} ({k} of {n} in {doc})" for label, doc, k, n in skewed], "; "), ". ",
                           "When that document is held out, the training part has few or none of them, so no model "
                           "can learn them there." if lodo else
                           "k-fold CV can learn them from the same article’s other paragraphs; a new article will "
                           "not offer that, which is what leave-one-document-out shows."], "note"))
    return blocks, notes


def _ngrams(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Top n-grams of the linear baselines"),
                    Para(f"The {TOP_NGRAMS} word n-grams with the largest weight per label, for each linear TF-IDF "
                         "model fitted on all of the run’s data (from top_features.json). They show what a model "
                         "keys on, which is often topic or article wording rather than stance or frame.")]
    shown: dict[str, str] = {}
    any_features = False
    for r in runs:
        for task, per_model in r.top_features.items():
            any_features = True
            blocks.append(Heading(3, f"{r.label} · {task}"))
            key = json.dumps(per_model, sort_keys=True)
            if key in shown:
                blocks.append(Para(f"Same n-grams and weights as {shown[key]} (same data and model settings)."))
                continue
            shown[key] = f"{r.label} · {task}"
            info = r.metrics["tasks"].get(task, {"models": {}})
            order = sorted(per_model, key=lambda m: -((info["models"].get(m) or {}).get("metrics", {})
                                                       .get("macro_f1", {}).get("value") or 0))
            inside: list = []
            blocks.append(Details(f"Top n-grams per label of {', '.join(order)}", inside))
            for model in order:
                macro = (info["models"].get(model) or {}).get("metrics", {}).get("macro_f1")
                inside.append(Para([strong(model), *([" (macro-F1 ", num(macro), ")"] if macro else [])]))
                rows, tied_labels = [], 0
                labels = [l for l in info.get("labels", []) if l in per_model[model]]
                labels += [l for l in per_model[model] if l not in labels]
                for label in labels:
                    top = per_model[model][label][:TOP_NGRAMS]
                    tied = len(top) > 1 and len({w for _, w in top}) == 1
                    tied_labels += tied
                    cells = _join([[g, muted(f" {w:.2f}")] for g, w in top], " · ")
                    rows.append([strong(label), [*cells, muted(" (all tied)") if tied else ""]])
                missing = [l for l in info.get("labels", []) if l not in per_model[model]]
                if missing:
                    rows += [[strong(l), muted("(no classifier: too few training examples)")] for l in missing]
                inside.append(Table(["label", "n-grams (weight)"], rows, "lt"))
                if tied_labels:
                    inside.append(Para(f"{tied_labels} label(s) have all their top n-grams at the same weight "
                                       "(naive Bayes gives one weight to every n-gram seen in only one class): their "
                                       "order is alphabetical, not a ranking.", "note"))
    if not any_features:
        blocks.append(Para("No run in this report saved top_features.json (no linear TF-IDF model)."))
    return blocks


def _per_label(runs: list[Run]) -> list:
    blocks: list = [Heading(2, "Per-label F1"),
                    Para("F1 [95% CI] per stance label or frame; n in the header is the number of test examples. "
                         "“not estimable”: too few examples for a number to mean anything. The plots of every run "
                         "are under Plots side by side.")]
    for r in runs:
        for task, info in r.metrics["tasks"].items():
            blocks.append(Heading(3, f"{r.label} · {task}"))
            labels = info["labels"]
            first = next(iter(info["models"].values()))["per_label"]
            header = ["model", *(f"{l} (n={first[l]['support']})" for l in labels)]
            rows = []
            for model, result in info["models"].items():
                rows.append([model, *(num(e["f1"]) if e["estimable"] else muted("not estimable")
                                      for e in map(result["per_label"].get, labels))])
            unit = "label" if task == "stance" else "frame"
            best = _best(info)
            summary = [f"F1 per {unit} of {len(rows)} models and {len(labels)} {unit}s"]
            if best:
                summary.append(f" (best macro-F1: {best})")
            blocks.append(Details(summary, [Table(header, rows, "l" + "r" * len(labels), kind="compact")]))
            if info.get("degenerate"):
                items = [f"{m}: " + ", ".join(f"{f} in {n} of {info['folds']} folds" for f, n in frames.items())
                         for m, frames in info["degenerate"].items()]
                if len({json.dumps(v, sort_keys=True) for v in info["degenerate"].values()}) == 1:
                    frames = next(iter(info["degenerate"].values()))
                    items = ["every model: " + ", ".join(f"{f} in {n} of {info['folds']} folds" for f, n in frames.items())]
                blocks += [Para("Too rare to learn in some training folds (predicted at the training prevalence there):"),
                           Bullets(items)]
    return blocks


PER_MODEL_PLOTS = {"confusion_": "Confusion matrices", "calibration_": "Reliability diagrams"}


def _per_model_prefix(name: str) -> str | None:
    """``confusion_`` for a per-model confusion matrix (and so on); None for a plot of all models."""
    return next((prefix for prefix in PER_MODEL_PLOTS if name.startswith(prefix)), None)


def _plots_side_by_side(runs: list[Run], shown: set[Path]) -> list:
    """Every plot not shown yet, the runs' versions of one plot side by side, in a fixed order; the
    per-model plots (a confusion matrix per model) folded away."""
    elsewhere = []  # plots the report shows with their tables
    if any(p.name == "coverage.png" for p in shown):
        elsewhere.append(["coverage plots are under ", Span("link", "Model for new text, calibration and coverage",
                                                            "#model-for-new-text-calibration-and-coverage")])
    if any(p.name == "learning_curve.png" for p in shown):
        elsewhere.append(["learning curves under ", Span("link", "Learning curves", "#learning-curves")])
    blocks: list = [Heading(2, "Plots side by side"),
                    Para(["The same plot of each run next to each other (narrow screens stack them); click a "
                          "folded section to open it", *(["; ", *_join(elsewhere, ", ")] if elsewhere else []), "."])]
    for task in _tasks(runs):
        models = _models(runs, task)
        by_name: dict[str, list[tuple[str, Path]]] = {}
        for r in runs:
            if task not in r.metrics["tasks"]:
                continue
            for plot in plot_files(r.dir, task, list(r.metrics["tasks"][task]["models"])):
                if plot.resolve() not in shown:
                    by_name.setdefault(plot.name, []).append((r.label, plot))
        blocks.append(Heading(3, f"Plots: {task}"))
        if not by_name:
            blocks.append(Para(["No plots in these run directories; draw them with ",
                                code("python -m experiments plot"), "."], "note"))
            continue
        order = sorted(by_name, key=lambda n: plot_rank(n, models))
        for prefix, names in groupby(order, key=_per_model_prefix):
            compares = [Compare(plot_caption(n, task, models), by_name[n]) for n in names]
            if prefix is None:
                blocks += compares
            else:
                blocks.append(Details(f"{PER_MODEL_PLOTS[prefix]}, one per model ({len(compares)})", compares))
    return blocks


def write_report(run_dirs: list[Path], out: Path | None = None, images: str = "embed") -> tuple[Path, Path]:
    """Write a report on one or more finished runs: a self-contained HTML page and its Markdown twin.

    The page compares the runs side by side (scores, paired tests, config
    and data differences, learning curves, every plot), and for each run
    shows its most confident mistakes, per-document scores, top n-grams and
    per-label F1; the long parts fold away. The HTML embeds every plot once,
    compressed, as a data URI and fetches nothing (``images="link"``: it
    links the PNGs instead, for a page that stays beside the runs); the
    Markdown links to the PNGs by relative path. No path in either is absolute.
    By default both go into the first run directory (``report.html`` and
    ``report.md``); ``out=FILE.html`` writes ``FILE.html`` and ``FILE.md``.
    Returns ``(html_path, markdown_path)``.
    """
    runs = open_runs([Path(d) for d in run_dirs])
    html_path, md_path = report_paths(runs[0].dir, out)
    blocks = report_blocks(runs, html_path.parent)
    write_text_atomic(html_path, render_html(blocks, html_path.parent, images))
    write_text_atomic(md_path, render_markdown(blocks, md_path.parent))
    return html_path, md_path

