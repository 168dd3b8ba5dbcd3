"""``data.auxiliary``: imported datasets as extra training rows that never reach a test part."""

from __future__ import annotations

import csv
import json
import types

import datasets
import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.pipeline import Pipeline

import experiments.evaluate as evaluate
from experiments import paths
from experiments.annotations import derive_gold, load_paragraphs
from experiments.config import Config, load_config
from experiments.data import load_dataset, task_data
from experiments.errors import UserError
from experiments.evaluate import evaluate_task, fit_model
from experiments.importer import ImportOptions, import_table
from experiments.io import read_jsonl
from experiments.run import run_experiment

LABEL_MAP = {"FAVOR": "favor", "AGAINST": "against", "NONE": "none"}
# SemEval-2016 Task 6 layout: the stance of a tweet toward one of several targets.
TWEETS = [
    ("101", "Atheism", "Religion is not needed for a good life.", "FAVOR"),
    ("102", "Atheism", "Pray every single day.", "AGAINST"),
    ("103", "Atheism", "Nice weather at the temple.", "NONE"),
    ("201", "Hillary Clinton", "She will make a great president.", "FAVOR"),
    ("202", "Hillary Clinton", "Never her, not in a million years.", "AGAINST"),
    ("203", "Hillary Clinton", "Debate tonight at nine.", "NONE"),
    ("301", "Climate Change is a Real Concern", "We must cut emissions now.", "FAVOR"),
    ("302", "Climate Change is a Real Concern", "The warming scare is a hoax.", "AGAINST"),
]


@pytest.fixture(scope="module")
def gold(codebook):
    return derive_gold(codebook, load_paragraphs(paths.PARAGRAPHS)).gold


@pytest.fixture
def semeval(tmp_path, imported_root, gold):
    """``semeval2016`` imported under tmp_path with its raw labels; its last row repeats a gold paragraph."""
    path = tmp_path / "semeval.tsv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["ID", "Target", "Tweet", "Stance"])
        writer.writerows([*TWEETS, ("401", "Atheism", gold[0]["text"], "NONE")])
    import_table(path, "semeval2016", ImportOptions(text_column="Tweet", stance_column="Stance",
                                                    target_column="Target", id_column="ID"), root=imported_root)
    return path


def config(auxiliary: list[dict], source: str = "gold", target_mode: str = "per_target", **overrides) -> Config:
    data = {"source": source, "auxiliary": auxiliary, "target_mode": target_mode}
    spec = {"name": "aux", "tasks": ["stance"], "data": data, "protocol": {"name": "lodo"}, "metrics": {"bootstrap": 100},
            "models": [{"name": "majority"}, {"name": "tfidf_logreg"}], **overrides}
    return Config.model_validate(spec)


def stance(cfg: Config, codebook):
    dataset, notes, fp, labels = load_dataset(cfg, codebook)
    return task_data(dataset, "stance", cfg, codebook, fp, labels), notes


def message(cfg: Config, codebook) -> str:
    with pytest.raises(UserError) as excinfo:
        load_dataset(cfg, codebook)
    return str(excinfo.value)


class Spy(BaseEstimator, ClassifierMixin):
    """Records what it was trained on and what it was asked to predict."""

    calls: list[dict] = []

    def fit(self, X, y, sample_weight=None):
        self.call_ = {"train": list(X), "y": np.asarray(y), "sample_weight": sample_weight, "test": []}
        Spy.calls.append(self.call_)
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        self.call_["test"] += list(X)
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


class Unweighted(Spy):
    def fit(self, X, y):
        return super().fit(X, y)


@pytest.fixture
def spy(monkeypatch):
    Spy.calls = []
    monkeypatch.setattr(evaluate, "build_model", lambda *args, **kwargs: Spy())
    return Spy.calls


# --- no auxiliary row is ever tested ---------------------------------------------------------------------------------


