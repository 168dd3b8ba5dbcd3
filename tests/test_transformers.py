"""The transformer families: the classifier contract, determinism, zero-shot, the embedding cache,
model and device resolution, preflight errors, and smoke runs of the shipped configs.

Every fit here is tiny (one or two optimiser steps on 32- or 64-token inputs): the tests check behaviour, not quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from experiments import paths
from experiments.config import load_config, smoke
from experiments.errors import UserError
from experiments.evaluate import degenerate_labels
from experiments.models import build_model, encoders
from experiments.models.encoders import (
    DEFAULT_MODEL,
    SentenceEmbedder,
    label_descriptions,
    resolve_device,
    resolve_model_dir,
    resolve_precision,
)
from experiments.models.finetune import length_sorted_batches, prevalence_thresholds
from experiments.run import run_experiment

# Stance columns: favor, against, neutral, none (two paragraphs each).
TEXTS = [
    "Exiles urge the world to step in and protect the protesters",
    "No foreign power has the right to bomb Iran",
    "The foreign ministry said talks will resume next week",
    "Food prices rose again in Tehran markets this month",
    "The opposition calls for foreign help to end the crackdown",
    "Intervention would only bring more war and suffering",
    "Officials met in Vienna to discuss the nuclear file",
    "Sanctions have cost factory workers their jobs",
]
STANCE_LABELS = ["favor", "against", "neutral", "none"]
STANCE = np.array([0, 1, 2, 3, 0, 1, 2, 3])
# Columns: humanitarian (3 positives), security (3), economic (2), gender (no positives at all).
FRAME_LABELS = ["humanitarian", "security", "economic", "gender"]
FRAMES = np.array([
    [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0],
    [1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
])
LABELS = {"stance": STANCE_LABELS, "frames": FRAME_LABELS}
TARGETS = {"stance": STANCE, "frames": FRAMES}
NEW = ["Air strikes hit a base near Isfahan", "Bread now costs twice as much", "Diplomats meet again in Oman"]

SMALL = {
    "embed_logreg": {"embed__max_length": 32, "embed__batch_size": 8},
    "zeroshot_codebook": {"max_length": 32},
    "setfit": {"num_iterations": 1, "max_length": 32, "batch_size": 8},
    "finetune": {"max_steps": 1, "max_length": 32, "batch_size": 4},
}
FAMILIES = ["embed_logreg", "zeroshot_codebook", "setfit", "finetune"]


def quiet(*_args):
    pass


def small_model(family: str, task: str, seed: int = 0):
    return build_model(family, task, seed=seed, params=SMALL[family], labels=LABELS[task], device="cpu")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Keep the embedding cache of this module out of the checkout's .cache/."""
    directory = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPERIMENTS_CACHE", str(directory))
        mp.setattr(encoders, "_CACHES", {})
        yield directory


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty embedding cache for one test, on disk and in memory."""
    monkeypatch.setenv("EXPERIMENTS_CACHE", str(tmp_path))
    monkeypatch.setattr(encoders, "_CACHES", {})
    return tmp_path / "embeddings"


@pytest.fixture(scope="module")
def fitted(cache_dir):
    """``fitted(family, task)`` -> (model, what fit returned); each model is fitted once per module."""
    done: dict = {}

    def get(family: str, task: str):
        if (family, task) not in done:
            model = small_model(family, task)
            done[family, task] = (model, model.fit(TEXTS, TARGETS[task]))
        return done[family, task]

    return get


# The classifier contract, for both tasks. ----------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_stance_models_keep_the_classifier_contract(fitted, family):
    model, returned = fitted(family, "stance")
    assert returned is model
    assert list(model.classes_) == [0, 1, 2, 3]
    proba = np.asarray(model.predict_proba(NEW))
    assert proba.shape == (3, 4)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert proba.sum(axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert model.predict(NEW).tolist() == model.classes_[proba.argmax(axis=1)].tolist()


# How each family turns frame scores into frame decisions.
DECISIONS = {
    "embed_logreg": lambda model, proba: proba >= 0.5,
    "zeroshot_codebook": lambda model, proba: model.similarities(NEW) >= model.threshold,
    "setfit": lambda model, proba: proba >= 0.5,
    "finetune": lambda model, proba: proba >= model.thresholds_,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_frame_models_keep_the_multilabel_contract(fitted, family):
    model, returned = fitted(family, "frames")
    assert returned is model
    assert list(model.classes_) == [0, 1, 2, 3]
    proba = np.asarray(model.predict_proba(NEW))
    assert proba.shape == (3, 4)
    assert ((proba >= 0) & (proba <= 1)).all()
    pred = model.predict(NEW)
    assert pred.shape == (3, 4) and set(np.unique(pred)) <= {0, 1}
    assert pred.tolist() == DECISIONS[family](model, proba).astype(int).tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_a_frame_absent_from_training_is_reported_as_not_learned(fitted, family):
    model = fitted(family, "frames")[0]
    expected = [] if family == "zeroshot_codebook" else ["gender"]  # zero-shot learns no frame from the data
    assert degenerate_labels(model, FRAME_LABELS) == expected


def test_finetune_takes_at_most_max_steps_optimiser_steps(fitted):
    assert fitted("finetune", "stance")[0].steps_ == 1


def test_finetune_frame_thresholds_reproduce_the_training_prevalence(fitted):
    model = fitted("finetune", "frames")[0]
    # In float32 no two training scores tie, so the predicted counts equal the training counts exactly
    # (bf16 scores can tie at a threshold, and a tie is predicted on both sides).
    model.set_params(precision="fp32")
    model.thresholds_ = prevalence_thresholds(model.predict_proba(TEXTS), FRAMES)
    assert model.predict(TEXTS).sum(axis=0).tolist() == FRAMES.sum(axis=0).tolist()  # [3, 3, 2, 0]


def test_finetune_never_predicts_a_frame_absent_from_training(fitted):
    model = fitted("finetune", "frames")[0]
    assert model.thresholds_[3] > 1
    assert model.predict(TEXTS + NEW)[:, 3].tolist() == [0] * 11


# Determinism: the seed decides everything. ----------------------------------------------------------

def test_finetune_with_the_same_seed_gives_identical_probabilities(fitted):
    first = fitted("finetune", "stance")[0].predict_proba(NEW)
    again = small_model("finetune", "stance", seed=0).fit(TEXTS, STANCE).predict_proba(NEW)
    assert np.array_equal(first, again)


def test_finetune_with_another_seed_gives_other_probabilities(fitted):
    first = fitted("finetune", "stance")[0].predict_proba(NEW)
    other = small_model("finetune", "stance", seed=1).fit(TEXTS, STANCE).predict_proba(NEW)
    assert not np.allclose(first, other)


def test_setfit_with_the_same_seed_gives_identical_probabilities(fitted):
    first = fitted("setfit", "stance")[0].predict_proba(NEW)
    again = small_model("setfit", "stance", seed=0).fit(TEXTS, STANCE).predict_proba(NEW)
    assert np.array_equal(first, again)


# Zero-shot: the codebook, not the training labels. ---------------------------------------------------

@pytest.mark.parametrize("task", ["stance", "frames"])
def test_zero_shot_ignores_the_training_labels(cache_dir, task):
    one = small_model("zeroshot_codebook", task).fit(TEXTS, TARGETS[task])
    other = small_model("zeroshot_codebook", task).fit(TEXTS[:2], TARGETS[task][::-1][:2])
    unlabelled = small_model("zeroshot_codebook", task).fit(TEXTS)
    for model in (other, unlabelled):
        assert np.array_equal(model.predict_proba(NEW), one.predict_proba(NEW))
        assert np.array_equal(model.predict(NEW), one.predict(NEW))


def test_zero_shot_prototypes_are_the_mean_embedding_of_each_labels_definition_and_cues(cache_dir):
    model = small_model("zeroshot_codebook", "stance").fit(TEXTS, STANCE)
    embedder = SentenceEmbedder(max_length=32, device="cpu")
    descriptions = label_descriptions(STANCE_LABELS)
    for row, label in zip(model.prototypes_, STANCE_LABELS):
        mean = embedder.transform(descriptions[label]).mean(axis=0)
        assert row == pytest.approx(mean / np.linalg.norm(mean), abs=1e-6)
    assert np.linalg.norm(model.prototypes_, axis=1) == pytest.approx(np.ones(4), abs=1e-6)


def test_label_descriptions_are_the_codebook_definition_cues_and_illustrations_never_seed_quotes(codebook):
    favor = next(label for label in codebook.stance.labels if label.name == "favor")
    gender = next(label for label in codebook.frames.labels if label.name == "gender")
    described = label_descriptions(["gender", "favor"])
    assert list(described) == ["gender", "favor"]
    for label in (favor, gender):
        assert described[label.name] == [" ".join(label.definition.split()), *label.cues,
                                         *(" ".join(t.split()) for t in label.illustrations)]
        assert not {e.quote for e in label.examples} & set(described[label.name])


def test_a_generic_frame_is_described_by_its_title_and_description_and_its_project_frames(codebook):
    security = next(label for label in codebook.generic_frames.labels if label.name == "security_defense")
    project = next(label for label in codebook.frames.labels if label.generic_frame == "security_defense")
    described = label_descriptions(["security_defense"])["security_defense"]
    assert described[0] == f"{security.title}: {security.description}"
    assert described[1:] == [" ".join(project.definition.split()), *project.cues, *project.illustrations]


def test_a_label_the_codebook_lacks_is_an_error():
    with pytest.raises(UserError) as excinfo:
        label_descriptions(["favor", "bogus", "other_bogus"])
    assert str(excinfo.value) == "the codebook defines no label 'bogus'; labels come from configs/codebook.yaml"


def test_zero_shot_over_a_label_the_codebook_lacks_fails_when_fitted(cache_dir):
    model = build_model("zeroshot_codebook", "frames", seed=0, labels=["security", "bogus"], device="cpu")
    with pytest.raises(UserError, match=r"^the codebook defines no label 'bogus'; labels come from configs/codebook.yaml$"):
        model.fit(TEXTS)


# Batching and thresholds of the fine-tuned classifier. -----------------------------------------------

def test_batches_group_similar_lengths_and_cover_every_index_once():
    lengths = [5, 1, 4, 2, 3, 9, 1]
    batches = length_sorted_batches(lengths, 3)
    assert [b.tolist() for b in batches] == [[1, 6, 3], [4, 2, 0], [5]]
    assert sorted(i for b in batches for i in b.tolist()) == list(range(7))
    flat = [lengths[i] for b in batches for i in b.tolist()]
    assert flat == sorted(lengths)


def test_batches_keep_the_input_order_among_equal_lengths():
    assert [b.tolist() for b in length_sorted_batches([2, 2, 2, 2, 2], 2)] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize(("n", "batch_size", "sizes"), [(0, 4, []), (3, 8, [3]), (8, 4, [4, 4]), (9, 4, [4, 4, 1])])
def test_only_the_last_batch_may_be_short(n, batch_size, sizes):
    assert [len(b) for b in length_sorted_batches(list(range(n)), batch_size)] == sizes


def test_prevalence_thresholds_predict_each_frame_as_often_as_it_occurs_in_training():
    rng = np.random.default_rng(0)
    proba = rng.random((20, 4))
    Y = np.zeros((20, 4), dtype=int)
    for j, positives in enumerate([1, 5, 12, 20]):
        Y[rng.choice(20, positives, replace=False), j] = 1
    thresholds = prevalence_thresholds(proba, Y)
    assert (proba >= thresholds).sum(axis=0).tolist() == [1, 5, 12, 20]
    # The threshold is the k-th highest score, k the number of positives.
    assert thresholds.tolist() == [np.sort(proba[:, j])[::-1][k - 1] for j, k in enumerate([1, 5, 12, 20])]


def test_a_frame_with_no_training_positives_is_never_predicted():
    proba = np.array([[1.0, 0.2], [0.9, 0.7], [0.1, 1.0]])
    Y = np.array([[0, 1], [0, 0], [0, 1]])
    thresholds = prevalence_thresholds(proba, Y)
    assert thresholds[0] > 1.0
    assert (proba >= thresholds)[:, 0].tolist() == [False, False, False]  # not even at probability 1
    assert (proba >= thresholds)[:, 1].tolist() == [False, True, True]  # the two highest scores, for two positives


# Sentence embeddings and their disk cache. ----------------------------------------------------------

def count_encodes(monkeypatch) -> list[list[str]]:
    """Record the texts of every call to ``SentenceEmbedder.encode`` from now on."""
    calls: list[list[str]] = []
    original = SentenceEmbedder.encode

    def counting(self, texts):
        calls.append(list(texts))
        return original(self, texts)

    monkeypatch.setattr(SentenceEmbedder, "encode", counting)
    return calls


def test_embeddings_are_l2_normalised(fresh_cache):
    vectors = SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS)
    assert vectors.shape == (8, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(8), abs=1e-5)


def test_texts_already_embedded_are_read_from_the_cache(fresh_cache, monkeypatch):
    embedder = SentenceEmbedder(max_length=32, device="cpu")
    first = embedder.transform(TEXTS)
    calls = count_encodes(monkeypatch)
    assert np.array_equal(embedder.transform(TEXTS), first)
    assert np.array_equal(SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS[::-1]), first[::-1])
    assert calls == []
    # A mix of known and new texts encodes only the new ones.
    mixed = embedder.transform([TEXTS[0], NEW[0], TEXTS[1], NEW[0]])
    assert calls == [[NEW[0]]]
    assert np.array_equal(mixed[[0, 2]], first[:2]) and np.array_equal(mixed[1], mixed[3])


def test_the_cache_file_serves_a_new_process(fresh_cache, monkeypatch):
    first = SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS)
    [cache_file] = fresh_cache.glob("*.npz")
    assert cache_file.name.endswith(f"-32-{resolve_precision('auto', 'cpu')}.npz")
    monkeypatch.setattr(encoders, "_CACHES", {})  # what a new process starts with
    calls = count_encodes(monkeypatch)
    assert np.array_equal(SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS), first)
    assert calls == []


def test_another_max_length_gets_its_own_cache(fresh_cache, monkeypatch):
    SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS[:2])
    calls = count_encodes(monkeypatch)
    SentenceEmbedder(max_length=16, device="cpu").transform(TEXTS[:2])
    assert len(calls) == 1
    precision = resolve_precision("auto", "cpu")
    assert sorted(p.name.split("-", 1)[1] for p in fresh_cache.glob("*.npz")) == [f"16-{precision}.npz", f"32-{precision}.npz"]


def test_cache_false_encodes_every_time_and_writes_nothing(fresh_cache, monkeypatch):
    calls = count_encodes(monkeypatch)
    embedder = SentenceEmbedder(max_length=32, device="cpu", cache=False)
    assert np.array_equal(embedder.transform(TEXTS[:2]), embedder.transform(TEXTS[:2]))
    assert len(calls) == 2
    assert not fresh_cache.exists()


def _garbage(data: bytes) -> bytes:
    return b"not a numpy file at all"


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _empty(data: bytes) -> bytes:
    return b""


@pytest.mark.parametrize("damage", [_garbage, _truncated, _empty])
def test_a_damaged_cache_file_is_ignored_and_rebuilt(fresh_cache, monkeypatch, damage):
    first = SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS)
    [cache_file] = fresh_cache.glob("*.npz")
    cache_file.write_bytes(damage(cache_file.read_bytes()))
    monkeypatch.setattr(encoders, "_CACHES", {})
    calls = count_encodes(monkeypatch)
    assert np.array_equal(SentenceEmbedder(max_length=32, device="cpu").transform(TEXTS), first)
    assert len(calls) == 1
    with np.load(cache_file) as stored:
        assert len(stored["hashes"]) == 8 and stored["vectors"].shape == (8, 384)


# Where weights and devices come from. ---------------------------------------------------------------

@pytest.mark.parametrize("name", [DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "minilm"])
def test_the_packaged_model_resolves_to_a_directory_with_safetensors_weights(name):
    directory = resolve_model_dir(name)
    assert (directory / "model.safetensors").is_file()
    assert directory == resolve_model_dir(DEFAULT_MODEL)


def test_a_local_model_directory_is_used_as_it_is(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_model_dir(str(tmp_path)) == tmp_path


def test_a_model_directory_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UserError) as excinfo:
        resolve_model_dir(str(missing))
    assert str(excinfo.value) == f"model: directory {missing} does not exist; give a local model directory or 'all-MiniLM-L6-v2'"


def test_a_directory_without_weights_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UserError) as excinfo:
        resolve_model_dir(str(tmp_path))
    assert str(excinfo.value) == f"model: {tmp_path} holds no weights (model.safetensors or pytorch_model.bin); give a model directory"


def test_a_weights_file_instead_of_its_directory_is_an_error(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(UserError) as excinfo:
        resolve_model_dir(str(weights))
    assert str(excinfo.value) == f"model: {weights} is a file; give the directory that holds config.json and the weights"


def test_a_hub_id_not_in_the_local_cache_is_never_downloaded():
    with pytest.raises(UserError) as excinfo:
        resolve_model_dir("someorg/somemodel")
    assert str(excinfo.value) == (
        "model: 'someorg/somemodel' looks like a hub id; nothing is downloaded at run time and it is not in the "
        "local Hugging Face cache; give a local model directory instead"
    )


@pytest.fixture
def gpu(monkeypatch):
    """``gpu(True/False)`` makes torch report a GPU or none."""
    import torch

    def set_available(available: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: available)

    return set_available


def test_cpu_is_always_available(gpu):
    gpu(False)
    assert resolve_device("cpu") == "cpu"


@pytest.mark.parametrize(("available", "device"), [(False, "cpu"), (True, "cuda")])
def test_auto_picks_the_gpu_when_there_is_one(gpu, available, device):
    gpu(available)
    assert resolve_device("auto") == device
    assert resolve_device() == device


def test_cuda_without_a_gpu_is_an_error(gpu):
    gpu(False)
    with pytest.raises(UserError) as excinfo:
        resolve_device("cuda")
    assert str(excinfo.value) == "device: cuda was requested but no GPU is available; use device: auto or cpu"


def test_an_unknown_device_is_an_error():
    with pytest.raises(UserError) as excinfo:
        resolve_device("tpu")
    assert str(excinfo.value) == "device: 'tpu' is not one of auto, cpu, cuda"


# Preflight: bad input fails before any model trains, and nothing is written. ------------------------

STANCE_CONFIG = "configs/stance_transformers.yaml"
FRAMES_CONFIG = "configs/frames_transformers.yaml"
FRAME_NAMES = "humanitarian, security, sovereignty, regime_legitimacy, resistance, gender, economic"


def bad_inputs(tmp: Path) -> dict[str, tuple[str, list[str], str]]:
    """Case name -> (config, --set overrides, the error after '<config>: '); ``tmp/empty-model`` exists, empty."""
    empty = tmp / "empty-model"
    missing = tmp / "no-such-model"
    return {
        "missing model dir": (STANCE_CONFIG, [f"models.4.params.model={missing}"],
                              f"models.4.params.model: directory {missing} does not exist; "
                              "give a local model directory or 'all-MiniLM-L6-v2'"),
        "dir without weights": (STANCE_CONFIG, [f"models.3.params.model={empty}"],
                                f"models.3.params.model: {empty} holds no weights "
                                "(model.safetensors or pytorch_model.bin); give a model directory"),
        "embedding pipeline's model dir": (STANCE_CONFIG, [f"models.1.params.embed__model={missing}"],
                                           f"models.1.params.embed__model: directory {missing} does not exist; "
                                           "give a local model directory or 'all-MiniLM-L6-v2'"),
        "hub id": (STANCE_CONFIG, ["models.2.params.model=someorg/somemodel"],
                   "models.2.params.model: 'someorg/somemodel' looks like a hub id; nothing is downloaded at run "
                   "time and it is not in the local Hugging Face cache; give a local model directory instead"),
        "cuda without gpu": (STANCE_CONFIG, ["device=cuda"],
                             "device: cuda was requested but no GPU is available; use device: auto or cpu"),
        "stance label not in codebook": (STANCE_CONFIG, ["metrics.stance_subset=[favor, opposed]"],
                                         "metrics.stance_subset.1: 'opposed' is not a stance label of the codebook "
                                         "(favor, against, neutral, none)"),
        "threshold for an unknown frame": (FRAMES_CONFIG, ["models.4.params.threshold={security: 0.4, war: 0.5}"],
                                           f"models.4.params.threshold.war: not a frame of the codebook ({FRAME_NAMES})"),
    }


CASES = list(bad_inputs(Path("tmp")))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_stops_run_experiment_before_training(case, tmp_path, monkeypatch, gpu):
    gpu(False)
    monkeypatch.setenv("EXPERIMENTS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "empty-model").mkdir()
    config, overrides, message = bad_inputs(tmp_path)[case]
    results = tmp_path / "results"
    with pytest.raises(UserError) as excinfo:
        run_experiment(paths.ROOT / config, overrides, results=results, progress=False, log=quiet)
    assert str(excinfo.value) == f"{paths.ROOT / config}: {message}"
    assert not results.exists()
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_on_stderr_and_exit_status_2(case, tmp_path, monkeypatch, gpu, cli_error):
    gpu(False)
    monkeypatch.setenv("EXPERIMENTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(paths.ROOT)  # the configs as the README names them
    (tmp_path / "empty-model").mkdir()
    config, overrides, message = bad_inputs(tmp_path)[case]
    results = tmp_path / "results"
    sets = [arg for o in overrides for arg in ("--set", o)]
    assert cli_error(["run", config, *sets, "--results", str(results), "--no-progress"]) == f"{config}: {message}"
    assert not results.exists()


# The shipped transformer configs, end to end in smoke mode. ------------------------------------------

def test_smoke_mode_shrinks_the_training_of_every_transformer_model():
    config = smoke(load_config(paths.CONFIGS / "stance_transformers.yaml"))
    params = {m.name: m.params for m in config.models}
    assert params["tfidf_svm"] == {"clf__C": 1.0, "clf__class_weight": "balanced"}
    assert params["embed_logreg"] == {"clf__C": 10.0, "embed__max_length": 64}
    assert params["zeroshot_codebook"] == {"max_length": 64}
    assert params["setfit"] == {"num_iterations": 1, "epochs": 1, "batch_size": 16, "max_length": 64}
    assert params["finetune"]["max_steps"] == 2 and params["finetune"]["epochs"] == 1
    assert params["finetune"]["max_length"] == 64 and params["finetune"]["learning_rate"] == 1.0e-4
    assert (config.protocol.folds, config.protocol.repeats, config.metrics.bootstrap) == (2, 1, 100)


@pytest.fixture(scope="module")
def stance_smoke(cache_dir, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return run_experiment(paths.CONFIGS / "stance_transformers.yaml", results=results, progress=False, log=quiet,
                          smoke_mode=True)


def read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return metrics, [json.loads(line) for line in lines]


@pytest.mark.slow
def test_every_stance_family_is_evaluated_in_smoke_mode(stance_smoke):
    metrics, predictions = read_run(stance_smoke)
    stance = metrics["tasks"]["stance"]
    models = ["tfidf_svm", *FAMILIES]
    assert list(stance["models"]) == models
    for name in models:
        assert stance["models"][name]["n"] == stance["n_paragraphs"]
        assert 0 <= stance["models"][name]["metrics"]["macro_f1"]["value"] <= 1
        records = [p for p in predictions if p["model"] == name]
        assert len(records) == stance["n_paragraphs"]  # 2 folds x 1 repeat: each paragraph tested once
        assert all(sum(r["proba"].values()) == pytest.approx(1, abs=1e-4) for r in records)
        assert all(r["pred"] in STANCE_LABELS for r in records)


@pytest.mark.slow
def test_a_smoke_run_repeated_with_the_same_seed_gives_identical_results(stance_smoke, tmp_path):
    again = run_experiment(paths.CONFIGS / "stance_transformers.yaml", results=tmp_path, progress=False, log=quiet,
                           smoke_mode=True)
    first_metrics, _ = read_run(stance_smoke)
    again_metrics, _ = read_run(again)
    assert again_metrics["tasks"] == first_metrics["tasks"]
    assert (again / "predictions.jsonl").read_bytes() == (stance_smoke / "predictions.jsonl").read_bytes()


@pytest.mark.slow
def test_every_frames_family_is_evaluated_in_smoke_mode(cache_dir, tmp_path):
    run_dir = run_experiment(paths.CONFIGS / "frames_transformers.yaml", results=tmp_path, progress=False, log=quiet,
                             smoke_mode=True)
    metrics, predictions = read_run(run_dir)
    frames = metrics["tasks"]["frames"]
    models = ["tfidf_logreg", *FAMILIES]
    assert list(frames["models"]) == models
    for name in models:
        assert frames["models"][name]["n"] == frames["n_paragraphs"]
        records = [p for p in predictions if p["model"] == name]
        assert len(records) == frames["n_paragraphs"]
        assert all(set(r["pred"]) <= set(frames["labels"]) for r in records)
        assert all(set(r["proba"]) == set(frames["labels"]) for r in records)


def test_precision_is_fp32_or_bf16_and_anything_else_is_an_error():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cpu") in ("fp32", "bf16")
    with pytest.raises(UserError, match=r"^precision: 'fp16' is not one of auto, fp32, bf16$"):
        resolve_precision("fp16", "cpu")


def test_bf16_inference_stays_close_to_fp32():
    exact = SentenceEmbedder(max_length=32, device="cpu", precision="fp32", cache=False).encode(TEXTS)
    fast = SentenceEmbedder(max_length=32, device="cpu", precision="bf16", cache=False).encode(TEXTS)
    assert fast.dtype == np.float32
    assert np.abs(fast - exact).max() < 1e-2
    assert (exact * fast).sum(axis=1).min() > 0.999  # cosine between the two versions of each embedding


def test_codebook_logreg_uses_a_quoted_example_only_when_it_trains_on_that_paragraph(codebook):
    from experiments.annotations import load_paragraphs
    from experiments.models.sentence import CodebookLogReg

    corpus = load_paragraphs()
    quoted = {e.paragraph for l in codebook.stance.labels for e in l.examples}
    held_out_doc = "labour_statement"
    train = [p["text"] for p in corpus.values() if p["doc_id"] != held_out_doc]
    model = CodebookLogReg(labels=list(codebook.stance_labels), device="cpu")
    used = model._evidence(train)
    examples = [item.paragraph for item in used if item.kind == "example"]
    assert examples and all(corpus[pid]["doc_id"] != held_out_doc for pid in examples)
    assert set(examples) == {pid for pid in quoted if corpus[pid]["doc_id"] != held_out_doc}
    # what the codebook wrote itself is always there: every label keeps its definition, cues and illustrations
    for label in codebook.stance.labels:
        mine = [item for item in used if item.label == label.name and item.kind != "example"]
        assert len(mine) == 1 + len(label.cues) + len(label.illustrations)
    assert [i for i in model._evidence(["unrelated text"]) if i.kind == "example"] == []


def test_codebook_logreg_learns_a_stance_its_training_labels_never_show(codebook):
    model = build_model("codebook_logreg", "stance", seed=0, labels=list(codebook.stance_labels),
                        params={"max_length": 64}, device="cpu")
    texts = ["The ministry named a new spokesman.", "Exiles urged foreign governments to act against the regime."] * 3
    y = np.array([3, 0] * 3)  # none and favor only
    model.fit(texts, y)
    proba = model.predict_proba(["We reject any foreign military attack on Iran; bombs never bring freedom."])
    assert proba.shape == (1, 4) and proba[0, 1] > 0.05  # `against` is learned from the codebook alone


def test_codebook_logreg_auto_prior_weight_is_chosen_from_out_of_document_predictions(codebook):
    texts = ["The ministry named a new spokesman.", "Exiles urged foreign governments to act against the regime.",
             "Parliament debated the budget.", "Activists asked the UN to intervene.",
             "The court jailed a journalist.", "Senators demanded new sanctions on Tehran."]
    y = np.array([3, 0, 3, 0, 3, 0])
    build = lambda **p: build_model("codebook_logreg", "stance", seed=0, labels=list(codebook.stance_labels),
                                    params={"max_length": 64, **p}, device="cpu")
    grouped = build().fit(texts, y, groups=["a", "a", "b", "b", "c", "c"])
    assert grouped.prior_weight_ in grouped.PRIOR_GRID
    assert grouped.prior_weight_source_ == "auto: out-of-document macro-F1 over 3 training documents"
    ungrouped = build().fit(texts, y)
    assert (ungrouped.prior_weight_, ungrouped.prior_weight_source_) == (
        0.7, "auto: fewer than three training documents, default used")
    fixed = build(prior_weight=0.25).fit(texts, y, groups=["a", "a", "b", "b", "c", "c"])
    assert (fixed.prior_weight_, fixed.prior_weight_source_) == (0.25, "fixed")
