"""Plots: the files a run directory gets, the records each plot reads, what a reader sees in them (counts in
the confusion cells, one colour per model everywhere, value labels clear of the axis, a panel per model in the
learning curve), and the calibration error."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer

from experiments import plots
from experiments.config import Config
from experiments.errors import UserError
from experiments.evaluate import task_metrics
from experiments.metrics import calibration_bins
from experiments.plots import draw_plots

# Six paragraphs in two documents, tested once per repeat over two folds x two repeats.
STANCE_LABELS = ["favor", "against", "neutral", "none"]
FRAME_LABELS = ["humanitarian", "security", "economic"]
GOLD = {  # id: (document, stance, frames)
    "p0": ("d0", "favor", ["humanitarian"]),
    "p1": ("d0", "favor", ["humanitarian", "security"]),
    "p2": ("d0", "none", []),
    "p3": ("d1", "against", ["security"]),
    "p4": ("d1", "none", []),
    "p5": ("d1", "none", ["economic"]),
}
MODELS = ["majority", "logreg"]
PER_TASK = ["calibration.png", "confusion_logreg.png", "confusion_majority.png", "label_distribution.png",
            "model_comparison.png", "per_label_f1.png"]


def stance_record(model: str, k: int, pid: str, repeat: int) -> dict:
    doc, gold, _ = GOLD[pid]
    pred = "none" if model == "majority" or k % 2 else gold  # logreg is right on every other paragraph
    proba = {label: 0.1 for label in STANCE_LABELS} | {pred: 0.7}
    if model == "majority":
        proba = {label: float(label == "none") for label in STANCE_LABELS}
    return {"task": "stance", "model": model, "repeat": repeat, "fold": (k + repeat) % 2, "id": pid, "doc_id": doc,
            "gold": gold, "pred": pred, "proba": proba, "n_train": 3}


def frames_record(model: str, k: int, pid: str, repeat: int) -> dict:
    doc, _, gold = GOLD[pid]
    pred = [] if model == "majority" else gold[:1]
    proba = {f: 0.1 if model == "majority" else (0.8 if f in gold else 0.3) for f in FRAME_LABELS}
    return {"task": "frames", "model": model, "repeat": repeat, "fold": (k + repeat) % 2, "id": pid, "doc_id": doc,
            "gold": gold, "pred": pred, "proba": proba, "n_train": 3}


def curve_record(record: dict) -> dict:
    """A learning-curve prediction for the same paragraph, with a prediction no main record makes."""
    pred = "neutral" if record["task"] == "stance" else ["economic"]
    return record | {"pred": pred, "proba": {k: 0.95 for k in record["proba"]}, "n_train": 1,
                     "fraction": 0.5, "curve_repeat": 0}


def write_run(directory: Path, curve: bool) -> Path:
    """A run directory with metrics.json and predictions.jsonl scored from the inline predictions above.

    Built by hand rather than trained: the tests below expect counts and probabilities worked out from these six
    paragraphs, and learning-curve records placed first in the file."""
    main = [make(model, k, pid, repeat)
            for make in (stance_record, frames_record) for model in MODELS for repeat in (0, 1)
            for k, pid in enumerate(GOLD)]
    # Learning-curve records come first: no plot may rely on their place in the file.
    predictions = [curve_record(r) for r in main if r["repeat"] == 0] + main if curve else main
    protocol = {"name": "kfold", "folds": 2, "repeats": 2}
    if curve:
        protocol["learning_curve"] = {"fractions": [0.5], "repeats": 1}
    config = Config(name="tiny", tasks=["stance", "frames"], protocol=protocol, metrics={"bootstrap": 100},
                    models=[{"name": "majority"}, {"name": "tfidf_logreg", "label": "logreg"}])
    tasks = {}
    for task, labels in (("stance", STANCE_LABELS), ("frames", FRAME_LABELS)):
        tasks[task] = {"labels": labels, "n_paragraphs": len(GOLD), "folds": 4, "degenerate": {},
                       **task_metrics(predictions, task, labels, config)}
    metrics = {"config": "tiny", "protocol": protocol | {"bootstrap": {"resamples": 100, "confidence": 0.95, "unit": "paragraph"}},
               "tasks": tasks}
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (directory / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def run_with_curve(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("runs") / "curve", curve=True)


@pytest.fixture(scope="module")
def run_without_curve(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("runs") / "plain", curve=False)


def plot_files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in (run_dir / "plots").rglob("*") if p.is_file())


# Which files are drawn. ----------------------------------------------------------------------------

def test_a_run_with_a_learning_curve_gets_every_plot_per_task_and_a_learning_curve(drawn):
    run_dir, written, _, _ = drawn
    expected = sorted(f"plots/{task}/{name}" for task in ("stance", "frames")
                      for name in [*PER_TASK, "learning_curve.png"])
    assert sorted(str(p.relative_to(run_dir)) for p in written) == expected
    assert plot_files(run_dir) == expected
    assert all(p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for p in written)


def test_a_run_without_a_learning_curve_gets_no_learning_curve_plot(run_without_curve, tmp_path):
    run_dir = shutil.copytree(run_without_curve, tmp_path / "run")
    assert "learning_curve" not in json.loads((run_dir / "metrics.json").read_text())["tasks"]["stance"]
    draw_plots(run_dir)
    assert plot_files(run_dir) == sorted(f"plots/{task}/{name}" for task in ("stance", "frames") for name in PER_TASK)


def test_draw_plots_writes_the_same_files_with_the_same_bytes_every_time(drawn, run_with_curve, tmp_path):
    first, written, _, _ = drawn
    second = shutil.copytree(run_with_curve, tmp_path / "second")
    assert [p.relative_to(second) for p in draw_plots(second)] == [p.relative_to(first) for p in written]
    assert plot_files(second) == plot_files(first)
    for path in written:
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes(), path


def test_a_directory_without_metrics_is_refused_with_a_hint(tmp_path):
    with pytest.raises(UserError) as error:
        draw_plots(tmp_path)
    assert str(error.value) == f"{tmp_path}: not a run directory (no metrics.json); pass a directory printed by `run`"


# What each plot reads. -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drawn(run_with_curve, tmp_path_factory):
    """A copy of the run with a learning curve, drawn once: its directory, the paths written, the tables
    (by function and task) that draw_plots computed from the predictions while drawing, and the figures
    it saved (by task and file name)."""
    run_dir = shutil.copytree(run_with_curve, tmp_path_factory.mktemp("drawn") / "run")
    tables: dict[tuple[str, str], list] = {}
    figures: dict[tuple[str, str], object] = {}

    def spy(name):
        original = getattr(plots, name)

        def wrapper(task, labels, records):
            result = original(task, labels, records)
            tables.setdefault((name, task), []).append(result)
            return result

        return wrapper

    save = plots._save

    def keep(fig, path):
        figures[(path.parent.name, path.name)] = fig
        return save(fig, path)

    with pytest.MonkeyPatch.context() as patch:
        for name in ("confusion_counts", "label_counts", "calibration_pairs"):
            patch.setattr(plots, name, spy(name))
        patch.setattr(plots, "_save", keep)
        written = draw_plots(run_dir)
    return run_dir, written, tables, figures


@pytest.fixture
def tables(drawn):
    return drawn[2]


@pytest.fixture
def figures(drawn):
    return drawn[3]


def test_the_confusion_matrices_count_each_main_prediction_once(tables):
    # 6 paragraphs x 2 repeats per model; the learning curve's "neutral" predictions are absent.
    stance = tables[("confusion_counts", "stance")]
    assert [names for names, _ in stance] == [STANCE_LABELS, STANCE_LABELS]
    majority, logreg = (counts.tolist() for _, counts in stance)
    assert majority == [[0, 0, 0, 4], [0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 6]]
    # logreg is right on p0 (favor), p2 and p4 (none), and predicts none for p1, p3, p5.
    assert logreg == [[2, 0, 0, 2], [0, 0, 0, 2], [0, 0, 0, 0], [0, 0, 0, 6]]
    frames_logreg = tables[("confusion_counts", "frames")][1]
    assert frames_logreg[0] == [*FRAME_LABELS, "(no frame)"]
    # (gold frame, predicted frame) pairs: p1 counts in the humanitarian and the security row. The
    # learning curve's ["economic"] predictions would fill the economic column.
    assert frames_logreg[1].tolist() == [[4, 0, 0, 0], [2, 2, 0, 0], [0, 0, 2, 0], [0, 0, 0, 4]]


def test_the_calibration_reads_each_main_prediction_once(tables):
    stance_majority, stance_logreg = tables[("calibration_pairs", "stance")]
    assert stance_majority[0].tolist() == [1.0] * 12
    assert stance_majority[1].tolist() == [0, 0, 1, 0, 1, 1] * 2
    assert stance_logreg[0].tolist() == [0.7] * 12
    assert stance_logreg[1].tolist() == [1, 0, 1, 0, 1, 1] * 2
    frames_majority, frames_logreg = tables[("calibration_pairs", "frames")]
    assert len(frames_majority[0]) == len(frames_logreg[0]) == 6 * 2 * len(FRAME_LABELS)
    assert 0.95 not in frames_logreg[0]  # the learning-curve records' probability


def test_the_label_distribution_counts_each_paragraph_once(tables):
    # Every plot that counts gold labels (the distribution, the confusion row labels) gets the same table.
    stance = {(tuple(docs), tuple(names), str(counts.tolist())) for docs, names, counts in tables[("label_counts", "stance")]}
    assert stance == {(("d0", "d1"), tuple(STANCE_LABELS), "[[2, 0, 0, 1], [0, 1, 0, 2]]")}
    frames = {(tuple(docs), tuple(names), str(counts.tolist())) for docs, names, counts in tables[("label_counts", "frames")]}
    assert frames == {(("d0", "d1"), (*FRAME_LABELS, "(no frame)"), "[[2, 1, 0, 1], [0, 1, 1, 1]]")}


# What a reader sees. -------------------------------------------------------------------------------

def cell_texts(fig) -> list[list[str]]:
    """The texts in a confusion matrix's cells, row by row."""
    ax = fig.axes[0]
    n = len(ax.get_xticks())
    texts = [t.get_text() for t in ax.texts]
    return [texts[i * n:(i + 1) * n] for i in range(n)]


