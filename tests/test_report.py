"""Reports on saved runs: the HTML page and its Markdown twin (``report``), the config diff, error analysis and
per-document scores (``analysis``), and summary.md and the README section (``summary``), all read from one small
inline run directory."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
import yaml

from experiments.analysis import differences, most_confident_mistakes, per_document_scores
from experiments.errors import UserError
from experiments.report import write_report
from experiments.summary import fmt_p, paired_table, readme_results, summary_markdown

# The smallest valid PNG (1 × 1 pixel); the report only embeds the bytes.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
STANCE = ["favor", "against", "neutral", "none"]
FRAMES = ["humanitarian", "security"]
TEXTS = {
    "p1": ("d1", "Aid now."),
    "p2": ("d1", "Strikes <b>now</b> & then."),
    "p3": ("d1", "Nothing to see."),
    "p4": ("d2", "Help them."),
    "p5": ("d2", "Weather report."),
}
GOLD = {"p1": "favor", "p2": "against", "p3": "none", "p4": "favor", "p5": "none"}
# (repeat, id) -> (predicted label, its probability) for tfidf_svm; majority always predicts "none".
SVM = {
    (0, "p1"): ("favor", 0.8), (0, "p2"): ("none", 0.9), (0, "p3"): ("favor", 0.6),
    (0, "p4"): ("favor", 0.7), (0, "p5"): ("none", 0.55),
    (1, "p1"): ("favor", 0.8), (1, "p2"): ("none", 0.7), (1, "p3"): ("none", 0.6),
    (1, "p4"): ("against", 0.95), (1, "p5"): ("none", 0.6),
}
FRAME_GOLD = {"p1": ["humanitarian"], "p2": ["security"], "p3": [], "p4": ["humanitarian", "security"], "p5": []}
FRAME_PRED = {  # tfidf_svm, repeat 0: (predicted frames, probabilities)
    "p1": (["humanitarian"], {"humanitarian": 0.9, "security": 0.1}),
    "p2": (["humanitarian"], {"humanitarian": 0.7, "security": 0.2}),  # FP humanitarian 0.7, FN security 0.2
    "p3": (["security"], {"humanitarian": 0.1, "security": 0.8}),  # FP security 0.8: the most confident
    "p4": (["humanitarian"], {"humanitarian": 0.6, "security": 0.05}),  # FN security 0.05: the least confident
    "p5": ([], {"humanitarian": 0.3, "security": 0.3}),
}
PAIRED = [
    {"a": "tfidf_svm", "b": "majority", "metric": "macro_f1", "diff": 0.366833, "ci": [0.257468, 0.449031],
     "p": 0.0, "resamples": 1000},
    {"a": "tfidf_svm", "b": "majority", "metric": "accuracy", "diff": 0.2, "ci": [-0.05, 0.4], "p": 0.21,
     "resamples": 1000},
]
CONFIG = {
    "name": "kfold_run", "description": "two models", "tasks": ["stance", "frames"], "seed": 13,
    "protocol": {"name": "kfold", "folds": 2, "repeats": 2, "learning_curve": None},
    "metrics": {"bootstrap": 1000, "confidence": 0.95, "min_support": 3, "bootstrap_unit": "paragraph"},
    "models": [{"name": "majority", "label": None, "params": {}},
               {"name": "tfidf_svm", "label": None, "params": {"C": 1.0}}],
}


def pixels(image: bytes) -> list:
    """An image's pixels as seen on the page's white background."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as im:
        rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB").tobytes()


def metric(value: float | None, low: float | None = None, high: float | None = None) -> dict:
    return {"value": value, "mean": value, "std": 0.1, "ci": [low, high]}


