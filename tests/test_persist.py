"""Saved models: ``final_fit: true`` writes one directory per task and model; ``load_model`` reads it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from experiments import paths, run
from experiments.errors import UserError
from experiments.models import build_model, encoders
from experiments.models.persist import FORMAT, PREPROCESSING, load_model, save_model
from experiments.run import run_experiment

CONFIG = f"""\
extends: {paths.CONFIGS / "base.yaml"}
description: one model per family, fitted on all data and saved
tasks: [stance, frames]
data: {{kinds: [headline]}}        # the five headlines keep every fit tiny
protocol: {{name: kfold, folds: 2, repeats: 1}}
metrics: {{bootstrap: 100}}
device: cpu
final_fit: true
models:
  - name: tfidf_logreg
  - name: finetune
    params: {{max_steps: 1, max_length: 32}}
  - name: setfit
    params: {{num_iterations: 1, max_length: 32}}
  - name: embed_logreg
    params: {{embed__max_length: 32}}
"""
MODELS = {"tfidf_logreg": "tfidf_logreg.v1", "finetune": "finetune.v1", "setfit": "setfit.v1",
          "embed_logreg": "embed_logreg.v1"}
TASKS = ["stance", "frames"]
# Of the frames, security is on two of the five headlines, humanitarian, regime_legitimacy and resistance on one,
# the others on none. One-vs-rest needs min_train_positives (2) of each; the transformer heads train on any frame
# that varies.
NOT_LEARNED = {
    "tfidf_logreg": ["humanitarian", "sovereignty", "regime_legitimacy", "resistance", "gender", "economic"],
    "embed_logreg": ["humanitarian", "sovereignty", "regime_legitimacy", "resistance", "gender", "economic"],
    "finetune": ["sovereignty", "gender", "economic"],
    "setfit": ["sovereignty", "gender", "economic"],
}
NEW = ["Air strikes hit a base near Isfahan", "Exiles call on the world to act", "Bread now costs twice as much"]
TEXTS = ["bombs fall on the city", "talks resume in oman", "sanctions hurt workers", "missiles hit the port",
         "diplomats meet again", "factories close under sanctions"]
STANCE = np.array([0, 1, 2, 0, 1, 2])


def quiet(*_args):
    pass


# Not the session's trained run (conftest run_dir): one model of every family (transformers included) is saved here,
# and the final models are captured in memory as the run fitted them.
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run with final_fit, and the final models as the run held them in memory before saving."""
    tmp = tmp_path_factory.mktemp("persist")
    config = tmp / "persist.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    in_memory: dict[tuple[str, str], object] = {}
    original = run.fit_final_models

    def capturing(data, config, codebook_version):
        fitted, seconds = original(data, config, codebook_version)
        for where, model, _card in fitted:
            in_memory[where.parts[1], where.parts[2]] = model
        return fitted, seconds

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPERIMENTS_CACHE", str(tmp / "cache"))
        mp.setattr(encoders, "_CACHES", {})
        mp.setattr(run, "fit_final_models", capturing)
        run_dir = run_experiment(config, results=tmp / "results", progress=False, log=quiet)
        yield run_dir, in_memory


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.mark.slow
def test_final_fit_saves_every_model_of_every_task(saved_run):
    run_dir, _ = saved_run
    assert sorted(str(p.relative_to(run_dir)) for p in (run_dir / "models").glob("*/*")) == sorted(
        f"models/{task}/{model}" for task in TASKS for model in MODELS
    )
    for task in TASKS:
        for model in MODELS:
            files = files_under(run_dir / "models" / task / model)
            assert {"model.json", "estimator.joblib"} <= set(files), files


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", ["finetune", "setfit"])
def test_transformer_weights_are_saved_as_safetensors_only(saved_run, task, model):
    files = files_under(saved_run[0] / "models" / task / model)
    assert "weights/model.safetensors" in files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".ckpt"))], files


