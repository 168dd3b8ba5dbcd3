"""Error analysis on saved predictions (``analysis``): the most confident mistakes, per-document scores, and the one
walk that finds what differs between two configs (the report) or two metrics files (``reproduce``)."""

from __future__ import annotations

import yaml
from inline_run import frame_records, lodo, run, stance_records  # noqa: F401 (fixtures)

from experiments.analysis import differences, most_confident_mistakes, per_document_scores


def test_the_config_diff_lists_exactly_the_keys_that_differ(run, lodo):
    configs = [yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8")) for d in (run, lodo)]
    assert differences(configs) == [
        ("name", ["kfold_run", "lodo_run"]),
        ("protocol.name", ["kfold", "lodo"]),
        ("metrics.bootstrap_unit", ["paragraph", "document"]),
        ("models.tfidf_svm.params.C", [1.0, 0.5]),
    ]


def test_a_section_missing_from_one_config_is_one_key():
    assert differences([{"seed": 1, "protocol": {"learning_curve": None}},
                        {"seed": 1, "protocol": {"learning_curve": {"fractions": [0.5]}}, "extra": True}]) == [
        ("protocol.learning_curve", [None, {"fractions": [0.5]}]),
        ("extra", ["(absent)", True]),
    ]


def test_the_config_diff_of_the_report_and_the_comparison_of_reproduce_are_one_walk():
    old = {"a": [1, {"b": 2}], "ci": [0.2, 0.6], "c": 3, "gone": 1}
    new = {"a": [1, {"b": 5}], "ci": [0.2, 0.7], "c": 3, "added": 2}
    assert differences([old, new]) == [("a.1.b", [2, 5]), ("ci", [[0.2, 0.6], [0.2, 0.7]]),
                                       ("gone", [1, "(absent)"]), ("added", ["(absent)", 2])]


def test_the_most_confident_mistake_is_the_wrong_prediction_with_the_highest_probability():
    records = [r for r in stance_records() if r["model"] == "tfidf_svm" and r["repeat"] == 0
               and "fraction" not in r]
    assert [(r["id"], r["pred"]) for r in most_confident_mistakes(records)] == [("p2", "none"), ("p3", "favor")]


def test_per_document_accuracy_pools_the_repeats():
    records = [r for r in stance_records() if "fraction" not in r]
    scores = per_document_scores(records, "stance")
    assert scores["tfidf_svm"] == {"d1": (3, 3 / 6), "d2": (2, 3 / 4)}
    assert scores["majority"] == {"d1": (3, 2 / 6), "d2": (2, 2 / 4)}


def test_per_document_micro_f1_for_frames():
    records = [r for r in frame_records() if r["model"] == "tfidf_svm"]
    # d1: tp 1 (p1), fp 2 (p2 humanitarian, p3 security), fn 1 (p2 security) -> 2/(2+3); d2: tp 1, fn 1 -> 2/3
    assert per_document_scores(records, "frames")["tfidf_svm"] == {"d1": (3, 2 / 5), "d2": (2, 2 / 3)}