def model_result(names: list[str], labels: list[str], macro: float, support: dict[str, int]) -> dict:
    return {
        "n": 5,
        "metrics": {k: metric(macro, macro - 0.1, macro + 0.1) if k == "macro_f1" else metric(0.5, 0.4, 0.6) for k in names},
        "per_label": {l: {"precision": metric(0.5, 0.2, 0.8), "recall": metric(0.5, 0.2, 0.8), "f1": metric(0.5, 0.2, 0.8),
                          "support": support[l], "estimable": support[l] >= 3} for l in labels},
    }


def stance_records() -> list[dict]:
    out = []
    for repeat in (0, 1):
        for pid, (doc, _) in TEXTS.items():
            base = {"task": "stance", "repeat": repeat, "fold": 0, "id": pid, "doc_id": doc, "gold": GOLD[pid], "n_train": 3}
            out.append({**base, "model": "majority", "pred": "none", "proba": {l: float(l == "none") for l in STANCE}})
            pred, p = SVM[(repeat, pid)]
            rest = (1 - p) / 3
            out.append({**base, "model": "tfidf_svm", "pred": pred, "proba": {l: p if l == pred else rest for l in STANCE}})
    # A learning-curve prediction: the most confident mistake of all, but not part of the evaluation.
    out.append({"task": "stance", "model": "tfidf_svm", "repeat": 0, "fold": 0, "id": "p5", "doc_id": "d2", "gold": "none",
                "pred": "against", "proba": {"favor": 0.0, "against": 0.99, "neutral": 0.0, "none": 0.01}, "n_train": 1,
                "fraction": 0.5, "curve_repeat": 0})
    return out


def frame_records() -> list[dict]:
    out = []
    for pid, (doc, _) in TEXTS.items():
        base = {"task": "frames", "repeat": 0, "fold": 0, "id": pid, "doc_id": doc, "gold": FRAME_GOLD[pid], "n_train": 3}
        out.append({**base, "model": "majority", "pred": [], "proba": {f: 0.0 for f in FRAMES}})
        pred, proba = FRAME_PRED[pid]
        out.append({**base, "model": "tfidf_svm", "pred": pred, "proba": proba})
    return out


