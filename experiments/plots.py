"""Plots drawn from a run directory's saved predictions and metrics, never from a live model.

``draw_plots(run_dir)`` (re)draws every PNG under ``run_dir/plots/<task>/``:

- ``model_comparison.png``: a forest plot of macro-F1 (and accuracy or micro-F1) per model with CIs;
- ``per_label_f1.png``: F1 per stance label or frame, one bar per model, with CI whiskers;
- ``confusion_<model>.png``: the row-normalised confusion matrix of one model, each cell with its count;
- ``calibration.png``: a reliability diagram per model, with its expected calibration error;
- ``label_distribution.png``: the gold labels of each document;
- ``learning_curve.png``: scores against training size (only when the run has a learning curve).

Every plot reads the out-of-fold predictions (``rundir.Run.records``); the
learning curve reads its scores from ``metrics.json``, so the learning
curve's own prediction records are not read here. ``plot_files``,
``plot_caption`` and ``plot_title`` name the drawn files for ``summary.md``
and the report.

Every plot that draws models colours them with ``model_colours``: a model
has the same colour in every plot and every run.
"""

from __future__ import annotations

import re
import textwrap
import zlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.metrics import calibration_bins  # noqa: E402
from experiments.rundir import open_run, slug  # noqa: E402,F401  (slug: plot and model files share their names)

# Okabe & Ito's colour-blind-safe palette (label colours of the label distribution).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
# One colour per registered model, the same in every plot of every run: Okabe & Ito's colours for the
# trained models (their yellow is too faint on white, so setfit gets Tol's wine), greys for the chance
# baselines. A new registered model gets a colour here.
MODEL_COLOURS = {
    "majority": "#999999",
    "stratified": "#5F5F5F",
    "tfidf_logreg": "#009E73",
    "tfidf_svm": "#CC79A7",
    "tfidf_cnb": "#56B4E9",
    "embed_logreg": "#D55E00",
    "zeroshot_codebook": "#E69F00",
    "codebook_logreg": "#000000",
    "finetune": "#0072B2",
    "setfit": "#882255",
}
# Models under another name (a config's ``label``, such as "embed_logreg+semeval"): Paul Tol's muted
# colours, none of them above, picked by a hash of the name.
EXTRA_COLOURS = ["#332288", "#117733", "#44AA99", "#CC6677", "#AA4499", "#999933", "#88CCEE", "#DDCC77"]
METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "macro_f1_subset": "macro-F1 (label subset)",  # metric_name() names the labels when the run says which
    "micro_f1": "micro-F1",
    "hamming_loss": "Hamming loss (lower is better)",
    "subset_accuracy": "subset accuracy",
}
CALIBRATION_BINS = 10
FEW_IN_BIN = 5  # calibration bins with fewer predictions get hollow markers

plt.rcParams.update({
    "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "xtick.labelsize": 10,
    "ytick.labelsize": 10, "legend.fontsize": 10, "figure.dpi": 110, "savefig.bbox": "tight",
    "axes.spines.top": False, "axes.spines.right": False,
})


def metric_name(key: str, subset: list[str] | None = None) -> str:
    """A metric's name in words; the stance-subset macro-F1 is named after the labels it averages.

    >>> metric_name("macro_f1_subset", ["favor", "against"]), metric_name("macro_f1_subset", ["pro"])
    ('macro-F1 (favor, against)', 'macro-F1 (pro)')
    >>> metric_name("macro_f1_subset"), metric_name("micro_f1", ["x"])
    ('macro-F1 (label subset)', 'micro-F1')
    """
    if key == "macro_f1_subset" and subset:
        return f"macro-F1 ({', '.join(subset)})"
    return METRIC_NAMES.get(key, key)