@pytest.mark.slow
@pytest.mark.parametrize("model", ["tfidf_logreg", "embed_logreg"])
def test_scikit_learn_models_need_no_weights_folder(saved_run, model):
    assert not (saved_run[0] / "models" / "stance" / model / "weights").exists()


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", ["finetune", "setfit"])
def test_the_pickle_holds_no_network_weights(saved_run, task, model):
    pickle = saved_run[0] / "models" / task / model / "estimator.joblib"
    weights = saved_run[0] / "models" / task / model / "weights" / "model.safetensors"
    assert pickle.stat().st_size < 1_000_000 < weights.stat().st_size
    assert not hasattr(joblib.load(pickle), "model_")


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", list(MODELS))
def test_the_model_card_says_what_was_trained_on_what(saved_run, codebook, task, model):
    run_dir, _ = saved_run
    card = json.loads((run_dir / "models" / task / model / "model.json").read_text(encoding="utf-8"))
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    assert card["format"] == FORMAT == 1
    assert card["model"] == MODELS[model]
    assert card["task"] == task
    assert card["labels"] == metrics["tasks"][task]["labels"]
    assert card["frame_level"] == ("project" if task == "frames" else None)
    assert card["codebook_version"] == codebook.version
    assert card["config"] == "persist"
    assert card["trained_on"] == {"source": "gold", "fingerprint": meta["data"]["fingerprint"], "n": 5,
                                  "kinds": ["headline"]}
    assert card["preprocessing"] == PREPROCESSING
    assert card["not_learned"] == (NOT_LEARNED[model] if task == "frames" else [])
    assert card["environment"]["packages"]["scikit-learn"]
    assert card["saved"]
    config_params = {"tfidf_logreg": {}, "finetune": {"max_steps": 1, "max_length": 32},
                     "setfit": {"num_iterations": 1, "max_length": 32}, "embed_logreg": {"embed__max_length": 32}}
    assert card["params"] == config_params[model]


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("model", list(MODELS))
def test_a_loaded_model_predicts_exactly_what_the_run_fitted(saved_run, task, model):
    run_dir, in_memory = saved_run
    estimator, card = load_model(run_dir / "models" / task / model)
    assert card["task"] == task
    again, _ = load_model(run_dir / "models" / task / model)
    expected = np.asarray(in_memory[task, model].predict_proba(NEW))
    assert np.array_equal(np.asarray(estimator.predict_proba(NEW)), expected)
    assert np.array_equal(np.asarray(again.predict_proba(NEW)), expected)
    assert np.array_equal(estimator.predict(NEW), in_memory[task, model].predict(NEW))
    columns = len(card["labels"]) if task == "frames" else len(in_memory[task, model].classes_)
    assert expected.shape == (3, columns)


@pytest.mark.slow
def test_a_saved_model_loads_in_a_new_process(saved_run, tmp_path):
    run_dir, in_memory = saved_run
    script = (
        "import json, sys\n"
        "from experiments.models.persist import load_model\n"
        "model, card = load_model(sys.argv[1])\n"
        "print(json.dumps(model.predict_proba(json.loads(sys.argv[2])).tolist()))\n"
    )
    # A new interpreter, so that nothing the run left in memory (imports, caches, registered classes) can help.
    env = {**os.environ, "EXPERIMENTS_CACHE": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script, str(run_dir / "models" / "frames" / "finetune"), json.dumps(NEW)],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    proba = np.array(json.loads(done.stdout))
    assert proba == pytest.approx(in_memory["frames", "finetune"].predict_proba(NEW), abs=1e-6)


def test_save_then_load_round_trips_a_model_and_its_card(tmp_path):
    model = build_model("tfidf_logreg", "stance", seed=0).fit(TEXTS, STANCE)
    save_model(model, tmp_path / "m", {"model": "tfidf_logreg.v1", "task": "stance", "labels": ["a", "b", "c"]})
    loaded, card = load_model(tmp_path / "m")
    assert np.array_equal(loaded.predict_proba(NEW), model.predict_proba(NEW))
    assert {k: card[k] for k in ("format", "model", "task", "labels", "preprocessing")} == {
        "format": 1, "model": "tfidf_logreg.v1", "task": "stance", "labels": ["a", "b", "c"], "preprocessing": PREPROCESSING,
    }
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["estimator.joblib", "model.json"]


def test_save_never_overwrites_an_earlier_model(tmp_path):
    model = build_model("majority", "stance", seed=0).fit(TEXTS, STANCE)
    save_model(model, tmp_path / "m", {"model": "majority.v1"})
    before = (tmp_path / "m" / "model.json").read_bytes()
    with pytest.raises(FileExistsError):
        save_model(model, tmp_path / "m", {"model": "other"})
    assert (tmp_path / "m" / "model.json").read_bytes() == before


def test_loading_a_directory_without_a_saved_model_is_an_error(tmp_path):
    with pytest.raises(UserError) as excinfo:
        load_model(tmp_path)
    assert str(excinfo.value) == f"{tmp_path}: no saved model here (model.json is missing); run a config with final_fit: true"


def test_a_model_saved_in_another_format_is_refused(tmp_path):
    save_model(build_model("majority", "stance", seed=0).fit(TEXTS, STANCE), tmp_path / "m", {"model": "majority.v1"})
    card = json.loads((tmp_path / "m" / "model.json").read_text(encoding="utf-8"))
    (tmp_path / "m" / "model.json").write_text(json.dumps({**card, "format": 2}), encoding="utf-8")
    with pytest.raises(UserError) as excinfo:
        load_model(tmp_path / "m")
    assert str(excinfo.value) == f"{tmp_path / 'm' / 'model.json'}: saved with model format 2, this version reads 1"