def test_each_confusion_cell_shows_its_share_and_its_count(figures):
    # logreg's stance counts (test above), pooled over two repeats: the favor row is 2 right, 2 "none".
    assert cell_texts(figures[("stance", "confusion_logreg.png")]) == [
        ["0.50\n(2)", "0.00\n(0)", "0.00\n(0)", "0.50\n(2)"],
        ["0.00\n(0)", "0.00\n(0)", "0.00\n(0)", "1.00\n(2)"],
        ["–", "–", "–", "–"],  # no gold neutral paragraph: no share to show
        ["0.00\n(0)", "0.00\n(0)", "0.00\n(0)", "1.00\n(6)"],
    ]
    # Frames count (gold frame, predicted frame) pairs: p1 is in the humanitarian and the security row.
    frames = cell_texts(figures[("frames", "confusion_logreg.png")])
    assert frames[1][:2] == ["0.50\n(2)", "0.50\n(2)"]
    assert frames[3][3] == "1.00\n(4)"


def bar_colours(fig) -> dict[str, str]:
    return {c.get_label(): to_hex(c.patches[0].get_facecolor())
            for c in fig.axes[0].containers if isinstance(c, BarContainer)}


def point_colours(fig) -> dict[str, str]:
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_yticklabels()]
    return {names[round(c.lines[0].get_ydata()[0])]: to_hex(c.lines[0].get_color())
            for c in ax.containers if isinstance(c, ErrorbarContainer)}