def test_auxiliary_rows_join_every_training_part_and_never_a_test_part(semeval, codebook, gold, spy):
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP}],
                 protocol={"name": "lodo", "learning_curve": {"fractions": [0.5]}}, models=[{"name": "spy"}])
    data, _ = stance(cfg, codebook)
    aux = data.auxiliary.texts
    assert aux == [text for _, _, text, _ in TWEETS]  # the tweet that repeats a gold paragraph is dropped
    result = evaluate_task(data, cfg, progress=False)
    docs = len({g["doc_id"] for g in gold})
    assert len(spy) == 2 * docs  # one fit per document left out, and again on half its training part
    for call in spy:
        main = call["train"][:-len(aux)]
        assert call["train"][-len(aux):] == aux and set(main) <= set(data.texts)
        assert call["test"] and set(call["test"]) <= set(data.texts) - set(main) - set(aux)
    assert sorted(p["id"] for p in result.predictions if "fraction" not in p) == sorted(g["id"] for g in gold)

    fit_model(cfg.models[0], data, np.arange(len(data)), cfg, 0)  # the final fit
    assert spy[-1]["train"] == [*data.texts, *data.auxiliary.texts]


def test_a_run_with_auxiliary_data_scores_only_main_source_rows(semeval, codebook, gold, tmp_path):
    path = tmp_path / "aux.yaml"
    path.write_text(f"""\
extends: {paths.CONFIGS / "base.yaml"}
tasks: [stance]
data:
  auxiliary:
    - dataset: semeval2016
      label_map: {json.dumps(LABEL_MAP)}
      weight: 0.5
protocol: {{name: lodo}}
metrics: {{bootstrap: 100}}
models: [{{name: majority}}, {{name: tfidf_logreg}}]
""", encoding="utf-8")
    log: list[str] = []
    run_dir = run_experiment(path, results=tmp_path / "results", progress=False, log=log.append)
    records = [r for _, r in read_jsonl(run_dir / "predictions.jsonl")]
    assert len(records) == len(gold) * 2  # every main row once per model (lodo), nothing else
    assert {r["id"] for r in records} == {g["id"] for g in gold}
    assert ("note: data.auxiliary.0 (semeval2016): 8 of 9 rows added to every stance training part at weight 0.5; "
            "dropped 1 whose text is also in the main source") in log
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    plain = load_dataset(config([]), codebook)[2]
    assert meta["data"]["fingerprint"] == load_dataset(load_config(path), codebook)[2] != plain


# --- loading: filters, notes and the fingerprint ---------------------------------------------------------------------


def test_targets_and_label_map_choose_the_rows_and_notes_count_the_dropped(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": {"FAVOR": "favor", "AGAINST": "against"},
                   "targets": ["Atheism", "Hillary Clinton"], "weight": 2}])
    data, notes = stance(cfg, codebook)
    assert data.auxiliary.ids == ["semeval2016:101", "semeval2016:102", "semeval2016:201", "semeval2016:202"]
    assert [data.labels[j] for j in data.auxiliary.y] == ["favor", "against", "favor", "against"]
    assert data.auxiliary.weights.tolist() == [2.0] * 4
    assert notes == ["data.auxiliary.0 (semeval2016): 4 of 9 rows added to every stance training part at weight 2; "
                     "dropped 2 of other targets, 3 with unmapped labels (NONE)"]


def test_the_fingerprint_follows_the_auxiliary_rows_and_weight(semeval, codebook):
    fingerprints = {load_dataset(config(aux), codebook)[2] for aux in (
        [],
        [{"dataset": "semeval2016", "label_map": LABEL_MAP}],
        [{"dataset": "semeval2016", "label_map": LABEL_MAP, "weight": 0.5}],
        [{"dataset": "semeval2016", "label_map": LABEL_MAP, "targets": ["Atheism"]}],
    )}
    assert len(fingerprints) == 4


def test_the_frames_task_gets_no_auxiliary_rows_and_the_log_says_so(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP}], tasks=["stance", "frames"])
    dataset, notes, fp, labels = load_dataset(cfg, codebook)
    assert notes[-1] == ("data.auxiliary: the frames task is trained without auxiliary rows; "
                         "auxiliary datasets add stance training rows only")
    assert task_data(dataset, "frames", cfg, codebook, fp, labels).auxiliary is None


