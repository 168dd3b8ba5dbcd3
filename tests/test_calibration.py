"""Calibration on out-of-document predictions, frame thresholds, and the coverage curve."""

from __future__ import annotations

import numpy as np
import pytest

from experiments import calibration


def overconfident(n: int, accuracy: float, rng: np.random.Generator, top: float = 0.95):
    """Stance-like predictions that say ``top`` for their choice but are right only ``accuracy`` of the time."""
    gold = rng.integers(0, 4, n)
    right = rng.random(n) < accuracy
    pred = np.where(right, gold, (gold + rng.integers(1, 4, n)) % 4)
    proba = np.full((n, 4), (1 - top) / 3)
    proba[np.arange(n), pred] = top
    return proba, gold


def test_temperature_fitted_on_other_documents_reduces_ece_on_a_shifted_held_out_document():
    rng = np.random.default_rng(0)
    # Four training documents where the model is right 70% of the time, a held-out one (a shift) where it is right 55%.
    train = [overconfident(40, 0.7, rng) for _ in range(4)]
    proba = np.vstack([p for p, _ in train])
    gold = np.concatenate([g for _, g in train])
    held_proba, held_gold = overconfident(60, 0.55, rng)
    params = calibration.fit("stance", proba, gold)
    assert params["temperature"] > 1  # over-confident scores are softened
    before = calibration.ece(calibration.confidence("stance", held_proba),
                             calibration.correct("stance", held_proba, held_gold))
    calibrated = calibration.apply("stance", held_proba, params)
    after = calibration.ece(calibration.confidence("stance", calibrated),
                            calibration.correct("stance", calibrated, held_gold))
    assert after < before / 2
    assert (calibrated.argmax(axis=1) == held_proba.argmax(axis=1)).all()  # calibration never changes a stance label


def test_the_report_cross_fits_by_document_and_reports_ece_before_and_after():
    rng = np.random.default_rng(1)
    parts = [overconfident(30, 0.6, rng) for _ in range(5)]
    proba = np.vstack([p for p, _ in parts])
    gold = np.concatenate([g for _, g in parts])
    groups = np.repeat([f"doc{i}" for i in range(5)], 30)
    report = calibration.calibration_report("stance", proba, gold, groups)
    assert report["n"] == 150
    assert report["ece_calibrated"] < report["ece_uncalibrated"]
    assert [p["coverage"] for p in report["coverage"]] == list(calibration.COVERAGE_POINTS)
    assert report["coverage"][-1] == {"coverage": 1.0, "n": 150, "accuracy": pytest.approx(float((proba.argmax(1) == gold).mean()), abs=1e-4)}


def test_frame_thresholds_come_from_the_out_of_document_probabilities():
    # Frame 0 is present exactly when its score reaches 0.2; frame 1 has too few positives to choose a threshold.
    proba = np.array([[0.05, 0.1], [0.1, 0.2], [0.2, 0.1], [0.3, 0.9], [0.25, 0.1], [0.12, 0.3]])
    gold = np.array([[0, 0], [0, 0], [1, 0], [1, 1], [1, 0], [0, 0]])
    params = calibration.fit("frames", proba, gold, min_positives=2)
    assert params["thresholds"] == [0.2, 0.5]
    calibrated = calibration.apply("frames", proba, params)
    assert ((calibrated[:, 0] >= 0.5) == (proba[:, 0] >= 0.2)).all()
    assert ((calibrated[:, 1] >= 0.5) == (proba[:, 1] >= 0.5)).all()


def test_frames_confidence_and_correctness_are_per_decision_shares():
    calibrated = np.array([[0.9, 0.2], [0.6, 0.5]])
    gold = np.array([[1, 1], [1, 0]])
    assert calibration.confidence("frames", calibrated).tolist() == pytest.approx([0.85, 0.55])
    assert calibration.correct("frames", calibrated, gold).tolist() == [0.5, 0.5]


def test_records_of_a_run_give_one_report_per_model_from_the_first_repeat_only():
    labels = ["favor", "against"]
    records = [
        {"task": "stance", "model": "m", "repeat": r, "fold": 0, "id": f"p{i}", "doc_id": f"d{i % 2}",
         "gold": labels[i % 2], "pred": labels[i % 2], "proba": {"favor": 0.8 if i % 2 == 0 else 0.2,
                                                               "against": 0.2 if i % 2 == 0 else 0.8}}
        for r in (0, 1) for i in range(6)
    ] + [{"task": "stance", "model": "m", "repeat": 0, "fold": 0, "id": "p0", "doc_id": "d0", "gold": "favor",
          "pred": "against", "proba": {"favor": 0.1, "against": 0.9}, "fraction": 0.5}]
    reports = calibration.from_records(records, "stance", labels)
    assert list(reports) == ["m"]
    assert reports["m"]["n"] == 6
    assert reports["m"]["coverage"][-1]["accuracy"] == 1.0
