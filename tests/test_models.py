"""The model registry: every entry keeps the scikit-learn contract for both tasks."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.errors import UserError
from experiments.models import build_model, describe_models, registered_names, resolve, settable_params
from experiments.models.multilabel import OneVsRestFrames

TEXTS = [
    "air strikes hit the capital",
    "diplomats resume peace talks",
    "sanctions hurt factory workers",
    "missiles and bombs fall on cities",
    "negotiators meet for talks again",
    "workers strike over unpaid wages",
    "more strikes and bombs overnight",
    "peace talks stall in geneva",
    "oil workers join the strike",
]
STANCE = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
# Columns: war (4 positives), diplomacy (3), labour (5), rare (1 positive), absent (0 positives).
FRAMES = np.array([
    [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [1, 0, 0, 0, 0], [0, 1, 1, 0, 0],
    [0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [1, 0, 1, 0, 0],
])
NEW = ["bombs on the port", "talks in oman", "dock workers walk out"]
# The scikit-learn baselines; the transformer families have their own, smaller-sized tests (test_transformers.py).
NAMES = [n for n in registered_names() if resolve(n).make.__module__ == "experiments.models.baselines"]


def final_step(model):
    return model.steps[-1][1] if hasattr(model, "steps") else model


def test_the_baselines_are_registered_and_resolve_with_and_without_version():
    assert NAMES == ["majority", "stratified", "tfidf_cnb", "tfidf_logreg", "tfidf_svm"]
    for name in NAMES:
        assert resolve(name) is resolve(f"{name}.v1")


@pytest.mark.parametrize("name", NAMES)
def test_stance_models_keep_the_classifier_contract(name):
    model = build_model(name, "stance", seed=0)
    assert model.fit(TEXTS, STANCE) is model
    assert list(model.classes_) == [0, 1, 2]
    pred = model.predict(NEW)
    assert pred.shape == (3,) and set(pred) <= {0, 1, 2}
    proba = np.asarray(model.predict_proba(NEW))
    assert proba.shape == (3, 3)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert proba.sum(axis=1) == pytest.approx(np.ones(3))


@pytest.mark.parametrize("name", NAMES)
def test_frame_models_keep_the_multilabel_contract(name):
    model = build_model(name, "frames", seed=0)
    assert model.fit(TEXTS, FRAMES) is model
    assert list(model.classes_) == [0, 1, 2, 3, 4]
    pred = model.predict(NEW)
    assert pred.shape == (3, 5) and set(np.unique(pred)) <= {0, 1}
    proba = np.asarray(model.predict_proba(NEW))
    assert proba.shape == (3, 5)
    assert ((proba >= 0) & (proba <= 1)).all()


@pytest.mark.parametrize("name", NAMES)
def test_frames_too_rare_to_learn_are_predicted_at_their_prevalence(name):
    model = build_model(name, "frames", seed=0).fit(TEXTS, FRAMES)
    assert final_step(model).degenerate_ == [3, 4]  # 1 positive and 0 positives, below min_train_positives=2
    proba = model.predict_proba(NEW)
    assert proba[:, 3].tolist() == [1 / 9] * 3
    assert proba[:, 4].tolist() == [0.0] * 3
    assert model.predict(NEW)[:, 3:].tolist() == [[0, 0]] * 3


def test_a_frame_on_almost_every_paragraph_is_also_degenerate():
    frames = np.column_stack([FRAMES[:, 0], [1, 1, 1, 1, 1, 1, 1, 1, 0]])  # only one negative
    model = build_model("tfidf_logreg", "frames", seed=0).fit(TEXTS, frames)
    assert final_step(model).degenerate_ == [1]
    assert model.predict_proba(NEW)[:, 1].tolist() == [8 / 9] * 3
    assert model.predict(NEW)[:, 1].tolist() == [1, 1, 1]


def test_min_train_positives_decides_what_is_degenerate():
    model = build_model("majority", "frames", seed=0, min_train_positives=4).fit(TEXTS, FRAMES)
    assert final_step(model).degenerate_ == [1, 3, 4]  # diplomacy has only 3 positives


def test_frames_reuse_the_pipeline_features_and_wrap_only_the_classifier():
    model = build_model("tfidf_logreg", "frames", seed=0)
    assert [name for name, _ in model.steps] == ["features", "clf"]
    assert isinstance(model.steps[-1][1], OneVsRestFrames)
    assert isinstance(build_model("majority", "frames", seed=0), OneVsRestFrames)


@pytest.mark.parametrize("name", ["tfidf_logreg", "tfidf_svm", "stratified"])
def test_the_same_seed_gives_the_same_predictions(name):
    first = build_model(name, "stance", seed=5).fit(TEXTS, STANCE).predict_proba(NEW)
    again = build_model(name, "stance", seed=5).fit(TEXTS, STANCE).predict_proba(NEW)
    assert np.array_equal(first, again)


def test_a_versioned_name_resolves_to_that_entry():
    assert resolve("tfidf_logreg.v1").key == "tfidf_logreg.v1"
    assert resolve("tfidf_logreg").key == "tfidf_logreg.v1"


def test_params_reach_the_estimator_by_their_step_names_and_the_seed_by_random_state():
    model = build_model("tfidf_logreg.v1", "stance", seed=3, params={"clf__C": 0.5, "clf__class_weight": "balanced"})
    clf = model.named_steps["clf"]
    assert (clf.C, clf.class_weight, clf.random_state, clf.solver) == (0.5, "balanced", 3, "newton-cg")


def test_a_yaml_list_becomes_the_tuple_an_ngram_range_needs():
    model = build_model("tfidf_cnb", "stance", seed=0, params={"features__word_ngrams": [1, 1]})
    assert model.named_steps["features"].word_ngrams == (1, 1)
    assert model.fit(TEXTS, STANCE).predict(NEW).shape == (3,)


def test_frames_get_the_params_under_the_one_vs_rest_wrapper():
    model = build_model("tfidf_svm", "frames", seed=2, params={"clf__C": 0.25})
    assert model.named_steps["clf"].estimator.get_params()["C"] == 0.25


def test_the_class_defaults_are_the_model_defaults():
    assert settable_params("tfidf_logreg")["clf__C"] == 1.0
    assert settable_params("tfidf_logreg")["features__word_ngrams"] == (1, 3)
    assert "clf__random_state" not in settable_params("tfidf_logreg")  # the run's seed sets it
    assert settable_params("codebook_logreg")["prior_weight"] == "auto"


def test_an_unknown_parameter_names_the_model_and_lists_the_valid_ones():
    with pytest.raises(UserError) as excinfo:
        build_model("tfidf_cnb", "stance", seed=0, params={"clf__C": 1.0})
    assert str(excinfo.value) == (f"model 'tfidf_cnb': params.clf__C: not a parameter of tfidf_cnb.v1; "
                                  f"valid: {', '.join(settable_params('tfidf_cnb'))}")


def test_a_bare_step_parameter_suggests_its_full_name():
    with pytest.raises(UserError, match=r"^model 'tfidf_svm': params.C: not a parameter of tfidf_svm.v1 "
                                        r"\(did you mean clf__C\?\); valid: features__char_ngrams, "):
        build_model("tfidf_svm", "stance", seed=0, params={"C": 1.0})


def test_the_seed_is_not_a_param():
    with pytest.raises(UserError, match=r"^model 'stratified': params.random_state: set by the run from the "
                                        r"config's 'seed' key, not in params$"):
        build_model("stratified", "stance", seed=0, params={"random_state": 4})


@pytest.mark.parametrize(("name", "params", "message"), [
    ("tfidf_logreg", {"clf__C": -1}, "clf__C: must be a float in the range (0.0, inf], got -1"),
    ("tfidf_logreg", {"clf__C": "abc"}, "clf__C: must be a float in the range (0.0, inf], got 'abc'"),
    ("tfidf_svm", {"features__min_df": 0}, "features__min_df: must be an int in the range [1, inf), got 0"),
    ("codebook_logreg", {"prior_weight": 2}, "prior_weight: must be a float in the range [0.0, 1.0] or a str among "
                                             "{'auto'}, got 2"),
    ("finetune", {"backend": "tpu"}, "backend: must be a str among {"),
])
def test_a_wrong_value_is_caught_by_the_estimators_own_constraints_before_fitting(name, params, message):
    with pytest.raises(UserError) as excinfo:
        build_model(name, "stance", seed=0, params=params)
    assert str(excinfo.value).startswith(f"model {name!r}: params.{message}")


def test_stratified_frames_baseline_draws_each_frame_independently():
    # One seed for every frame made the draws nested: a rarer frame appeared only where a commoner one did.
    rng = np.random.default_rng(0)
    Y = (rng.random((400, 4)) < [0.5, 0.4, 0.3, 0.2]).astype(int)
    texts = [f"paragraph {i}" for i in range(400)]
    P = np.asarray(build_model("stratified", "frames", 0, labels=list("abcd")).fit(texts, Y).predict(texts))
    assert len({tuple(row) for row in P}) == 16  # every combination of four frames occurs
    rarest_alone = ((P[:, 3] == 1) & (P[:, 0] == 0)).sum()
    assert rarest_alone > 20  # about 0.2 * 0.5 * 400 = 40 when independent; 0 when nested
    assert np.allclose(P.mean(axis=0), [0.5, 0.4, 0.3, 0.2], atol=0.08)


def test_the_models_listing_gives_each_model_its_summary_and_settable_params_with_defaults():
    lines = describe_models()
    assert f"{'tfidf_cnb.v1':<24}The same features with complement naive Bayes, which copes well with skewed classes." in lines
    listing = "\n".join(lines)
    assert "clf__alpha=0.3" in listing and "features__word_ngrams=(1, 3)" in listing and "prior_weight='auto'" in listing
    assert "random_state" not in listing and "device=" not in listing  # the run supplies these
    assert [l.split()[0] for l in lines if not l.startswith(" ")] == [f"{n}.v1" for n in registered_names()]