def write_run(root: Path, name: str = "kfold_run", *, fingerprint: str = "fp-1", config: dict | None = None,
              protocol: dict | None = None, curve: bool = True) -> Path:
    """A small but complete run directory, as ``run_experiment`` would leave it."""
    run_dir = root / name / "20260101-000000-abcdef"
    (run_dir / "plots" / "stance").mkdir(parents=True)
    config = {**CONFIG, "name": name} if config is None else config
    protocol = protocol or {"name": "kfold", "folds": 2, "repeats": 2,
                            "bootstrap": {"resamples": 1000, "confidence": 0.95, "unit": "paragraph"},
                            "paired_test": "paired bootstrap on the same resamples, two-sided"}
    stance_support = {"favor": 2 * 2, "against": 1 * 2, "neutral": 0, "none": 2 * 2}
    stance = {
        "labels": STANCE, "level": None, "n_paragraphs": 5, "folds": 4, "degenerate": {},
        "models": {"majority": model_result(["accuracy", "macro_f1", "macro_f1_subset"], STANCE, 0.15, stance_support),
                   "tfidf_svm": model_result(["accuracy", "macro_f1", "macro_f1_subset"], STANCE, 0.52, stance_support)},
        "paired": PAIRED,
    }
    if curve:
        stance["learning_curve"] = {m: [{"fraction": f, "n_train": n, "n_test": 5, "accuracy": metric(0.4, 0.3, 0.5),
                                         "macro_f1": metric(v, v - 0.1, v + 0.1)}
                                        for f, n, v in ((0.5, 1.0, 0.21 if m == "majority" else 0.31),
                                                        (1.0, 2.5, 0.22 if m == "majority" else 0.47))]
                                    for m in ("majority", "tfidf_svm")}
    frames = {
        "labels": FRAMES, "level": "project", "n_paragraphs": 5, "folds": 4, "degenerate": {},
        "models": {m: model_result(["micro_f1", "macro_f1", "hamming_loss", "subset_accuracy"], FRAMES, v,
                                   {"humanitarian": 3, "security": 3})
                   for m, v in (("majority", 0.0), ("tfidf_svm", 0.4))},
        "paired": [],
    }
    metrics = {"config": name, "protocol": protocol, "tasks": {"stance": stance, "frames": frames}}
    meta = {
        "run_id": run_dir.name, "config": name, "command": "python -m experiments run", "seed": 13,
        "data": {"source": "gold", "fingerprint": fingerprint, "n_paragraphs": 5, "codebook_version": "1.0.0"},
        "git": {"commit": "0123456789abcdef", "dirty": False}, "python": "3.11", "platform": "linux", "packages": {},
        "lock": {"file": "constraints.txt", "sha256": "x", "differs": {}},
        "started": "2026-01-01T00:00:00+00:00", "finished": "2026-01-01T00:00:03+00:00", "wall_seconds": 3.0,
        "tasks": {t: {"seconds_per_model": {"majority": 0.0, "tfidf_svm": 0.1}, "folds": 4, "mean_train_size": 2.5}
                  for t in ("stance", "frames")},
    }
    (run_dir / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    records = stance_records() + frame_records()
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (run_dir / "texts.jsonl").write_text(
        "".join(json.dumps({"id": i, "doc_id": d, "text": t}) + "\n" for i, (d, t) in TEXTS.items()), encoding="utf-8")
    top = {"stance": {"tfidf_svm": {l: [[f"{l} word", 0.5], ["shared", 0.25]] for l in STANCE}}}
    (run_dir / "top_features.json").write_text(json.dumps(top), encoding="utf-8")
    for name_ in ("confusion_tfidf_svm.png", "model_comparison.png", "learning_curve.png", "mystery.png"):
        (run_dir / "plots" / "stance" / name_).write_bytes(PNG)
    return run_dir


@pytest.fixture
def run(tmp_path):
    return write_run(tmp_path / "results")


@pytest.fixture
def lodo(tmp_path):
    config = {**CONFIG, "name": "lodo_run", "protocol": {**CONFIG["protocol"], "name": "lodo"},
              "metrics": {**CONFIG["metrics"], "bootstrap_unit": "document"},
              "models": [CONFIG["models"][0], {"name": "tfidf_svm", "label": None, "params": {"C": 0.5}}]}
    protocol = {"name": "lodo", "group_column": "doc_id",
                "bootstrap": {"resamples": 1000, "confidence": 0.95, "unit": "document"},
                "paired_test": "paired bootstrap on the same resamples, two-sided"}
    return write_run(tmp_path / "results", "lodo_run", config=config, protocol=protocol, curve=False)


def test_a_report_goes_into_the_first_run_directory_as_html_and_markdown(run, lodo):
    html_path, md_path = write_report([run, lodo])
    assert (html_path, md_path) == (run / "report.html", run / "report.md")
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md_path.read_text(encoding="utf-8").startswith("# Run report: kfold_run vs lodo_run\n")


def test_out_names_both_files(run, tmp_path):
    html_path, md_path = write_report([run], out=tmp_path / "reports" / "compare.html")
    assert (html_path, md_path) == (tmp_path / "reports" / "compare.html", tmp_path / "reports" / "compare.md")
    assert html_path.is_file() and md_path.is_file()


def test_the_page_is_self_contained(run, lodo):
    page = write_report([run, lodo])[0].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert len(sources) == 2 * 4  # every PNG of both runs, once
    # Embedded losslessly (as WebP where that is smaller): the same pixels as the plot file.
    assert all(re.match(r"data:image/(png|webp);base64,", s) for s in sources)
    assert all(pixels(base64.b64decode(s.split(",", 1)[1])) == pixels(PNG) for s in sources)


def test_the_markdown_links_the_plots_relative_to_itself(run, tmp_path):
    md_path = write_report([run], out=tmp_path / "elsewhere" / "r.html")[1]
    targets = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_path.read_text(encoding="utf-8"))
    assert targets and all(not os.path.isabs(t) for t in targets)
    assert all((md_path.parent / t).resolve().is_file() for t in targets)