def test_target_mode_input_prepends_each_auxiliary_rows_target(semeval, codebook, gold):
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP, "targets": ["Atheism"]}], target_mode="input")
    records = [{"id": "m1", "doc_id": "m", "text": "Sanctions bite.", "hash": "h1", "stance": "against",
                "frames": [], "target": "Sanctions"}]
    data = task_data(datasets.Dataset.from_list(records), "stance", cfg, codebook, "fp")
    assert data.auxiliary.texts == ["Atheism: Religion is not needed for a good life.", "Atheism: Pray every single day.",
                                    "Atheism: Nice weather at the temple.", f"Atheism: {gold[0]['text']}"]


# --- refusals ----------------------------------------------------------------------------------------------------------


def test_an_unknown_dataset_lists_the_imported_ones(semeval, codebook):
    assert message(config([{"dataset": "semeval2017"}]), codebook) == (
        "data.auxiliary.0.dataset: unknown imported dataset 'semeval2017'; available: semeval2016 "
        "(add one with `python -m experiments import`)")


def test_the_main_source_cannot_be_its_own_auxiliary_dataset(semeval, codebook):
    cfg = config([{"dataset": "semeval2016"}], source="semeval2016")
    assert message(cfg, codebook) == ("data.auxiliary.0.dataset: 'semeval2016' is data.source itself; "
                                      "name another imported dataset")


def test_a_label_mapped_to_no_main_label_names_its_key(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": {**LABEL_MAP, "AGAINST": "opposed"}}])
    assert message(cfg, codebook) == ("data.auxiliary.0.label_map.AGAINST: 'opposed' is not a stance label of 'gold' "
                                      "(favor, against, neutral, none)")


def test_a_label_map_key_the_dataset_lacks_is_named(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": {"FAVOUR": "favor"}}])
    assert message(cfg, codebook) == ("data.auxiliary.0.label_map.FAVOUR: 'FAVOUR' is not a stance label of "
                                      "'semeval2016' (AGAINST, FAVOR, NONE)")


def test_without_a_label_map_the_labels_must_already_match(semeval, codebook):
    assert message(config([{"dataset": "semeval2016"}]), codebook) == (
        "data.auxiliary.0.label_map: 'semeval2016' has stance labels that 'gold' lacks (AGAINST, FAVOR, NONE); "
        "map them to favor, against, neutral, none, e.g. label_map: {AGAINST: LABEL}")


def test_a_target_that_matches_no_row_names_its_key(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP, "targets": ["Atheism", "Hilary Clinton"]}])
    assert message(cfg, codebook) == ("data.auxiliary.0.targets.1: no row of 'semeval2016' has target 'Hilary Clinton'; "
                                      "its targets: Atheism, Climate Change is a Real Concern, Hillary Clinton")


def test_filters_that_leave_no_row_are_refused(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": {"NONE": "none"}, "targets": ["Climate Change is a Real Concern"]}])
    assert message(cfg, codebook) == ("data.auxiliary.0: no rows of 'semeval2016' are left (dropped 7 of other targets, "
                                      "2 with unmapped labels (AGAINST, FAVOR)); widen its targets or label_map")


@pytest.mark.parametrize("body, error", [
    ("weight: 0", "data.auxiliary.0.weight: Input should be greater than 0 (got 0)"),
    ("weight: -1.5", "data.auxiliary.0.weight: Input should be greater than 0 (got -1.5)"),
    ("targets: []", "data.auxiliary.0.targets: List should have at least 1 item after validation, not 0 (got [])"),
    ("wieght: 0.5", "data.auxiliary.0.wieght: unknown key; valid keys here: dataset, label_map, targets, weight"),
])
def test_the_schema_rejects_bad_values_and_unknown_keys_naming_the_key(write_config, body, error):
    path = write_config("bad", f"tasks: [stance]\ndata:\n  auxiliary:\n    - dataset: semeval2016\n      {body}\n")
    with pytest.raises(UserError) as excinfo:
        load_config(path)
    assert str(excinfo.value) == f"{path}: {error}"


# --- weights reach the estimator ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("weight, expected", [(0.5, 0.5), (1.0, None)])
def test_weights_reach_the_estimators_sample_weight_unless_all_are_1(semeval, codebook, spy, weight, expected):
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP, "weight": weight}], models=[{"name": "spy"}])
    data, _ = stance(cfg, codebook)
    rows = np.arange(10)
    fit_model(cfg.models[0], data, rows, cfg, 0)
    if expected is None:
        assert spy[-1]["sample_weight"] is None
    else:
        assert spy[-1]["sample_weight"].tolist() == [1.0] * 10 + [expected] * 8