def model_colours(models: list[str]) -> dict[str, str]:
    """Each model's colour: fixed per registered model name (``.vN`` ignored), so a model looks the same in
    every plot and every run; any other name gets a colour from a hash of the name, moved to the next
    free one only when two such names of the same run would share it.

    >>> colours = model_colours(["tfidf_svm", "majority", "embed_logreg+semeval"])
    >>> colours["tfidf_svm"] == model_colours(["tfidf_svm"])["tfidf_svm"] == model_colours(["tfidf_svm.v1"])["tfidf_svm.v1"]
    True
    >>> colours["embed_logreg+semeval"] in EXTRA_COLOURS
    True
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for model in sorted(set(models), key=lambda m: (re.sub(r"\.v\d+$", "", m) not in MODEL_COLOURS, m)):
        base = re.sub(r"\.v\d+$", "", model)
        if base in MODEL_COLOURS:
            out[model] = MODEL_COLOURS[base]
            continue
        start = zlib.crc32(model.encode("utf-8")) % len(EXTRA_COLOURS)
        free = [EXTRA_COLOURS[(start + k) % len(EXTRA_COLOURS)] for k in range(len(EXTRA_COLOURS))]
        out[model] = next((c for c in free if c not in taken), free[0])
        taken.add(out[model])
    return out


def draw_plots(run_dir: Path) -> list[Path]:
    """Redraw every plot of a run from its saved files; return the paths written."""
    run = open_run(run_dir)
    metrics = run.metrics
    written = []
    for task, info in metrics["tasks"].items():
        out = run.dir / "plots" / task
        out.mkdir(parents=True, exist_ok=True)
        main = run.records(task)
        models = list(info["models"])
        written.append(_comparison(task, info, models, out, metrics))
        written.append(_per_label(task, info, models, out, metrics))
        for model in models:
            written.append(_confusion(task, info, model, [p for p in main if p["model"] == model], out, metrics))
        written.append(_calibration(task, info, models, main, out, metrics))
        if info.get("calibration"):
            written.append(_coverage(task, info, models, out, metrics))
        written.append(_label_distribution(task, info, main, out, metrics))
        if info.get("learning_curve"):
            written.append(_learning_curve(task, info, models, out, metrics))
    return written


# The plot files of a run, their order and their captions (for summary.md and the report). ------------

def plot_rank(name: str, models: list[str]) -> tuple:
    """Sort key: overview plots first, then per-model ones in model order, then anything unknown."""
    stem = name.removesuffix(".png")
    fixed = ["model_comparison", "per_label_f1", "label_distribution", "learning_curve", "calibration", "coverage"]
    if stem in fixed:
        return (fixed.index(stem), 0, stem)
    slugs = [slug(m) for m in models]
    for prefix, rank in (("calibration_", 5), ("confusion_", 6)):
        if stem.startswith(prefix):
            rest = stem.removeprefix(prefix)
            return (rank, slugs.index(rest) if rest in slugs else len(slugs), rest)
    return (9, 0, stem)


def plot_caption(name: str, task: str, models: list[str]) -> str:
    """A caption for a plot file of ``plots/<task>/``; unknown files get a generic one.

    >>> plot_caption("confusion_tfidf_svm.png", "stance", ["tfidf_svm"])
    'Confusion matrix of tfidf_svm, normalised per gold stance label: each row shows where that label’s paragraphs went.'
    >>> plot_caption("weird.png", "frames", [])
    'frames: weird (a plot this report has no description for).'
    """
    stem = name.removesuffix(".png")
    unit = "stance label" if task == "stance" else "frame"
    by_slug = {slug(m): m for m in models}
    known = {
        "model_comparison": "Headline metrics of every model with 95% bootstrap CIs; non-overlapping bars are a hint, "
                            "the paired tests are the check.",
        "per_label_f1": f"F1 per {unit} and model with 95% CIs; hatched columns are not estimable (too few test examples).",
        "label_distribution": f"How often each {unit} occurs in the data this run used.",
        "learning_curve": "Headline score against the share of the training part used (first repeat’s folds); "
                          "a curve still rising at the right says more labelled data would help.",
        "calibration": "Reliability diagram: predicted probability against the share of predictions that were right; "
                       "points on the diagonal are well calibrated.",
        "coverage": "Selective prediction: accuracy of the most confident share of paragraphs, with confidence "
                    "calibrated on other documents; the model predict uses is drawn bold.",
    }
    if stem in known:
        return known[stem]
    if stem.startswith("confusion_"):
        model = by_slug.get(stem.removeprefix("confusion_"), stem.removeprefix("confusion_"))
        if task == "stance":
            return (f"Confusion matrix of {model}, normalised per gold stance label: "
                    "each row shows where that label’s paragraphs went.")
        return (f"Frame confusion of {model}: for paragraphs with the gold frame (row), the share predicted "
                "with each frame (column); a paragraph may have several.")
    if stem.startswith("calibration_"):
        model = by_slug.get(stem.removeprefix("calibration_"), stem.removeprefix("calibration_"))
        return (f"Reliability diagram of {model}: predicted probability against the share of predictions "
                "that were right; points on the diagonal are well calibrated.")
    return f"{task}: {stem.replace('_', ' ')} (a plot this report has no description for)."


def plot_title(name: str, models: list[str]) -> str:
    """A short name for a plot file, for link texts.

    >>> plot_title("per_label_f1.png", []), plot_title("confusion_logreg_small.png", ["logreg small"])
    ('F1 per label', 'confusion: logreg small')
    """
    stem = name.removesuffix(".png")
    by_slug = {slug(m): m for m in models}
    fixed = {"per_label_f1": "F1 per label"}
    if stem in fixed:
        return fixed[stem]
    for prefix in ("confusion_", "calibration_"):
        if stem.startswith(prefix):
            rest = stem.removeprefix(prefix)
            return f"{prefix[:-1]}: {by_slug.get(rest, rest)}"
    return stem.replace("_", " ")


def plot_files(run_dir: Path, task: str, models: list[str]) -> list[Path]:
    return sorted((run_dir / "plots" / task).glob("*.png"), key=lambda p: plot_rank(p.name, models))


# Tables the plots draw, computed from prediction records. -----------------------------------------

NO_FRAME = "(no frame)"


def _golds(task: str, record: dict) -> list[str]:
    return [record["gold"]] if task == "stance" else (record["gold"] or [NO_FRAME])


def unique_paragraphs(records: list[dict]) -> list[dict]:
    """One record per test paragraph (the first model's first repeat), for counting gold labels."""
    if not records:
        return []
    first_model, first_repeat = records[0]["model"], min(r["repeat"] for r in records)
    seen: dict[str, dict] = {}
    for r in records:
        if r["model"] == first_model and r["repeat"] == first_repeat:
            seen.setdefault(r["id"], r)
    return list(seen.values())


def confusion_counts(task: str, labels: list[str], records: list[dict]) -> tuple[list[str], np.ndarray]:
    """Row and column names, and the counts of (gold, predicted) over ``records``.

    Stance: one count per record. Frames: a paragraph counts once for every
    (gold frame, predicted frame) pair, "(no frame)" standing in for an empty
    set, so a row may sum to more than the paragraphs with that gold frame.

    >>> records = [{"gold": ["x"], "pred": ["x", "y"]}, {"gold": [], "pred": []}]
    >>> names, counts = confusion_counts("frames", ["x", "y"], records)
    >>> names, counts.tolist()
    (['x', 'y', '(no frame)'], [[1, 1, 0], [0, 0, 0], [0, 0, 1]])
    """
    names = labels if task == "stance" else [*labels, NO_FRAME]
    counts = np.zeros((len(names), len(names)), dtype=int)
    for r in records:
        pred = [r["pred"]] if task == "stance" else (r["pred"] or [NO_FRAME])
        for g in _golds(task, r):
            for q in pred:
                counts[names.index(g), names.index(q)] += 1
    return names, counts


def label_counts(task: str, labels: list[str], records: list[dict]) -> tuple[list[str], list[str], np.ndarray]:
    """Documents (sorted), label names, and per document and label the number of unique paragraphs with that gold label.

    >>> records = [{"model": "m", "repeat": r, "id": i, "doc_id": "d", "gold": g}
    ...            for r in (0, 1) for i, g in (("p0", "favor"), ("p1", "none"))]
    >>> label_counts("stance", ["favor", "none"], records)
    (['d'], ['favor', 'none'], array([[1, 1]]))
    """
    paragraphs = unique_paragraphs(records)
    docs = sorted({r["doc_id"] for r in paragraphs})
    names = labels if task == "stance" else [*labels, NO_FRAME]
    counts = np.zeros((len(docs), len(names)), dtype=int)
    for r in paragraphs:
        for g in _golds(task, r):
            counts[docs.index(r["doc_id"]), names.index(g)] += 1
    return docs, names, counts


def calibration_pairs(task: str, labels: list[str], records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) pairs of a model's predictions.

    Stance: the probability of the predicted label and whether it is the gold
    label. Frames: every (paragraph, frame) probability and whether the frame
    is gold.

    >>> calibration_pairs("frames", ["x", "y"], [{"gold": ["y"], "pred": [], "proba": {"x": 0.2, "y": 0.4}}])
    (array([0.2, 0.4]), array([0., 1.]))
    """
    if task == "stance":
        confidence = [r["proba"].get(r["pred"], 0.0) for r in records]
        correct = [r["pred"] == r["gold"] for r in records]
    else:
        confidence = [r["proba"].get(f, 0.0) for r in records for f in labels]
        correct = [f in r["gold"] for r in records for f in labels]
    return np.array(confidence, dtype=float), np.array(correct, dtype=float)


# Drawing. -------------------------------------------------------------------------------------------

def describe_protocol(p: dict, short: bool = False) -> str:
    """A protocol from ``metrics.json`` in words: "5-fold CV × 5 repeats", "leave-one-document-out", ..."""
    repeats = f" × {p['repeats']} repeats" if p.get("repeats", 1) > 1 else ""
    if p["name"] == "kfold":
        return f"{p['folds']}-fold CV{repeats}" if short else f"stratified {p['folds']}-fold cross-validation{repeats}"
    if p["name"] == "group_kfold":
        return (f"grouped {p['folds']}-fold CV{repeats}" if short
                else f"{p['folds']}-fold cross-validation grouped by {p['group_column']}{repeats}")
    if p["name"] == "lodo":
        return "leave-one-document-out" if p["group_column"] == "doc_id" else f"leave-one-{p['group_column']}-out"
    return "held-out test split" if short else f"predefined split ({p['split_column']} column)"


def _subtitle(info: dict, metrics: dict) -> str:
    how = describe_protocol(metrics["protocol"], short=True)
    return f"{metrics['config']} · {how} · n = {info['n_paragraphs']} paragraphs"


def _ci_text(metrics: dict) -> str:
    """ "95% bootstrap CI", or "95% document-bootstrap CI" when whole documents were resampled."""
    boot = metrics["protocol"].get("bootstrap", {})
    level = f"{100 * boot.get('confidence', 0.95):g}%"
    return f"{level} document-bootstrap CI" if boot.get("unit") == "document" else f"{level} bootstrap CI"


def _colour(models: list[str], model: str) -> str:
    return model_colours(models)[model]


def _is_majority(model: str) -> bool:
    return model.split(".")[0].lower() == "majority"


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    plt.close(fig)
    return path


def _comparison(task: str, info: dict, models: list[str], out: Path, metrics: dict) -> Path:
    keys = ["macro_f1", "accuracy"] if task == "stance" else ["macro_f1", "micro_f1"]
    order = sorted(models, key=lambda m: info["models"][m]["metrics"]["macro_f1"]["value"] or 0)
    baseline = next((m for m in models if _is_majority(m)), None)
    colours = model_colours(models)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 0.55 * len(models) + 2.4), sharey=True)
    for ax, key in zip(axes, keys):
        if baseline is not None and info["models"][baseline]["metrics"][key]["value"] is not None:
            ax.axvline(info["models"][baseline]["metrics"][key]["value"], color="#777777", ls="--", lw=1,
                       label="majority baseline")
        for y, model in enumerate(order):
            m = info["models"][model]["metrics"][key]
            if m["value"] is None:
                ax.text(0.0, y, "  undefined", va="center", fontsize=9, color="#555555")
                continue
            low, high = (m["value"] if c is None else c for c in m["ci"])
            ax.errorbar(m["value"], y, xerr=[[m["value"] - low], [high - m["value"]]], fmt="o",
                        color=colours[model], capsize=4, markersize=7, elinewidth=2)
            ax.annotate(f"{m['value']:.2f}", **_value_label_place(m["value"], low, high, y), fontsize=9,
                        color="#222222")
        ax.set_xlim(-0.03, 1.03)
        ax.set_xlabel(f"{METRIC_NAMES[key]} (0–1), {_ci_text(metrics)}")
        ax.grid(axis="x", alpha=0.3)
    sizes = {info["models"][m]["n"] for m in models}
    # n per model only where the models were scored on different numbers of paragraphs.
    axes[0].set_yticks(range(len(order)), order if len(sizes) == 1 else [f"{m} (n={info['models'][m]['n']})" for m in order])
    axes[0].set_ylim(-0.6, len(order) - 0.4)
    if baseline is not None:  # above the panel, where no value label can be
        axes[-1].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=9, borderaxespad=0.2)
    fig.suptitle(f"{task}: model comparison, sorted by macro-F1\n{_subtitle(info, metrics)}", fontsize=12)
    fig.tight_layout()
    return _save(fig, out / "model_comparison.png")


def _value_label_place(value: float, low: float, high: float, y: float) -> dict:
    """Where a forest plot's value label goes: right of the interval, else left of it, else above the point,
    so it never sits on the y axis (at 0) or runs off the panel (at 1).

    >>> _value_label_place(0.0, 0.0, 0.0, 0)["ha"], _value_label_place(0.9, 0.7, 0.99, 0)["ha"]
    ('left', 'right')
    >>> _value_label_place(0.5, 0.02, 0.99, 0)["ha"]
    'center'
    """
    room = 0.09  # about the width of "0.00" at this size, in axis units
    if high + room <= 1.03:
        return {"xy": (high, y), "textcoords": "offset points", "xytext": (6, 0), "ha": "left", "va": "center"}
    if low - room >= 0.0:
        return {"xy": (low, y), "textcoords": "offset points", "xytext": (-6, 0), "ha": "right", "va": "center"}
    return {"xy": (value, y), "textcoords": "offset points", "xytext": (0, 7), "ha": "center", "va": "bottom"}


def _per_label(task: str, info: dict, models: list[str], out: Path, metrics: dict) -> Path:
    labels = info["labels"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.3 * len(labels) + 3), 4.8))
    for k, model in enumerate(models):
        per = info["models"][model]["per_label"]
        x = np.arange(len(labels)) + (k - (len(models) - 1) / 2) * width
        values = np.array([np.nan if per[l]["f1"]["value"] is None else per[l]["f1"]["value"] for l in labels])
        low = np.array([np.nan if per[l]["f1"]["ci"][0] is None else per[l]["f1"]["ci"][0] for l in labels])
        high = np.array([np.nan if per[l]["f1"]["ci"][1] is None else per[l]["f1"]["ci"][1] for l in labels])
        estimable = np.array([per[l]["estimable"] for l in labels])
        values[~estimable] = np.nan
        ax.bar(x, np.nan_to_num(values), width, color=_colour(models, model), label=model,
               yerr=[np.nan_to_num(values - low), np.nan_to_num(high - values)], capsize=2,
               error_kw={"elinewidth": 0.9, "ecolor": "#333333"})
        # A bar of height 0 is invisible: mark F1 = 0 so it reads as a score, not as a missing bar.
        for xi in x[estimable & (np.nan_to_num(values, nan=1.0) == 0)]:
            ax.text(xi, 0.01, "0", ha="center", va="bottom", fontsize=9, color="#444444")
    support = info["models"][models[0]]["per_label"]
    for j, label in enumerate(labels):
        if not support[label]["estimable"]:
            ax.axvspan(j - 0.45, j + 0.45, facecolor="#eeeeee", hatch="//", edgecolor="#bbbbbb", lw=0)
            ax.text(j, 0.5, "not estimable:\ntoo few\nexamples", ha="center", va="center", fontsize=9, color="#444444")
    names = [f"{l}\n(n={support[l]['support']}{'' if support[l]['estimable'] else ', too few'})" for l in labels]
    ax.set_xticks(range(len(labels)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"F1 (0–1), {_ci_text(metrics)}")
    ax.set_xlabel(("stance label" if task == "stance" else "frame") + " (n = gold paragraphs)")
    ax.set_title(f"{task}: F1 per {'label' if task == 'stance' else 'frame'}\n{_subtitle(info, metrics)}", fontsize=12)
    ax.legend(ncol=min(len(models), 3), loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, out / "per_label_f1.png")


def _confusion(task: str, info: dict, model: str, records: list[dict], out: Path, metrics: dict) -> Path:
    names, rows = confusion_counts(task, info["labels"], records)
    # A row's share is of the records with that gold label, pooled over the repeats; the row
    # labels count each paragraph once.
    counts = np.array([sum(name in _golds(task, r) for r in records) for name in names], dtype=float)
    paragraphs = label_counts(task, info["labels"], records)[2].sum(axis=0)
    repeats = len({r["repeat"] for r in records})
    share = np.divide(rows, counts[:, None], out=np.full(rows.shape, np.nan), where=counts[:, None] > 0)
    size = 4.2 + 0.55 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(np.nan_to_num(share, nan=0.0), cmap="Blues", vmin=0, vmax=1)
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            text = "–" if np.isnan(share[i, j]) else cell_text(share[i, j], rows[i, j])
            dark = not np.isnan(share[i, j]) and share[i, j] > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=10, linespacing=1.25,
                    color="white" if dark else "#222222")
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    times = f" × {repeats}" if repeats > 1 else ""
    ax.set_yticks(range(len(names)), [f"{n} (n={c}{times})" for n, c in zip(names, paragraphs)])
    what = "stance" if task == "stance" else "frame"
    ax.set_xlabel(f"predicted {what}\ncells: share of the gold row ("
                  + (f"count of predictions, {repeats} repeats pooled)" if repeats > 1 else "count of paragraphs)"))
    ax.set_ylabel(f"gold {what} (n = paragraphs" + (f" × {repeats} repeats)" if repeats > 1 else ")"))
    if task == "stance":
        colour_label = "share of the gold row (0–1)"
    else:
        colour_label = "share of paragraphs with the gold frame\n(a paragraph may have several predicted frames)"
    ax.set_title(f"{task}: {model}, row-normalised confusion\n{_subtitle(info, metrics)}", fontsize=12)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(colour_label)
    return _save(fig, out / f"confusion_{slug(model)}.png")


def cell_text(share: float, count: int) -> str:
    """A confusion cell: the share of its gold row, and under it how many predictions that is.

    >>> cell_text(0.6190, 13)
    '0.62\\n(13)'
    """
    return f"{share:.2f}\n({count})"


def _coverage(task: str, info: dict, models: list[str], out: Path, metrics: dict) -> Path:
    """Selective prediction: accuracy of the most confident x% of paragraphs, per model."""
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    chosen = (info.get("selection") or {}).get("model")
    for model in models:
        curve = info["calibration"].get(model, {}).get("coverage")
        if not curve:
            continue
        x = [100 * p["coverage"] for p in curve]
        y = [p["accuracy"] for p in curve]
        bold = model == chosen
        ax.plot(x, y, "-o", color=_colour(models, model), lw=2.6 if bold else 1.2, ms=4 if bold else 2.5,
                label=f"{model} (used by predict)" if bold else model, zorder=3 if bold else 2)
    measure = "accuracy" if task == "stance" else "share of frame decisions right"
    ax.set_xlabel("coverage: % of paragraphs kept, most confident first")
    ax.set_ylabel(measure)
    ax.set_xlim(5, 102)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{task}: coverage and accuracy\n{_subtitle(info, metrics)}", fontsize=11)
    fig.text(0.01, -0.04, "Confidence is calibrated on other documents' out-of-fold predictions (cross-fitted). "
             "A falling curve means the confident predictions are the right ones.", fontsize=8, wrap=True)
    return _save(fig, out / "coverage.png")


def _calibration(task: str, info: dict, models: list[str], records: list[dict], out: Path, metrics: dict) -> Path:
    ncols = min(len(models), 3)
    nrows = -(-len(models) // ncols)
    width = max(3.9 * ncols, 6.5)
    repeats = len({r["repeat"] for r in records}) or 1
    times_repeats = f" × {repeats} repeats" if repeats > 1 else ""
    if task == "stance":
        unit = f"n = predictions ({info['n_paragraphs']} paragraphs{times_repeats})"
    else:
        unit = f"n = (paragraph, frame) pairs ({info['n_paragraphs']} paragraphs × {len(info['labels'])} frames{times_repeats})"
    svm = [m for m in models if "svm" in m.lower()]
    caveat = (f"{', '.join(svm)}: softmaxed SVM margins, not probabilities; " if svm else "") + \
        "scores of some models are not calibrated probabilities"
    caption = "\n".join(textwrap.fill(line, int(15 * width)) for line in [
        f"ECE = expected calibration error, the count-weighted mean gap to the diagonal. {unit}.",
        f"Bars: predictions per bin; hollow markers: fewer than {FEW_IN_BIN}.", f"{caveat}."])
    bottom = 0.85 + 0.16 * (caption.count("\n") + 1)  # inches: x label, then the caption
    fig = plt.figure(figsize=(width, 4.6 * nrows + bottom + 0.3))
    height = fig.get_figheight()
    outer = fig.add_gridspec(nrows, ncols, hspace=0.42, wspace=0.3, top=1 - 0.95 / height, bottom=bottom / height)
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    for k, model in enumerate(models):
        row, col = divmod(k, ncols)
        inner = outer[row, col].subgridspec(2, 1, height_ratios=[3.2, 1], hspace=0.08)
        ax = fig.add_subplot(inner[0])
        hist = fig.add_subplot(inner[1], sharex=ax)
        colour = _colour(models, model)
        confidence, correct = calibration_pairs(task, info["labels"], [r for r in records if r["model"] == model])
        ax.plot([0, 1], [0, 1], ls="--", color="#777777", lw=1)
        if len(confidence):
            mean_conf, observed, counts, ece = calibration_bins(confidence, correct, CALIBRATION_BINS)
            ax.plot(mean_conf, observed, "-", color=colour, lw=1.5)
            # Bins with few predictions swing widely: hollow markers say "read with care".
            few = counts < FEW_IN_BIN
            ax.plot(mean_conf[~few], observed[~few], "o", color=colour, markersize=6, clip_on=False)
            ax.plot(mean_conf[few], observed[few], "o", mfc="white", mec=colour, mew=1.5, markersize=6, clip_on=False)
            hist.bar(centres, counts, width=0.9 / CALIBRATION_BINS, color=colour, alpha=0.85)
            hist.set_yscale("log")
            hist.set_ylim(0.7, max(counts.max(), 1) * 3)
            ax.set_title(f"{model}\nECE = {ece:.3f} · n = {len(confidence)}", fontsize=11)
        else:
            ax.text(0.5, 0.5, "no predictions", ha="center", va="center", color="#555555")
            ax.set_title(f"{model}\nno predictions", fontsize=11)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=False)
        if col == 0:
            ax.set_ylabel("observed frequency (0–1)" if task == "frames" else "share correct (0–1)")
            hist.set_ylabel("n (log)")
        hist.set_xticks(edges[::2])
        hist.set_xlabel("predicted probability of the frame" if task == "frames"
                        else "probability of the predicted label")
        hist.grid(axis="y", alpha=0.3)
    fig.suptitle(f"{task}: reliability diagrams ({CALIBRATION_BINS} bins; dashed: perfectly calibrated)\n"
                 f"{_subtitle(info, metrics)}", fontsize=12, y=1 - 0.1 / height, va="top")
    fig.text(0.5, 0.1 / height, caption, ha="center", va="bottom", fontsize=9, color="#333333")
    return _save(fig, out / "calibration.png")


def _label_distribution(task: str, info: dict, records: list[dict], out: Path, metrics: dict) -> Path:
    docs, names, counts = label_counts(task, info["labels"], records)
    sizes = np.zeros(len(docs), dtype=int)
    for r in unique_paragraphs(records):
        sizes[docs.index(r["doc_id"])] += 1
    paragraphs = sizes.sum()
    title = (f"{task}: gold {'labels' if task == 'stance' else 'frames'} per document\n"
             f"{metrics['config']} · {paragraphs} paragraphs in {len(docs)} documents")
    if task == "stance":
        fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(docs) + 2.3))
        left = np.zeros(len(docs))
        for j, label in enumerate(names):
            ax.barh(range(len(docs)), counts[:, j], left=left, color=PALETTE[j % len(PALETTE)], height=0.7,
                    label=f"{label} ({counts[:, j].sum()})", edgecolor="white", lw=0.8)
            for d in range(len(docs)):
                if counts[d, j]:
                    dark = PALETTE[j % len(PALETTE)] in ("#0072B2", "#009E73", "#D55E00", "#000000")
                    ax.text(left[d] + counts[d, j] / 2, d, str(counts[d, j]), ha="center", va="center",
                            fontsize=9, color="white" if dark else "#222222")
            left += counts[:, j]
        for d, n in enumerate(sizes):
            ax.text(n + 0.2, d, f"n={n}", va="center", fontsize=9, color="#333333")
        ax.set_yticks(range(len(docs)), docs)
        ax.invert_yaxis()
        ax.set_xlim(0, max(sizes.max(initial=1) * 1.12, 1))
        ax.set_xlabel("gold paragraphs (count)")
        ax.set_ylabel("document")
        ax.legend(title="gold stance (total)", ncol=min(len(names), 4), loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), frameon=False)
        ax.set_title(title, fontsize=12)
        return _save(fig, out / "label_distribution.png")
    # Frames: a paragraph may carry several frames, so rows are not compositions; colour is the
    # share of the row's paragraphs with the frame, the number is their count.
    table = np.vstack([counts, counts.sum(axis=0)])
    totals = np.append(sizes, sizes.sum())
    share = np.divide(table, totals[:, None], out=np.zeros(table.shape), where=totals[:, None] > 0)
    rows = [*docs, "all documents"]
    fig, ax = plt.subplots(figsize=(0.85 * len(names) + 4.5, 0.5 * len(rows) + 2.6))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            ax.text(j, i, str(table[i, j]), ha="center", va="center", fontsize=10,
                    color="white" if share[i, j] > 0.6 else "#222222",
                    fontweight="bold" if i == len(docs) else "normal")
    ax.axhline(len(docs) - 0.5, color="black", lw=1.5)
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), [f"{r} (n={n})" for r, n in zip(rows, totals)])
    ax.set_xlabel("gold frame (numbers: paragraphs with the frame)")
    ax.set_ylabel("document (n = paragraphs)")
    ax.set_title(title, fontsize=12)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the document's paragraphs\n(a paragraph may have several frames)")
    return _save(fig, out / "label_distribution.png")


def _learning_curve(task: str, info: dict, models: list[str], out: Path, metrics: dict) -> Path:
    """Small multiples: one panel per model with its two scores and their CI bands, the other models' macro-F1
    in light grey behind it, so no band hides another and every curve can still be compared with the rest."""
    keys = ["macro_f1", "accuracy"] if task == "stance" else ["macro_f1", "micro_f1"]
    curve = info["learning_curve"]
    drawn = [m for m in models if m in curve] + [m for m in curve if m not in models]
    colours = model_colours([*models, *drawn])
    ncols = min(len(drawn), 4)
    nrows = -(-len(drawn) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(3.4 * ncols, 7.0), 2.7 * nrows + 1.5), sharex=True,
                             sharey=True, squeeze=False)

    def series(model: str, key: str) -> tuple[np.ndarray, ...]:
        points = sorted(curve[model], key=lambda p: p["fraction"])
        x = np.array([p["fraction"] if p.get("n_train") is None else p["n_train"] for p in points], dtype=float)
        y = np.array([np.nan if p[key]["value"] is None else p[key]["value"] for p in points], dtype=float)
        low = np.array([np.nan if p[key]["ci"][0] is None else p[key]["ci"][0] for p in points], dtype=float)
        high = np.array([np.nan if p[key]["ci"][1] is None else p[key]["ci"][1] for p in points], dtype=float)
        return x, y, low, high

    ticks: dict[float, float] = {}
    for k, model in enumerate(drawn):
        ax = axes[divmod(k, ncols)]
        colour = colours[model]
        for other in drawn:
            if other != model:
                x, y, _, _ = series(other, keys[0])
                ax.plot(x, y, "-", color="#d4d4d4", lw=1.0, zorder=1)
        for key, style, marker, alpha in ((keys[0], "-", "o", 0.18), (keys[1], "--", "s", 0.08)):
            x, y, low, high = series(model, key)
            ax.fill_between(x, low, high, color=colour, alpha=alpha, lw=0, zorder=2)
            ax.plot(x, y, ls=style, marker=marker, color=colour, markersize=4, lw=1.8, zorder=3)
        ticks.update({float(xi): p["fraction"] for xi, p in zip(series(model, keys[0])[0],
                                                                sorted(curve[model], key=lambda p: p["fraction"]))})
        ax.set_title(f"{model} (baseline)" if _is_majority(model) else model, fontsize=11)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel("score (0–1)")
    for k in range(len(drawn), nrows * ncols):
        axes[divmod(k, ncols)].set_visible(False)
    by_fraction = all(p.get("n_train") is None for m in drawn for p in curve[m])
    xs = sorted(ticks)
    for k in range(len(drawn)):
        ax = axes[divmod(k, ncols)]
        if not by_fraction:
            ax.set_xticks(xs, [f"{x:g}\n{100 * ticks[x]:.0f}%" for x in xs], fontsize=8.5)
        if k + ncols >= len(drawn):  # the lowest panel of each column shows the x axis
            ax.tick_params(labelbottom=True)
    n_test = {p["n_test"] for m in drawn for p in curve[m]}
    n_text = f"n = {n_test.pop()} test paragraphs per point" if len(n_test) == 1 else "n = test paragraphs vary"
    protocol = describe_protocol(metrics["protocol"], short=True)
    fig.suptitle(f"{task}: learning curve · {metrics['config']} · {protocol}, first repeat's folds\n"
                 f"{n_text}; bands: {_ci_text(metrics)}; 100% = the full training parts", fontsize=12)
    handles = [plt.Line2D([], [], color="#333333", ls="-", marker="o", markersize=4, lw=1.8),
               plt.Line2D([], [], color="#333333", ls="--", marker="s", markersize=4, lw=1.8),
               plt.Line2D([], [], color="#d4d4d4", lw=1.5)]
    names = [METRIC_NAMES[keys[0]], METRIC_NAMES[keys[1]], f"the other models' {METRIC_NAMES[keys[0]]}"]
    # Inches from the bottom: the legend, then the shared x label, then the panels; the titles on top.
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0.7 / height, 1, 1), h_pad=1.2)
    fig.supxlabel("share of each training part" if by_fraction else
                  "training paragraphs (mean per fold) and their share of the full training part",
                  y=0.48 / height, va="center", fontsize=11)
    fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    return _save(fig, out / "learning_curve.png")
