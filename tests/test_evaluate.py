"""Evaluation beyond one number: learning curves, per-target stance models, paired tests, clustered bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.config import Config
from experiments.corpus import text_hash
from experiments.data import TaskData
from experiments.errors import UserError
from experiments.config import load_config
from experiments.evaluate import evaluate_task, fit_model, task_metrics
from experiments.models.features import TfidfFeatures
from experiments.metrics import bootstrap_weights, paired_tests

WORDS = {"favor": "support the strikes now", "against": "stop the war at once", "none": "the weather was mild"}


def stance_data(n: int = 40, targets: list[str] | None = None) -> TaskData:
    labels = ["favor", "against", "none"]
    y = np.array([i % 3 for i in range(n)])
    texts = [f"{WORDS[labels[c]]} item {i}" for i, c in enumerate(y)]
    return TaskData(
        task="stance", labels=labels, ids=[f"p{i:02d}" for i in range(n)], texts=texts,
        doc_ids=np.array([f"d{i // 8}" for i in range(n)]), hashes=[text_hash(t) for t in texts], y=y,
        targets=None if targets is None else np.array([targets[i % len(targets)] for i in range(n)]),
    )


def config(**overrides) -> Config:
    spec = {"name": "t", "tasks": ["stance"], "protocol": {"name": "kfold", "folds": 4, "repeats": 2},
            "metrics": {"bootstrap": 200, "stance_subset": ["favor", "against"]},
            "models": [{"name": "majority"}, {"name": "tfidf_logreg", "params": {"clf__C": 10.0}}]}
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and key in spec else value
    return Config.model_validate(spec)


def test_a_learning_curve_scores_each_fraction_on_the_first_repeats_test_parts():
    cfg = config(protocol={"learning_curve": {"fractions": [0.25, 0.5], "repeats": 2}})
    result = evaluate_task(stance_data(), cfg, progress=False)
    curve = [p for p in result.predictions if "fraction" in p]
    main = [p for p in result.predictions if "fraction" not in p]
    assert len(main) == 40 * 2 * 2  # paragraphs x repeats x models
    # every paragraph once per fraction, curve repeat and model, all from repeat 0's folds
    assert len(curve) == 40 * 2 * 2 * 2
    assert {p["repeat"] for p in curve} == {0}
    assert {(p["fraction"], p["curve_repeat"]) for p in curve} == {(0.25, 0), (0.25, 1), (0.5, 0), (0.5, 1)}
    full = {p["n_train"] for p in main if p["repeat"] == 0}
    assert {p["n_train"] for p in curve if p["fraction"] == 0.25} == {round(0.25 * n) for n in full}

    metrics = task_metrics(result.predictions, "stance", ["favor", "against", "none"], cfg)
    points = metrics["learning_curve"]["tfidf_logreg"]
    assert [p["fraction"] for p in points] == [0.25, 0.5, 1.0]
    assert points[0]["n_train"] < points[1]["n_train"] < points[2]["n_train"] == 30.0
    assert all(p["n_test"] == 40 for p in points)
    # Learning-curve predictions never leak into the headline metrics.
    assert metrics["models"] == task_metrics(main, "stance", ["favor", "against", "none"], cfg)["models"]


def test_the_full_fraction_reuses_the_first_repeats_predictions():
    cfg = config(protocol={"repeats": 1, "learning_curve": {"fractions": [0.5]}})
    result = evaluate_task(stance_data(), cfg, progress=False)
    metrics = task_metrics(result.predictions, "stance", ["favor", "against", "none"], cfg)
    full = metrics["learning_curve"]["tfidf_logreg"][-1]
    assert full["macro_f1"]["value"] == metrics["models"]["tfidf_logreg"]["metrics"]["macro_f1"]["value"]


def test_learning_curve_fractions_must_lie_strictly_between_0_and_1():
    with pytest.raises(ValueError, match="between 0 and 1"):
        config(protocol={"learning_curve": {"fractions": [0.5, 1.0]}})


def test_per_target_mode_fits_one_model_per_target_on_that_targets_rows(monkeypatch):
    fitted: list[set] = []
    import experiments.evaluate as evaluate

    real = evaluate.fit_model

    def spy(spec, data, rows, cfg, seed, features=None):
        fitted.append(set(data.targets[rows]))
        return real(spec, data, rows, cfg, seed, features)

    monkeypatch.setattr(evaluate, "fit_model", spy)
    data = stance_data(targets=["Sanctions", "Strikes"])
    result = evaluate_task(data, config(models=[{"name": "majority"}]), progress=False)
    assert all(len(targets) == 1 for targets in fitted)
    assert len(fitted) == 4 * 2 * 2  # folds x repeats x targets
    assert len(result.predictions) == 40 * 2  # every paragraph predicted once per repeat, predictions pooled


def test_input_mode_fits_one_model_across_targets():
    data = stance_data(targets=["Sanctions", "Strikes"])
    result = evaluate_task(data, config(data={"target_mode": "input"}, models=[{"name": "majority"}]), progress=False)
    assert len(result.predictions) == 40 * 2


def test_a_target_without_training_rows_in_a_fold_is_a_clear_error():
    data = stance_data(n=12, targets=["A"] * 11 + ["B"])
    with pytest.raises(UserError, match="target 'B' has test rows but no training rows"):
        evaluate_task(data, config(models=[{"name": "majority"}], protocol={"folds": 3, "repeats": 1}), progress=False)


def _count_tfidf_work(monkeypatch) -> dict[str, int]:
    calls = {"fit": 0, "transform": 0}
    real_fit, real_transform = TfidfFeatures.fit_transform, TfidfFeatures.transform

    def fit_transform(self, X, y=None):
        calls["fit"] += 1
        return real_fit(self, X, y)

    def transform(self, X):
        calls["transform"] += 1
        return real_transform(self, X)

    monkeypatch.setattr(TfidfFeatures, "fit_transform", fit_transform)
    monkeypatch.setattr(TfidfFeatures, "transform", transform)
    return calls


def test_the_tfidf_models_of_a_fold_fit_one_vectoriser_and_transform_the_test_part_once(monkeypatch):
    calls = _count_tfidf_work(monkeypatch)
    models = [{"name": "tfidf_logreg", "params": {"clf__C": 10.0}}, {"name": "tfidf_svm"}, {"name": "tfidf_cnb"},
              {"name": "tfidf_logreg", "label": "other ngrams", "params": {"features__word_ngrams": [1, 1]}}]
    evaluate_task(stance_data(), config(models=models), progress=False)
    folds = 4 * 2
    assert calls == {"fit": 2 * folds, "transform": 2 * folds}  # one per distinct feature step and fold
    evaluate_task(stance_data(), config(models=models), progress=False)
    assert calls == {"fit": 4 * folds, "transform": 4 * folds}  # nothing outlives the evaluation: no global cache


def test_sharing_features_changes_no_prediction():
    cfg = config(models=[{"name": "tfidf_logreg", "params": {"clf__C": 10.0}}, {"name": "tfidf_svm"}])
    shared = evaluate_task(stance_data(), cfg, progress=False).predictions
    alone = [p for spec in cfg.models
             for p in evaluate_task(stance_data(), config(models=[spec.model_dump()]), progress=False).predictions]
    key = lambda p: (p["model"], p["repeat"], p["id"])
    assert sorted(shared, key=key) == sorted(alone, key=key)


def test_a_parameter_set_on_the_command_line_changes_the_fit(write_config):
    path = write_config("tiny", "tasks: [stance]\nmodels: [{name: tfidf_logreg, params: {clf__C: 10.0}}]\n")
    data = stance_data()
    probas = {}
    for C in ("10.0", "0.001"):
        cfg = load_config(path, [f"models.0.params.clf__C={C}"])
        model = fit_model(cfg.models[0], data, np.arange(30), cfg, 0)
        assert model.named_steps["clf"].C == float(C)
        probas[C] = model.predict_proba(data.texts[30:])
    assert probas["0.001"].max() < probas["10.0"].max()  # a strong penalty flattens the scores


def test_paired_tests_put_the_better_model_first_and_find_a_real_difference():
    cfg = config()
    result = evaluate_task(stance_data(), cfg, progress=False)
    paired = task_metrics(result.predictions, "stance", ["favor", "against", "none"], cfg)["paired"]
    macro = next(p for p in paired if p["metric"] == "macro_f1")
    assert (macro["a"], macro["b"]) == ("tfidf_logreg", "majority")
    assert macro["diff"] > 0 and macro["ci"][0] > 0 and macro["p"] < 0.05
    assert macro["resamples"] == 200


def test_two_identical_models_are_not_significantly_different():
    kept = {"a": {"f1": (0.5, np.array([0.4, 0.5, 0.6]))}, "b": {"f1": (0.5, np.array([0.4, 0.5, 0.6]))}}
    [test] = paired_tests(kept, ["f1"], 0.95)
    assert test["diff"] == 0 and test["ci"] == [0.0, 0.0] and test["p"] == 1.0


def test_a_paired_p_value_is_twice_the_smaller_tail():
    draws_a = np.array([0.6, 0.7, 0.5, 0.4, 0.8])
    draws_b = np.array([0.5, 0.5, 0.5, 0.5, 0.5])  # differences 0.1, 0.2, 0, -0.1, 0.3: 2 of 5 at or below 0
    [test] = paired_tests({"a": {"m": (0.6, draws_a)}, "b": {"m": (0.5, draws_b)}}, ["m"], 0.95)
    assert test["p"] == pytest.approx(2 * 2 / 5)


def test_the_document_bootstrap_draws_whole_documents():
    groups = np.array(["d1", "d1", "d1", "d2", "d3", "d3"])
    for W in bootstrap_weights(6, 300, seed=3, groups=groups):
        assert (W[:, 0] == W[:, 1]).all() and (W[:, 1] == W[:, 2]).all() and (W[:, 4] == W[:, 5]).all()
        assert set(np.unique(W[:, 3])) <= {0, 1, 2, 3}  # a document is drawn 0 to 3 times out of 3
        assert (W[:, [0, 3, 4]].sum(axis=1) == 3).all()


def test_the_document_bootstrap_widens_the_interval_when_documents_differ():
    # Each document is all-correct or all-wrong for the tfidf model: paragraphs are far from independent.
    labels = ["favor", "against", "none"]
    records = []
    for i in range(40):
        doc = f"d{i // 8}"
        gold = labels[i % 3]
        pred = gold if doc in ("d0", "d2", "d4") else labels[(i + 1) % 3]
        records.append({"task": "stance", "model": "m", "repeat": 0, "fold": i // 8, "id": f"p{i:02d}", "doc_id": doc,
                        "gold": gold, "pred": pred, "proba": {}})
    width = {}
    for unit in ("paragraph", "document"):
        cfg = config(metrics={"bootstrap_unit": unit, "bootstrap": 1000})
        ci = task_metrics(records, "stance", labels, cfg)["models"]["m"]["metrics"]["accuracy"]["ci"]
        width[unit] = ci[1] - ci[0]
    assert width["document"] > 1.5 * width["paragraph"]
