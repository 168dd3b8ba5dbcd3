"""One experiment run: the run directory, determinism, no partial runs, training that never draws, and no
train/test leakage."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from experiments import importer, paths
from experiments.annotations import derive_gold, load_paragraphs
from experiments.codebook import load_codebook
from experiments.config import Config, load_config, smoke, to_yaml
from experiments.corpus import text_hash
from experiments.data import TaskData
from experiments.evaluate import evaluate_task, metrics_from_predictions
from experiments.io import read_jsonl
from experiments.plots import draw_plots
from experiments.run import run_experiment
from experiments.summary import summarise_run

TINY = f"""\
extends: {paths.CONFIGS / "base.yaml"}
description: two models, both tasks, 2 folds x 2 repeats
tasks: [stance, frames]
protocol: {{name: kfold, folds: 2, repeats: 2}}
metrics: {{bootstrap: 100}}
models:
  - name: majority
  - name: tfidf_logreg
    label: logreg small
    params: {{clf__C: 10.0, features__word_ngrams: [1, 1], features__char_ngrams: [3, 3]}}
"""
MODELS = ["majority", "logreg small"]
RUN_FILES = ["config.yaml", "meta.json", "metrics.json", "predictions.jsonl", "texts.jsonl", "top_features.json"]
PLOTS = [f"plots/{task}/{name}.png" for task in ("frames", "stance")
         for name in sorted(["confusion_majority", "confusion_logreg_small", "per_label_f1", "model_comparison",
                             "calibration", "coverage", "label_distribution"])]


def quiet(*_args):
    pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("configs") / "tiny.yaml"
    path.write_text(TINY, encoding="utf-8")
    return path


# Not the session's trained run (conftest run_dir): these tests need two runs of one config to compare, two repeats,
# and a labelled model whose display name ("logreg small") becomes file names; and training itself is what they check.
@pytest.fixture(scope="module")
def two_runs(tiny, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    first = run_experiment(tiny, results=results, progress=False, log=quiet)
    second = run_experiment(tiny, results=results, progress=False, log=quiet)
    return results, first, second


@pytest.fixture(scope="module")
def summarised(two_runs, tmp_path_factory):
    """A copy of the second run after the step that follows training: plots and summary.md."""
    copy = tmp_path_factory.mktemp("summarised") / two_runs[2].name
    shutil.copytree(two_runs[2], copy)
    summarise_run(copy)
    return copy


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_a_run_directory_holds_config_metrics_predictions_texts_and_meta_and_training_draws_nothing(two_runs):
    results, run_dir, _ = two_runs
    assert run_dir.parent == results / "tiny"
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", run_dir.name)
    assert files_under(run_dir) == RUN_FILES


def test_the_step_after_training_draws_the_plots_and_writes_the_summary_from_the_saved_files(two_runs, summarised):
    assert files_under(summarised) == sorted([*RUN_FILES, "summary.md", *PLOTS])
    assert all((summarised / p).stat().st_size > 0 for p in PLOTS)
    for name in RUN_FILES:  # it only adds files
        assert (summarised / name).read_bytes() == (two_runs[2] / name).read_bytes()


def test_the_saved_config_is_the_resolved_config_and_reloads_to_it(two_runs, tiny):
    run_dir = two_runs[1]
    config = load_config(tiny)
    assert (run_dir / "config.yaml").read_text(encoding="utf-8") == to_yaml(config)
    assert load_config(run_dir / "config.yaml") == config


def test_meta_records_what_produced_the_run(two_runs):
    run_dir = two_runs[1]
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["run_id"] == run_dir.name
    assert meta["config"] == "tiny"
    assert meta["seed"] == 13
    assert set(meta["git"]) == {"commit", "dirty"}
    assert set(meta["packages"]) >= {"numpy", "scipy", "scikit-learn", "datasets", "matplotlib", "pydantic"}
    assert meta["packages"]["scikit-learn"]
    assert re.fullmatch(r"[0-9a-f]{16}", meta["data"]["fingerprint"])
    assert meta["data"]["n_paragraphs"] == len(derive_gold(load_codebook(), load_paragraphs()).gold)
    for task in ("stance", "frames"):
        assert set(meta["tasks"][task]["seconds_per_model"]) == set(MODELS)
        assert meta["tasks"][task]["folds"] == 4
    assert meta["python"] and meta["started"] and meta["finished"]


def test_two_runs_get_two_directories_with_identical_results(two_runs):
    results, first, second = two_runs
    assert first != second
    assert sorted(p.name for p in (results / "tiny").iterdir()) == sorted([first.name, second.name])
    one = json.loads((first / "metrics.json").read_text(encoding="utf-8"))
    two = json.loads((second / "metrics.json").read_text(encoding="utf-8"))
    assert one["tasks"] == two["tasks"]
    assert (first / "predictions.jsonl").read_bytes() == (second / "predictions.jsonl").read_bytes()


def test_predictions_have_one_record_per_model_repeat_fold_and_test_paragraph(two_runs):
    run_dir = two_runs[1]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    predictions = [r for _, r in read_jsonl(run_dir / "predictions.jsonl")]
    for task in ("stance", "frames"):
        n = metrics["tasks"][task]["n_paragraphs"]
        records = [p for p in predictions if p["task"] == task]
        assert len(records) == len(MODELS) * 2 * n  # 2 repeats, every paragraph tested once per repeat
        per_key = Counter((p["model"], p["repeat"], p["id"]) for p in records)
        assert set(per_key.values()) == {1}
        assert {(m, r) for m, r, _ in per_key} == {(m, r) for m in MODELS for r in (0, 1)}
        assert {p["fold"] for p in records} == {0, 1}
        assert set(records[0]) == {"task", "model", "repeat", "fold", "id", "doc_id", "gold", "pred", "proba", "n_train"}
        assert set(records[0]["proba"]) == set(metrics["tasks"][task]["labels"])


def test_metrics_are_rescored_exactly_from_the_saved_predictions(two_runs, tiny):
    run_dir = two_runs[1]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    predictions = [r for _, r in read_jsonl(run_dir / "predictions.jsonl")]
    config = load_config(tiny)
    for task, info in metrics["tasks"].items():
        assert metrics_from_predictions(predictions, task, info["labels"], config) == info["models"]


def test_summary_names_the_run_and_every_model(summarised):
    summary = (summarised / "summary.md").read_text(encoding="utf-8")
    assert summary.startswith(f"# Run `{summarised.name}` of `tiny`\n")
    assert "stratified 2-fold cross-validation × 2 repeats; 95% CIs from 100 paragraph-level bootstrap resamples" in summary
    for model in MODELS:
        assert f"\n| {model} | " in summary


def test_draw_plots_redraws_the_same_files_from_a_saved_run(summarised, tmp_path):
    original = summarised
    copy = tmp_path / original.name
    shutil.copytree(original, copy)
    shutil.rmtree(copy / "plots")
    written = draw_plots(copy)
    assert sorted(str(p.relative_to(copy)) for p in written) == [f for f in files_under(original) if f.startswith("plots/")]
    for path in written:
        assert path.read_bytes() == (original / path.relative_to(copy)).read_bytes(), path


def test_a_failure_while_writing_leaves_no_run_directory(tiny, tmp_path, monkeypatch):
    def broken(record):
        raise RuntimeError("disk full")

    monkeypatch.setattr("experiments.run.dumps", broken)  # while writing predictions.jsonl
    with pytest.raises(RuntimeError, match="disk full"):
        run_experiment(tiny, ["models=[{name: majority}]", "tasks=[stance]"], results=tmp_path, progress=False, log=quiet)
    leftovers = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert leftovers in ([], ["tiny"])  # at most the (empty) folder of the config


def test_an_interrupted_run_leaves_an_earlier_run_untouched(two_runs, tmp_path, monkeypatch):
    earlier = tmp_path / "tiny" / two_runs[1].name
    shutil.copytree(two_runs[1], earlier)
    before = {f: (earlier / f).read_bytes() for f in files_under(earlier)}

    def interrupted(record):
        raise KeyboardInterrupt

    monkeypatch.setattr("experiments.run.dumps", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(paths.CONFIGS / "smoke.yaml", ["name=tiny", "tasks=[stance]", "models=[{name: majority}]"],
                       results=tmp_path, progress=False, log=quiet)
    assert [p.name for p in (tmp_path / "tiny").iterdir()] == [earlier.name]
    assert {f: (earlier / f).read_bytes() for f in files_under(earlier)} == before


# Leakage: a spy model records what it is trained on and asked to predict. ------------------------

class Spy:
    """A stance model that remembers its training and test texts and predicts class 0."""

    def __init__(self, log: list):
        self.log = log

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.log.append({"train": list(X), "test": []})
        return self

    def predict_proba(self, X):
        self.log[-1]["test"].extend(X)
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, 0] = 1
        return proba

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def leaky_data() -> TaskData:
    docs = [f"d{i // 5}" for i in range(20)]
    texts = [f"paragraph {i}" for i in range(20)]
    texts[7] = texts[2]  # d0's paragraph quoted in d1
    texts[13] = texts[12]  # a paragraph repeated inside d2
    texts[19] = texts[0]  # and d0's first paragraph quoted in d3
    return TaskData(task="stance", labels=["favor", "against"], ids=[f"p{i}" for i in range(20)], texts=texts,
                    doc_ids=np.array(docs), hashes=[text_hash(t) for t in texts], y=np.array([0, 1] * 10))


@pytest.mark.parametrize("protocol", [{"name": "kfold", "folds": 4, "repeats": 3}, {"name": "lodo"}, {"name": "group_kfold", "folds": 2}])
def test_no_model_is_asked_to_predict_a_text_it_was_trained_on(monkeypatch, protocol):
    log: list = []
    monkeypatch.setattr("experiments.evaluate.build_model", lambda *args, **kwargs: Spy(log))
    config = Config(name="leak", tasks=["stance"], protocol=protocol, metrics={"bootstrap": 100},
                    models=[{"name": "majority"}, {"name": "majority", "label": "second"}])
    result = evaluate_task(leaky_data(), config, progress=False)
    assert len(log) == result.folds * 2
    for fit in log:
        assert fit["test"] and set(fit["test"]).isdisjoint(fit["train"])


def test_a_training_part_with_a_single_stance_class_predicts_that_class_and_is_reported():
    # Leave-one-document-out over two documents whose paragraphs all have one stance each:
    # every training part holds a single class.
    texts = ["bombing must stop now", "no war on iran", "strikes kill civilians", "the world must act", "send help today", "protect the protesters"]
    data = TaskData(task="stance", labels=["favor", "against"], ids=[f"p{i}" for i in range(6)], texts=texts,
                    doc_ids=np.array(["d0"] * 3 + ["d1"] * 3), hashes=[text_hash(t) for t in texts],
                    y=np.array([1, 1, 1, 0, 0, 0]))
    config = Config(name="one-class", tasks=["stance"], protocol={"name": "lodo"}, metrics={"bootstrap": 100},
                    models=[{"name": "tfidf_logreg"}])
    result = evaluate_task(data, config, progress=False)
    assert result.degenerate == {"tfidf_logreg": {"(single-class training part)": 2}}
    # Trained on d1 (all favor) the model can only predict favor for d0, and vice versa.
    assert [(p["id"], p["pred"]) for p in result.predictions] == [
        ("p0", "favor"), ("p1", "favor"), ("p2", "favor"), ("p3", "against"), ("p4", "against"), ("p5", "against"),
    ]


# Every shipped config runs end to end in smoke mode, so none can rot. -----------------------------

# test_transformers.py runs these two in smoke mode with closer checks of every model family.
RUN_ELSEWHERE = {"codebook.yaml", "stance_transformers.yaml", "frames_transformers.yaml"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in paths.CONFIGS.glob("*.yaml") if p.name not in RUN_ELSEWHERE))
def test_every_shipped_config_runs_in_smoke_mode(name, tmp_path, monkeypatch):
    for aux in load_config(paths.CONFIGS / name).data.auxiliary:
        # Auxiliary datasets are not shipped (their terms may forbid it): a tiny table in their layout stands in.
        monkeypatch.setattr(paths, "IMPORTED", tmp_path / "imported")
        table = tmp_path / f"{aux.dataset}.tsv"
        labels = list(aux.label_map) or ["favor", "against", "none"]
        table.write_text("ID\tTarget\tTweet\tStance\n" + "".join(
            f"{i}\tTopic\tA short post number {i} about the topic.\t{labels[i % len(labels)]}\n" for i in range(12)),
            encoding="utf-8")
        importer.import_table(table, aux.dataset, importer.ImportOptions(
            text_column="Tweet", stance_column="Stance", target_column="Target", id_column="ID"), root=paths.IMPORTED)
    run_dir = run_experiment(paths.CONFIGS / name, results=tmp_path, progress=False, log=quiet, smoke_mode=True)
    summarise_run(run_dir)  # what `run` does next: every config's plots and summary are drawn too
    config = smoke(load_config(paths.CONFIGS / name))
    assert run_dir.parent.name == f"{load_config(paths.CONFIGS / name).name}-smoke"
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["protocol"]["bootstrap"]["resamples"] == 100
    assert list(metrics["tasks"]) == config.tasks
    for task in config.tasks:
        assert list(metrics["tasks"][task]["models"]) == [m.display for m in config.models]
        if config.protocol.name == "kfold":
            assert metrics["tasks"][task]["folds"] == 2