def test_plots_come_in_a_fixed_order_with_captions_and_a_generic_one_for_unknown_files(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    order = [m.group(1) for m in re.finditer(r"!\[[^\]]*\]\(plots/stance/([^)]+)\)", md)]
    assert order == ["learning_curve.png", "model_comparison.png", "confusion_tfidf_svm.png", "mystery.png"]
    assert "*Confusion matrix of tfidf_svm, normalised per gold stance label" in md
    assert "*stance: mystery (a plot this report has no description for).*" in md


def test_no_absolute_path_in_the_page_or_the_markdown(run, lodo, tmp_path):
    # Run directories given as absolute paths, the report written elsewhere: every path it shows or links is
    # relative to the report's folder, and leads to the file or folder it names.
    assert run.is_absolute()
    for options in ({}, {"images": "link"}):  # plots embedded (the default), or linked
        html_path, md_path = write_report([run, lodo], out=tmp_path / "reports" / "compare.html", **options)
        page, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
        assert str(tmp_path) not in page and str(tmp_path) not in md
        targets = re.findall(r'(?:href|src)="([^"#][^"]*)"', page) + re.findall(r"\]\(<?([^)#>][^)>]*)>?\)", md)
        targets = [t for t in targets if not t.startswith("data:")]
        assert len(targets) >= 2 + 2  # the two run directories in the page and in the Markdown at least
        for target in targets:
            assert not os.path.isabs(unquote(target)), target
            assert (html_path.parent / unquote(target)).exists(), target
    assert "Run directories (relative to this report): kfold_run [`../results/kfold_run/20260101-000000-abcdef`]" in md


def test_the_stance_subset_column_is_named_after_the_labels_it_averages(tmp_path):
    config = {**CONFIG, "metrics": {**CONFIG["metrics"], "stance_subset": ["against", "neutral"]}}
    run = write_run(tmp_path / "results", config=config)
    header = next(line for line in summary_markdown(run).splitlines() if line.startswith("| model | n | accuracy"))
    assert header.split(" | ")[4] == "macro-F1 (against, neutral)"
    assert "favor, against" not in summary_markdown(run)
    # A label the task does not have is not averaged, so it is not named either.
    config = {**CONFIG, "metrics": {**CONFIG["metrics"], "stance_subset": ["pro", "favor"]}}
    other = write_run(tmp_path / "other", config=config)
    assert "| macro-F1 (favor) |" in summary_markdown(other)


def details(page: str) -> list[str]:
    return re.findall(r"<details(?: open)?><summary>.*?</details>", page, flags=re.DOTALL)


def test_the_long_parts_fold_away_and_the_headings_stay_in_the_contents(run, lodo):
    html_path, md_path = write_report([run, lodo])
    page = html_path.read_text(encoding="utf-8")
    folded = details(page)
    assert any("<h4 id=\"most-confident-mistakes\">" in d and "Strikes &lt;b&gt;now" in d for d in folded)
    assert any("favor (n=4)" in d and "not estimable" in d for d in folded)  # a per-label table
    assert any("models.tfidf_svm.params.C" in d for d in folded)  # the config diff
    assert any("Confusion matrices, one per model" in d and "<img" in d for d in folded)
    assert not any("<h2" in d or "<h3" in d for d in folded)  # every contents entry stays visible
    links = re.findall(r'<nav class="toc">.*?</nav>', page, flags=re.DOTALL)[0]
    inline = re.findall(r'<details class="toc-inline">.*?</details>', page, flags=re.DOTALL)[0]
    anchors = re.findall(r'href="#([^"]+)"', links)
    assert anchors and anchors == re.findall(r'href="#([^"]+)"', inline)  # the same contents on a narrow screen
    assert all(f'id="{a}"' in page for a in anchors)
    assert "<details><summary>" in md_path.read_text(encoding="utf-8")


def test_the_runs_plots_stand_side_by_side(run, lodo):
    page = write_report([run, lodo])[0].read_text(encoding="utf-8")
    grids = re.findall(r'<figure class="compare">.*?</figure></div></figure>|<figure class="compare">.*?</figcaption></figure>',
                       page, flags=re.DOTALL)
    comparison = [g for g in grids if "stance/model_comparison.png" in g]
    assert len(comparison) == 1
    assert re.findall(r'<div class="run">([^<]+)</div><img', comparison[0]) == ["kfold_run", "lodo_run"]


def realistic_plots(run_dir: Path, seed: int) -> list[Path]:
    """Replace the run's 1-pixel PNGs with plots drawn as experiments.plots draws them."""
    import matplotlib.pyplot as plt
    import numpy as np

    from experiments import plots  # noqa: F401  (its matplotlib settings)

    rng = np.random.default_rng(seed)
    paths = sorted((run_dir / "plots" / "stance").glob("*.png"))
    for k, path in enumerate(paths):
        fig, ax = plt.subplots(figsize=(7, 5.5))
        if k % 2:
            share = rng.dirichlet(np.ones(6), size=6)
            image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
            for i in range(6):
                for j in range(6):
                    ax.text(j, i, f"{share[i, j]:.2f}\n({rng.integers(30)})", ha="center", va="center", fontsize=10)
            fig.colorbar(image, ax=ax).set_label("share of the gold row (0–1)")
        else:
            x = np.linspace(0, 1, 6)
            for m, colour in enumerate(["#999999", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#E69F00", "#000000"]):
                y = np.clip(0.2 + 0.05 * m + 0.3 * x * rng.random(), 0, 1)
                ax.fill_between(x, y - 0.1, y + 0.1, color=colour, alpha=0.15, lw=0)
                ax.plot(x, y, "-o", color=colour, label=f"model {m}")
            ax.legend(ncol=2)
        ax.set_title(f"plot {k}: a title\nand a subtitle · n = 60 paragraphs")
        fig.savefig(path)
        plt.close(fig)
    return paths


def test_the_page_embeds_each_plot_once_in_far_fewer_bytes(run, lodo):
    # The page used to embed every PNG as it is (base64; 100% of it, the coverage plot twice). Now each plot
    # is in it once, as lossless WebP: the same pixels in 38% of matplotlib's PNG bytes over the reference
    # runs' plots, 54% over these denser test plots; 70% leaves room for other libwebp versions and still
    # fails any page that embeds the PNGs as they are.
    files = realistic_plots(run, 1) + realistic_plots(lodo, 2)
    page = write_report([run, lodo])[0].read_text(encoding="utf-8")
    sources = re.findall(r'<img src="(data:[^"]*)"', page)
    assert len(sources) == len(files) == 8
    as_is = sum(len(base64.b64encode(f.read_bytes())) for f in files)
    embedded = sum(len(s) for s in sources)
    assert embedded < 0.7 * as_is, (embedded, as_is)
    assert len(page) - embedded < 150_000  # the rest of the page: text, tables and style
    # Lossless: each embedded image has exactly the pixels of one plot file.
    decoded = sorted(pixels(base64.b64decode(s.split(",", 1)[1])) for s in sources)
    assert decoded == sorted(pixels(f.read_bytes()) for f in files)


def test_paragraph_text_is_escaped(run):
    html_path, md_path = write_report([run])
    page = html_path.read_text(encoding="utf-8")
    assert "Strikes &lt;b&gt;now&lt;/b&gt; &amp; then." in page and "<b>now" not in page
    assert "Strikes &lt;b>now&lt;/b> & then." in md_path.read_text(encoding="utf-8")


def test_the_config_diff_lists_exactly_the_keys_that_differ(run, lodo):
    configs = [yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")) for d in (run, lodo)]
    assert differences(configs) == [
        ("name", ["kfold_run", "lodo_run"]),
        ("protocol.name", ["kfold", "lodo"]),
        ("metrics.bootstrap_unit", ["paragraph", "document"]),
        ("models.tfidf_svm.params.C", [1.0, 0.5]),
    ]
    md = write_report([run, lodo])[1].read_text(encoding="utf-8")
    section = md.split("## Configs and data")[1].split("\n## ")[0]
    keys = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert keys == ["name", "protocol.name", "metrics.bootstrap_unit", "models.tfidf_svm.params.C"]
    assert "| `models.tfidf_svm.params.C` | `1.0` | `0.5` |" in section


def test_a_section_missing_from_one_config_is_one_key():
    assert differences([{"seed": 1, "protocol": {"learning_curve": None}},
                        {"seed": 1, "protocol": {"learning_curve": {"fractions": [0.5]}}, "extra": True}]) == [
        ("protocol.learning_curve", [None, {"fractions": [0.5]}]),
        ("extra", ["(absent)", True]),
    ]


def test_runs_on_different_data_are_flagged(run, tmp_path):
    other = write_run(tmp_path / "other", "other_run", fingerprint="fp-2")
    page = write_report([run, other])[0].read_text(encoding="utf-8")
    assert '<p class="warning"><strong>These runs used different data</strong>' in page
    assert "The data fingerprints differ:" in page
    same = write_report([run, write_run(tmp_path / "same", "same_run")])[0].read_text(encoding="utf-8")
    assert "different data" not in same and "All runs used the same data (same fingerprint)." in same


def test_a_p_value_of_zero_reads_as_below_one_over_the_resamples(run):
    assert fmt_p(0.0, 1000) == "< 0.001"
    md = write_report([run])[1].read_text(encoding="utf-8")
    assert "- tfidf_svm beats majority by 0.37 macro-F1 [0.26, 0.45], p < 0.001\n" in md
    assert "| tfidf_svm | majority | macro-F1 | 0.37 [0.26, 0.45] | p < 0.001 | ● |" in md
    assert "| tfidf_svm | majority | accuracy | 0.20 [-0.05, 0.40] | p = 0.21 |  |" in md
    assert "p = 0.000" not in md


def test_the_most_confident_mistake_is_the_wrong_prediction_with_the_highest_probability(run):
    records = [r for r in stance_records() if r["model"] == "tfidf_svm" and r["repeat"] == 0
               and "fraction" not in r]
    assert [(r["id"], r["pred"]) for r in most_confident_mistakes(records)] == [("p2", "none"), ("p3", "favor")]
    md = write_report([run])[1].read_text(encoding="utf-8")
    errors = md.split("### kfold_run · stance", 2)[2].split("#### Per document")[0]
    rows = [line for line in errors.splitlines() if re.match(r"\| \d+ \|", line)]
    # p4's 0.95 mistake is in repeat 1 and p5's 0.99 one is a learning-curve prediction: neither counts.
    assert rows == [
        "| 1 | `p2` · d1 | Strikes &lt;b>now&lt;/b> & then. | against | **none** | 0.90 | 0.03 |",
        "| 2 | `p3` · d1 | Nothing to see. | none | **favor** | 0.60 | 0.13 |",
    ]


def test_frame_mistakes_are_confident_false_positives_and_unconfident_false_negatives(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    frames = md.split("### kfold_run · frames", 2)[2]
    fp = frames.split("#### Most confident false positives")[1].split("####")[0]
    fn = frames.split("#### Least confident false negatives")[1].split("####")[0]
    assert re.findall(r"^\| \d+ \| `(p\d)`.*\| \*\*(\w+)\*\* \| ([\d.]+) \|", fp, flags=re.MULTILINE) == [
        ("p3", "security", "0.80"), ("p2", "humanitarian", "0.70")]
    assert re.findall(r"^\| \d+ \| `(p\d)`.*\| \*\*(\w+)\*\* \| ([\d.]+) \|", fn, flags=re.MULTILINE) == [
        ("p4", "security", "0.05"), ("p2", "security", "0.20")]


def test_per_document_accuracy_pools_the_repeats(run):
    records = [r for r in stance_records() if "fraction" not in r]
    scores = per_document_scores(records, "stance")
    assert scores["tfidf_svm"] == {"d1": (3, 3 / 6), "d2": (2, 3 / 4)}
    assert scores["majority"] == {"d1": (3, 2 / 6), "d2": (2, 2 / 4)}
    md = write_report([run])[1].read_text(encoding="utf-8")
    table = md.split("#### Per document (accuracy", 1)[1].split("\n\n")[1]
    assert table.splitlines()[2:] == ["| `d1` | 3 | 0.33 | 0.50 |", "| `d2` | 2 | 0.50 | 0.75 |",
                                      "| **all documents** | **5** | **0.40** | **0.60** |"]


def test_per_document_micro_f1_for_frames():
    records = [r for r in frame_records() if r["model"] == "tfidf_svm"]
    # d1: tp 1 (p1), fp 2 (p2 humanitarian, p3 security), fn 1 (p2 security) -> 2/(2+3); d2: tp 1, fn 1 -> 2/3
    assert per_document_scores(records, "frames")["tfidf_svm"] == {"d1": (3, 2 / 5), "d2": (2, 2 / 3)}


def test_labels_too_rare_to_score_read_not_estimable(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    per_label = md.split("## Per-label F1")[1].split("### kfold_run · frames")[0]
    assert "| model | favor (n=4) | against (n=2) | neutral (n=0) | none (n=4) |" in per_label
    assert "| tfidf_svm | 0.50 [0.20, 0.80] | not estimable | not estimable | 0.50 [0.20, 0.80] |" in per_label


def test_learning_curves_are_tabled_by_fraction(run, lodo):
    md = write_report([run, lodo])[1].read_text(encoding="utf-8")
    curves = md.split("## Learning curves")[1].split("\n## ")[0]
    assert "| model | 50% (n=1) | 100% (n=2.5) |" in curves
    assert "| tfidf_svm | 0.31 [0.21, 0.41] | 0.47 [0.37, 0.57] |" in curves
    assert "No learning curve in **lodo_run**" in curves


def test_a_folder_that_is_not_a_run_is_refused_with_a_hint(tmp_path):
    (tmp_path / "meta.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        write_report([tmp_path])
    assert str(caught.value) == f"{tmp_path}: not a run directory (no metrics.json); pass a directory printed by `run`"
    with pytest.raises(UserError) as caught:
        write_report([tmp_path / "missing"])
    assert str(caught.value) == (f"{tmp_path / 'missing'}: not a run directory (folder not found); "
                                 "pass a directory printed by `run`")


def test_the_config_diff_of_the_report_and_the_comparison_of_reproduce_are_one_walk():
    old = {"a": [1, {"b": 2}], "ci": [0.2, 0.6], "c": 3, "gone": 1}
    new = {"a": [1, {"b": 5}], "ci": [0.2, 0.7], "c": 3, "added": 2}
    assert differences([old, new]) == [("a.1.b", [2, 5]), ("ci", [[0.2, 0.6], [0.2, 0.7]]),
                                       ("gone", [1, "(absent)"]), ("added", ["(absent)", 2])]


def test_the_summary_names_the_protocol_the_significant_tests_and_the_learning_curve(run):
    summary = summary_markdown(run)
    assert "- protocol: stratified 2-fold cross-validation × 2 repeats; 95% CIs from 1000 paragraph-level" in summary
    assert ("Paired bootstrap tests: 1 of 2 comparisons differ at p < 0.05 (better model first; the rest could be "
            "resampling noise):\n\n- tfidf_svm beats majority by 0.37 macro-F1 [0.26, 0.45], p < 0.001\n") in summary
    assert "| model | 50% (n=1) | 100% (n=2.5) |\n|---|---|---|\n| majority | 0.21 [0.11, 0.31] |" in summary
    assert "- [learning curve](plots/stance/learning_curve.png)" in summary


def test_a_summary_without_paired_tests_or_curve_leaves_them_out(lodo):
    metrics = json.loads((lodo / "metrics.json").read_text(encoding="utf-8"))
    for info in metrics["tasks"].values():
        info.pop("paired")
    (lodo / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    summary = summary_markdown(lodo)
    assert "Paired bootstrap" not in summary and "Learning curve" not in summary


def test_the_readme_section_holds_scores_paired_tests_between_trained_models_and_learning_curves(run, tmp_path):
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    metrics["tasks"]["stance"]["models"]["tfidf_cnb"] = metrics["tasks"]["stance"]["models"]["tfidf_svm"]
    metrics["tasks"]["stance"]["paired"] = PAIRED + [
        {"a": "tfidf_svm", "b": "tfidf_cnb", "metric": "macro_f1", "diff": 0.12, "ci": [0.03, 0.21], "p": 0.016,
         "resamples": 1000},
        {"a": "tfidf_cnb", "b": "majority", "metric": "macro_f1", "diff": 0.1, "ci": [-0.01, 0.2], "p": 0.08,
         "resamples": 1000},
    ]
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    table = paired_table([run]).splitlines()
    assert table[2] == "| kfold_run | stance | tfidf_svm | tfidf_cnb | 0.12 [0.03, 0.21] | 0.016 | yes |"
    assert len([line for line in table if line.startswith("| kfold_run")]) == 1  # pairs with a chance baseline are left out
    assert table[-1] == "- kfold_run, stance: tfidf_svm beats the majority baseline (p < 0.05); tfidf_cnb does not."
    section = readme_results([run])
    assert section.startswith("| config | task | model |")
    assert f"![stance learning curve, kfold_run]({run / 'plots' / 'stance' / 'learning_curve.png'})" in section


def test_the_readme_puts_each_protocol_side_by_side_and_names_the_model_predict_uses(run, tmp_path):
    lodo = tmp_path / "results" / "lodo_run" / run.name
    shutil.copytree(run, lodo)
    metrics = json.loads((lodo / "metrics.json").read_text(encoding="utf-8"))
    metrics["config"] = "lodo_run"
    metrics["protocol"] = {**metrics["protocol"], "name": "lodo", "group_column": "doc_id"}
    info = metrics["tasks"]["stance"]
    info["selection"] = {"model": "tfidf_svm", "metric": "macro_f1", "value": 0.31, "ci": [0.2, 0.4], "n": 60,
                         "protocol": "lodo", "transfer": True}
    (lodo / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    unsaved = readme_results([lodo, run])  # a run without final_fit saves no models: predict never reads it
    assert ": `predict` uses" not in unsaved and "| tfidf_svm | **" not in unsaved
    config = yaml.safe_load((lodo / "config.yaml").read_text(encoding="utf-8")) or {}
    (lodo / "config.yaml").write_text(yaml.safe_dump({**config, "final_fit": True}), encoding="utf-8")
    section = readme_results([lodo, run])
    stance_table = section.split("| frames |")[0]
    svm = [line for line in stance_table.splitlines() if line.startswith("| tfidf_svm |")]
    assert len(svm) == 1 and svm[0].count("**") == 2  # both protocols' scores, the lodo one bold: predict uses it
    assert "- lodo_run, stance: `predict` uses **tfidf_svm (macro-F1 0.31 [0.20, 0.40], n=60, leave-one-document-out)**." in section
