"""Plots drawn from a run directory's saved predictions and metrics, never from a live model.

``draw_plots(run_dir)`` (re)draws every PNG under ``run_dir/plots/<task>/``:

- ``confusion_<model>.png``: the normalised confusion matrix of one model;
- ``per_label_f1.png``: F1 per stance label or frame, one bar per model, with CI whiskers;
- ``model_comparison.png``: the headline metrics of every model with their CIs.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.errors import UserError  # noqa: E402
from experiments.io import read_jsonl  # noqa: E402

# Okabe & Ito's colour-blind-safe palette.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
METRIC_NAMES = {
    "accuracy": "accuracy",
    "macro_f1": "macro-F1",
    "macro_f1_subset": "macro-F1 (favor, against)",
    "micro_f1": "micro-F1",
    "hamming_loss": "Hamming loss (lower is better)",
    "subset_accuracy": "subset accuracy",
}

plt.rcParams.update({
    "font.size": 11, "axes.titlesize": 13, "axes.labelsize": 11, "xtick.labelsize": 10,
    "ytick.labelsize": 10, "legend.fontsize": 9, "figure.dpi": 110, "savefig.bbox": "tight",
    "axes.spines.top": False, "axes.spines.right": False,
})


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def load_run(run_dir: Path) -> tuple[dict, list[dict]]:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.exists():
        raise UserError(f"{run_dir}: not a run directory (no metrics.json); pass a directory printed by `run`")
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    predictions = [record for _, record in read_jsonl(run_dir / "predictions.jsonl")]
    return metrics, predictions


def draw_plots(run_dir: Path) -> list[Path]:
    """Redraw every plot of a run from its saved files; return the paths written."""
    run_dir = Path(run_dir)
    metrics, predictions = load_run(run_dir)
    written = []
    for task, info in metrics["tasks"].items():
        out = run_dir / "plots" / task
        out.mkdir(parents=True, exist_ok=True)
        records = [p for p in predictions if p["task"] == task]
        models = list(info["models"])
        for model in models:
            written.append(_confusion(task, info, model, [p for p in records if p["model"] == model], out, metrics))
        written.append(_per_label(task, info, models, out, metrics))
        written.append(_comparison(task, info, models, out, metrics))
    return written


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


def _confusion(task: str, info: dict, model: str, records: list[dict], out: Path, metrics: dict) -> Path:
    labels = info["labels"]
    if task == "stance":
        rows, row_names, col_names = np.zeros((len(labels), len(labels))), labels, labels
        for r in records:
            rows[labels.index(r["gold"]), labels.index(r["pred"])] += 1
        xlabel, ylabel = "predicted stance", "gold stance"
    else:
        # Multi-label: for paragraphs with gold frame i, the share predicted with frame j.
        row_names = [*labels, "(no frame)"]
        col_names = [*labels, "(no frame)"]
        rows = np.zeros((len(row_names), len(col_names)))
        counts = np.zeros((len(row_names), 1))
        for r in records:
            gold = [labels.index(f) for f in r["gold"]] or [len(labels)]
            pred = [labels.index(f) for f in r["pred"]] or [len(labels)]
            for i in gold:
                rows[i, pred] += 1
                counts[i] += 1
        xlabel, ylabel = "predicted frame", "gold frame"
        colour_label = "share of paragraphs with the gold frame\n(a paragraph may have several predicted frames)"
    if task == "stance":
        counts = rows.sum(axis=1, keepdims=True)
        colour_label = "share of the gold row"
    share = np.divide(rows, counts, out=np.full_like(rows, np.nan), where=counts > 0)
    size = 4.2 + 0.55 * len(col_names)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    image = ax.imshow(np.nan_to_num(share, nan=0.0), cmap="Blues", vmin=0, vmax=1)
    for i in range(share.shape[0]):
        for j in range(share.shape[1]):
            text = "–" if np.isnan(share[i, j]) else f"{share[i, j]:.2f}"
            dark = not np.isnan(share[i, j]) and share[i, j] > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color="white" if dark else "#222222")
    ax.set_xticks(range(len(col_names)), col_names, rotation=35, ha="right")
    ax.set_yticks(range(len(row_names)), [f"{n} (n={int(c)})" for n, c in zip(row_names, counts[:, 0])])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel + " (n = paragraphs × repeats)")
    ax.set_title(f"{task}: {model}, row-normalised confusion\n{_subtitle(info, metrics)}", fontsize=11)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(colour_label)
    path = out / f"confusion_{slug(model)}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


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
        ax.bar(x, np.nan_to_num(values), width, color=PALETTE[k % len(PALETTE)], label=model,
               yerr=[np.nan_to_num(values - low), np.nan_to_num(high - values)], capsize=2,
               error_kw={"elinewidth": 0.9, "ecolor": "#333333"})
    support = info["models"][models[0]]["per_label"]
    for j, label in enumerate(labels):
        if not support[label]["estimable"]:
            ax.axvspan(j - 0.45, j + 0.45, facecolor="#eeeeee", hatch="//", edgecolor="#bbbbbb", lw=0)
            ax.text(j, 0.5, "not estimable:\ntoo few\nexamples", ha="center", va="center", fontsize=9, color="#444444")
    names = [f"{l}\n(n={support[l]['support']}{'' if support[l]['estimable'] else ', too few'})" for l in labels]
    ax.set_xticks(range(len(labels)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (0–1), 95% bootstrap CI")
    ax.set_xlabel("stance label" if task == "stance" else "frame")
    ax.set_title(f"{task}: F1 per {'label' if task == 'stance' else 'frame'}\n{_subtitle(info, metrics)}", fontsize=11)
    ax.legend(ncol=min(len(models), 3), loc="upper center", bbox_to_anchor=(0.5, -0.2), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    path = out / "per_label_f1.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _comparison(task: str, info: dict, models: list[str], out: Path, metrics: dict) -> Path:
    keys = ["macro_f1", "accuracy"] if task == "stance" else ["macro_f1", "micro_f1"]
    order = sorted(models, key=lambda m: info["models"][m]["metrics"]["macro_f1"]["value"] or 0)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 0.55 * len(models) + 2.2), sharey=True)
    for ax, key in zip(axes, keys):
        for y, model in enumerate(order):
            m = info["models"][model]["metrics"][key]
            colour = PALETTE[models.index(model) % len(PALETTE)]
            if m["value"] is None:
                continue
            ax.errorbar(m["value"], y, xerr=[[m["value"] - m["ci"][0]], [m["ci"][1] - m["value"]]], fmt="o",
                        color=colour, capsize=4, markersize=7, elinewidth=2)
            ax.annotate(f"{m['value']:.2f}", (m["value"], y), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=9)
        ax.set_xlim(-0.03, 1.03)
        ax.set_xlabel(f"{METRIC_NAMES[key]} (0–1), 95% CI")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(order)), order)
    axes[0].set_ylim(-0.6, len(order) - 0.4)
    fig.suptitle(f"{task}: model comparison\n{_subtitle(info, metrics)}", fontsize=11)
    fig.tight_layout()
    path = out / "model_comparison.png"
    fig.savefig(path)
    plt.close(fig)
    return path