def panel_colours(fig) -> dict[str, str]:
    """Calibration and learning-curve panels: the panel's model (its title) and its first coloured line."""
    out = {}
    for ax in fig.axes:
        model = ax.get_title().split("\n")[0].removesuffix(" (baseline)")
        lines = [to_hex(line.get_color()) for line in ax.get_lines()
                 if to_hex(line.get_color()) not in ("#777777", "#d4d4d4")]
        if model and lines:
            out[model] = lines[0]
    return out


def test_a_model_has_one_colour_in_every_plot_and_every_run(figures, run_without_curve, tmp_path):
    # A second run lists the same models the other way round: colours follow the model, not its position.
    other = shutil.copytree(run_without_curve, tmp_path / "reversed")
    metrics = json.loads((other / "metrics.json").read_text(encoding="utf-8"))
    for info in metrics["tasks"].values():
        info["models"] = dict(reversed(info["models"].items()))
    (other / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    seen: dict[str, set[str]] = {}
    with pytest.MonkeyPatch.context() as patch:
        kept = {}
        save = plots._save
        patch.setattr(plots, "_save", lambda fig, path: kept.setdefault((path.parent.name, path.name), fig) and save(fig, path))
        draw_plots(other)
    for drawn in (figures, kept):
        for task in ("stance", "frames"):
            for colours in (bar_colours(drawn[(task, "per_label_f1.png")]),
                            point_colours(drawn[(task, "model_comparison.png")]),
                            panel_colours(drawn[(task, "calibration.png")])):
                assert set(colours) == set(MODELS)
                for model, colour in colours.items():
                    seen.setdefault(model, set()).add(colour)
    assert all(len(colours) == 1 for colours in seen.values()), seen
    assert seen["majority"] != seen["logreg"]
    # The learning curve's panels too.
    assert {m: {c} for m, c in panel_colours(figures[("stance", "learning_curve.png")]).items()} == seen
    # A registered model's colour is fixed, whatever else the run holds.
    assert plots.model_colours(["embed_logreg"]) == {"embed_logreg": plots.MODEL_COLOURS["embed_logreg"]}
    assert plots.model_colours(["x", "majority", "embed_logreg"])["embed_logreg"] == plots.MODEL_COLOURS["embed_logreg"]


def test_the_comparison_value_labels_stay_off_the_axis_and_inside_the_panel(figures):
    for task in ("stance", "frames"):
        fig = figures[(task, "model_comparison.png")]
        canvas = FigureCanvasAgg(fig)  # pyplot closed the figure after saving it
        canvas.draw()
        renderer = canvas.get_renderer()
        for ax in fig.axes:
            box = ax.get_window_extent(renderer)
            labels = [t for t in ax.texts if re.fullmatch(r"\d\.\d\d", t.get_text())]
            assert len(labels) == len(MODELS)
            for label in labels:
                extent = label.get_window_extent(renderer)
                # Clear of the y axis by a few pixels, and not past the right edge.
                assert extent.x0 > box.x0 + 3 and extent.x1 < box.x1, (task, label.get_text(), extent, box)


def test_the_learning_curve_gives_each_model_its_own_panel(figures):
    for task in ("stance", "frames"):
        fig = figures[(task, "learning_curve.png")]
        titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        assert titles == ["majority (baseline)", "logreg"]
        for ax in fig.axes:  # each panel: the model's two scores with their bands, drawn in the model's colour
            assert len(ax.collections) == 2


# The expected calibration error. -------------------------------------------------------------------

def test_calibration_bins_by_hand():
    # Bin 3: {0.3}, wrong; bin 6: {0.6}, right; bin 9: {0.9, 0.9}, one right.
    # ECE = 1/4·|0 − 0.3| + 1/4·|1 − 0.6| + 2/4·|0.5 − 0.9| = 0.075 + 0.1 + 0.2 = 0.375
    confidence, accuracy, counts, ece = calibration_bins([0.9, 0.9, 0.6, 0.3], [1, 0, 1, 0])
    assert counts.tolist() == [0, 0, 0, 1, 0, 0, 1, 0, 0, 2]
    assert confidence[[3, 6, 9]].tolist() == pytest.approx([0.3, 0.6, 0.9])
    assert accuracy[[3, 6, 9]].tolist() == [0.0, 1.0, 0.5]
    assert np.isnan(accuracy[[0, 1, 2, 4, 5, 7, 8]]).all() and np.isnan(confidence[0])
    assert ece == pytest.approx(0.375)


def test_a_calibrated_model_has_no_calibration_error_and_a_sure_wrong_one_the_most():
    assert calibration_bins([0.25] * 4, [1, 0, 0, 0])[3] == pytest.approx(0.0)
    assert calibration_bins([1.0, 0.0], [0, 1])[3] == 1.0


def test_probabilities_of_exactly_0_and_1_fall_in_the_first_and_last_bins():
    counts = calibration_bins([0.0, 0.1, 0.99, 1.0], [0, 0, 1, 1], bins=10)[2]
    assert counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]


def test_no_predictions_give_an_undefined_calibration_error():
    assert math.isnan(calibration_bins([], [])[3])