def test_a_pipeline_gets_the_weights_through_its_last_step(semeval, codebook, monkeypatch):
    Spy.calls = []
    monkeypatch.setattr(evaluate, "build_model", lambda *args, **kwargs: Pipeline([("keep", "passthrough"), ("clf", Spy())]))
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP, "weight": 3}], models=[{"name": "spy"}])
    data, _ = stance(cfg, codebook)
    fit_model(cfg.models[0], data, np.arange(4), cfg, 0)
    assert Spy.calls[-1]["sample_weight"].tolist() == [1.0] * 4 + [3.0] * 8


def test_a_model_without_sample_weight_is_refused_for_weights_other_than_1(semeval, codebook, monkeypatch):
    monkeypatch.setattr(evaluate, "build_model", lambda *args, **kwargs: Unweighted())
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP, "weight": 0.5}], models=[{"name": "setfit"}])
    data, _ = stance(cfg, codebook)
    with pytest.raises(UserError) as excinfo:
        fit_model(cfg.models[0], data, np.arange(10), cfg, 0)
    assert str(excinfo.value) == ("data.auxiliary: model 'setfit' cannot weight its training rows; "
                                  "set weight: 1.0 for every auxiliary dataset, or leave this model out")


def test_the_single_class_check_counts_the_auxiliary_rows(semeval, codebook):
    cfg = config([{"dataset": "semeval2016", "label_map": LABEL_MAP}], models=[{"name": "tfidf_logreg"}])
    data, _ = stance(cfg, codebook)
    one_class = np.flatnonzero(data.y == data.labels.index("neutral"))
    model = fit_model(cfg.models[0], data, one_class, cfg, 0)
    assert evaluate.degenerate_labels(model, data.labels) == []
    assert [data.labels[c] for c in model.classes_] == ["favor", "against", "neutral", "none"]


def test_a_model_with_auxiliary_false_trains_on_the_main_source_only(tmp_path, monkeypatch):
    seen = {}

    class Spy:
        def __init__(self, name):
            self.name = name

        def fit(self, X, y):
            seen.setdefault(self.name, set()).update(X)
            return self

    monkeypatch.setattr(evaluate, "build_model", lambda name, *a, **k: Spy(name))
    from experiments.config import ModelConfig
    from experiments.data import AuxiliaryData, TaskData

    data = TaskData(task="stance", labels=["favor", "none"], ids=["a", "b"], texts=["main one", "main two"],
                    doc_ids=np.array(["d1", "d2"]), hashes=["h1", "h2"], y=np.array([0, 1]),
                    auxiliary=AuxiliaryData(ids=["x"], texts=["aux text"], y=np.array([0]), weights=np.array([1.0])))
    config = types.SimpleNamespace(min_train_positives=2, device="cpu", precision="fp32")
    rows = np.array([0, 1])
    evaluate.fit_model(ModelConfig(name="with"), data, rows, config, 0)
    evaluate.fit_model(ModelConfig(name="without", auxiliary=False), data, rows, config, 0)
    assert seen == {"with": {"main one", "main two", "aux text"}, "without": {"main one", "main two"}}
