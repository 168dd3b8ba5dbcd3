"""Metrics: hand-computed and scikit-learn reference values, weights, nan rules, bootstrap summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss, precision_recall_fscore_support

from experiments.metrics import bootstrap_weights, frame_scores, stance_scores, summarize


def one(scores: dict) -> dict:
    """The scores of a single weight row, as plain floats."""
    return {k: float(v[0]) for k, v in scores.items()}


def test_stance_scores_by_hand():
    # gold a a a b b c, pred a a b b c c (labels a=0, b=1, c=2)
    # a: tp 2, support 3, predicted 2 -> P 1,   R 2/3, F1 4/5
    # b: tp 1, support 2, predicted 2 -> P 1/2, R 1/2, F1 2/4
    # c: tp 1, support 1, predicted 2 -> P 1/2, R 1,   F1 2/3
    # accuracy 4/6; macro-F1 (4/5 + 1/2 + 2/3) / 3; subset {a, b}: (4/5 + 1/2) / 2
    s = one(stance_scores(np.array([0, 0, 0, 1, 1, 2]), np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"], ["a", "b"], np.ones((1, 6))))
    assert s == pytest.approx({
        "accuracy": 4 / 6, "macro_f1": (4 / 5 + 1 / 2 + 2 / 3) / 3, "macro_f1_subset": (4 / 5 + 1 / 2) / 2,
        "precision/a": 1.0, "recall/a": 2 / 3, "f1/a": 4 / 5,
        "precision/b": 1 / 2, "recall/b": 1 / 2, "f1/b": 1 / 2,
        "precision/c": 1 / 2, "recall/c": 1.0, "f1/c": 2 / 3,
    })


def test_frame_scores_by_hand():
    # gold  x..  xy.  ...  .yz       pred  x..  .y.  ..z  .y.
    # x: tp 1, fp 0, fn 1 -> P 1, R 1/2, F1 2/3
    # y: tp 2, fp 0, fn 0 -> F1 1
    # z: tp 0, fp 1, fn 1 -> P 0, R 0, F1 0
    # micro-F1 2*3 / (2*3 + 1 + 2) = 6/9; macro-F1 (2/3 + 1 + 0) / 3
    # Hamming: 3 wrong cells of 12; subset accuracy: only the first row is exact, 1/4
    gold = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 1, 1]])
    pred = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]])
    s = one(frame_scores(gold, pred, ["x", "y", "z"], [], np.ones((1, 4))))
    assert s == pytest.approx({
        "micro_f1": 6 / 9, "macro_f1": (2 / 3 + 1 + 0) / 3, "hamming_loss": 3 / 12, "subset_accuracy": 1 / 4,
        "precision/x": 1.0, "recall/x": 1 / 2, "f1/x": 2 / 3,
        "precision/y": 1.0, "recall/y": 1.0, "f1/y": 1.0,
        "precision/z": 0.0, "recall/z": 0.0, "f1/z": 0.0,
    })


def test_stance_scores_equal_scikit_learn_on_random_data():
    rng = np.random.default_rng(7)
    gold = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.6, gold, rng.integers(0, 4, 200))
    labels = ["favor", "against", "neutral", "none"]
    s = one(stance_scores(gold, pred, labels, ["favor", "against"], np.ones((1, 200))))
    p, r, f, _ = precision_recall_fscore_support(gold, pred, labels=[0, 1, 2, 3], zero_division=np.nan)
    assert s["accuracy"] == pytest.approx(accuracy_score(gold, pred))
    assert s["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert s["macro_f1_subset"] == pytest.approx(f1_score(gold, pred, labels=[0, 1], average="macro"))
    for j, label in enumerate(labels):
        assert (s[f"precision/{label}"], s[f"recall/{label}"], s[f"f1/{label}"]) == pytest.approx((p[j], r[j], f[j]))


def test_frame_scores_equal_scikit_learn_on_random_data():
    rng = np.random.default_rng(11)
    gold = (rng.random((150, 5)) < 0.3).astype(int)
    pred = np.where(rng.random((150, 5)) < 0.7, gold, 1 - gold)
    s = one(frame_scores(gold, pred, list("vwxyz"), [], np.ones((1, 150))))
    p, r, f, _ = precision_recall_fscore_support(gold, pred, zero_division=np.nan)
    assert s["micro_f1"] == pytest.approx(f1_score(gold, pred, average="micro"))
    assert s["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert s["hamming_loss"] == pytest.approx(hamming_loss(gold, pred))
    assert s["subset_accuracy"] == pytest.approx(accuracy_score(gold, pred))
    for j, label in enumerate("vwxyz"):
        assert (s[f"precision/{label}"], s[f"recall/{label}"], s[f"f1/{label}"]) == pytest.approx((p[j], r[j], f[j]))


@pytest.mark.parametrize("task", ["stance", "frames"])
def test_an_integer_weight_counts_like_duplicated_rows(task):
    rng = np.random.default_rng(3)
    if task == "stance":
        gold, pred, scorer = rng.integers(0, 3, 12), rng.integers(0, 3, 12), stance_scores
    else:
        gold, pred, scorer = rng.integers(0, 2, (12, 3)), rng.integers(0, 2, (12, 3)), frame_scores
    weights = np.array([2, 0, 1, 3, 1, 0, 1, 1, 2, 1, 0, 4])
    weighted = one(scorer(gold, pred, ["a", "b", "c"], ["a"], weights[None, :].astype(float)))
    repeated = one(scorer(np.repeat(gold, weights, axis=0), np.repeat(pred, weights, axis=0), ["a", "b", "c"], ["a"],
                          np.ones((1, weights.sum()))))
    assert weighted.keys() == repeated.keys()
    for key in weighted:
        assert weighted[key] == pytest.approx(repeated[key], nan_ok=True), key


def test_each_weight_row_is_scored_separately():
    gold, pred = np.array([0, 1, 1]), np.array([0, 1, 0])
    W = np.array([[1.0, 1, 1], [1, 0, 0], [0, 0, 1]])
    assert stance_scores(gold, pred, ["a", "b"], ["a"], W)["accuracy"].tolist() == pytest.approx([2 / 3, 1.0, 0.0])


def test_undefined_stance_scores_are_nan_and_left_out_of_the_macro_average():
    # gold a a b, pred a a c, labels a b c d
    # b never predicted: precision nan, recall 0, F1 0; c never gold: recall nan, precision 0, F1 0
    # d neither: all nan, and macro-F1 averages a, b, c only: (1 + 0 + 0) / 3
    s = one(stance_scores(np.array([0, 0, 1]), np.array([0, 0, 2]), ["a", "b", "c", "d"], ["a", "d"], np.ones((1, 3))))
    assert math.isnan(s["precision/b"]) and (s["recall/b"], s["f1/b"]) == (0.0, 0.0)
    assert math.isnan(s["recall/c"]) and (s["precision/c"], s["f1/c"]) == (0.0, 0.0)
    assert all(math.isnan(s[f"{m}/d"]) for m in ("precision", "recall", "f1"))
    assert s["macro_f1"] == pytest.approx(1 / 3)
    assert s["macro_f1_subset"] == 1.0  # d is undefined, so the subset average is over a alone


def test_undefined_frame_scores_are_nan():
    gold = np.array([[1, 0, 0], [1, 0, 0]])
    pred = np.array([[0, 1, 0], [1, 0, 0]])
    s = one(frame_scores(gold, pred, ["x", "y", "z"], [], np.ones((1, 2))))
    assert math.isnan(s["recall/y"]) and s["precision/y"] == 0.0  # y is predicted, never gold
    assert all(math.isnan(s[f"{m}/z"]) for m in ("precision", "recall", "f1"))  # z is neither
    assert s["precision/x"] == 1.0 and s["recall/x"] == 0.5


def test_bootstrap_weights_are_deterministic_and_each_row_draws_n_paragraphs():
    first = np.concatenate(list(bootstrap_weights(37, 450, seed=5)))
    again = np.concatenate(list(bootstrap_weights(37, 450, seed=5)))
    other = np.concatenate(list(bootstrap_weights(37, 450, seed=6)))
    assert first.shape == (450, 37)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert (first.sum(axis=1) == 37).all()
    assert ((first >= 0) & (first == np.round(first))).all()


def test_bootstrap_weights_come_in_chunks_of_at_most_200_rows():
    assert [len(w) for w in bootstrap_weights(10, 450, seed=0)] == [200, 200, 50]


@pytest.fixture(scope="module")
def stance_summary():
    rng = np.random.default_rng(1)
    gold = np.array([0] * 20 + [1] * 15 + [2] * 23 + [3] * 2)  # n = 60; label 3 has support 2
    repeats = [np.where(rng.random(60) < 0.7, gold, rng.integers(0, 4, 60)) for _ in range(2)]
    pooled = [(gold, pred) for pred in repeats]
    folds = [(gold[i::3], pred[i::3]) for pred in repeats for i in range(3)]
    result = summarize("stance", ["favor", "against", "neutral", "none"], ["favor", "against"], pooled, folds,
                       resamples=300, confidence=0.95, seed=0, min_support=3)
    return result, pooled, folds


def test_summary_n_is_the_number_of_test_paragraphs(stance_summary):
    assert stance_summary[0]["n"] == 60


def test_summary_value_lies_inside_its_confidence_interval(stance_summary):
    result = stance_summary[0]
    entries = [*result["metrics"].values(), *(e[m] for e in result["per_label"].values() for m in ("precision", "recall", "f1"))]
    checked = [e for e in entries if e["value"] is not None]
    assert len(checked) >= 12
    for entry in checked:
        low, high = entry["ci"]
        assert low <= entry["value"] <= high, entry


def test_summary_value_is_the_mean_over_repeats_of_the_pooled_score(stance_summary):
    result, pooled, folds = stance_summary
    expected = np.mean([accuracy_score(g, p) for g, p in pooled])
    assert result["metrics"]["accuracy"]["value"] == round(expected, 6)
    per_fold = [accuracy_score(g, p) for g, p in folds]
    assert result["metrics"]["accuracy"]["mean"] == round(np.mean(per_fold), 6)
    assert result["metrics"]["accuracy"]["std"] == round(np.std(per_fold, ddof=1), 6)


def test_summary_flags_labels_with_too_little_support(stance_summary):
    per_label = stance_summary[0]["per_label"]
    assert {k: (v["support"], v["estimable"]) for k, v in per_label.items()} == {
        "favor": (20, True), "against": (15, True), "neutral": (23, True), "none": (2, False),
    }


def test_summary_reports_undefined_values_as_none():
    gold = np.array([0, 0, 1, 1])
    pred = np.array([0, 0, 0, 0])  # "b" is never predicted
    result = summarize("stance", ["a", "b"], ["a", "b"], [(gold, pred)], [(gold, pred)],
                       resamples=100, confidence=0.95, seed=0, min_support=1)
    assert result["per_label"]["b"]["precision"] == {"value": None, "mean": None, "std": None, "ci": [None, None]}
    assert result["per_label"]["b"]["recall"]["value"] == 0.0


def test_summary_is_deterministic_given_the_seed(stance_summary):
    _, pooled, folds = stance_summary
    args = ("stance", ["favor", "against", "neutral", "none"], ["favor", "against"], pooled, folds)
    first = summarize(*args, resamples=100, confidence=0.9, seed=4, min_support=3)
    assert first == summarize(*args, resamples=100, confidence=0.9, seed=4, min_support=3)
