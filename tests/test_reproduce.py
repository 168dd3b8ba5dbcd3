"""`reproduce`: a saved run re-runs to identical numbers, and any difference is named."""

from __future__ import annotations

import json
import shutil

import pytest

from experiments import cli, paths
from experiments.errors import UserError
from experiments.reproduce import reproduce
from experiments.run import run_experiment

CONFIG = f"""\
extends: {paths.CONFIGS / "base.yaml"}
tasks: [stance]
protocol: {{name: kfold, folds: 2, repeats: 1, learning_curve: {{fractions: [0.5]}}}}
metrics: {{bootstrap: 100}}
models:
  - name: majority
  - name: tfidf_svm
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    config = tmp_path_factory.mktemp("configs") / "again.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    return run_experiment(config, results=tmp_path_factory.mktemp("results"), progress=False, log=lambda *_: None)


def test_a_run_reproduces_to_identical_metrics_and_predictions(run_dir):
    outcome = reproduce(run_dir, log=lambda *_: None)
    assert outcome.identical and outcome.metric_differences == [] and outcome.predictions_identical
    assert outcome.lines()[0].startswith(f"reproduced {run_dir}: all ")
    assert outcome.new_run is None  # the scratch run is not kept


def test_a_changed_number_is_named_with_its_path_and_both_values(run_dir, tmp_path, capsys):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    metrics = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    saved = metrics["tasks"]["stance"]["models"]["tfidf_svm"]["metrics"]["macro_f1"]["value"]
    metrics["tasks"]["stance"]["models"]["tfidf_svm"]["metrics"]["macro_f1"]["value"] = 0.999
    (copy / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    assert cli.main(["reproduce", str(copy)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"NOT reproduced {copy}: 1 of {outcome_count(metrics)} metric values differ"
    assert out[1] == f"  tasks.stance.models.tfidf_svm.metrics.macro_f1.value: 0.999 -> {saved}"


def outcome_count(metrics: dict) -> int:
    from experiments.reproduce import count_values

    return count_values(metrics)


def test_kept_runs_go_where_asked_with_their_plots_and_summary(run_dir, tmp_path):
    outcome = reproduce(run_dir, results=tmp_path / "again", log=lambda *_: None)
    assert outcome.identical and outcome.new_run.parent.parent == tmp_path / "again"
    assert (outcome.new_run / "summary.md").is_file() and (outcome.new_run / "plots" / "stance").is_dir()


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(UserError) as excinfo:
        reproduce(tmp_path)
    assert str(excinfo.value) == f"{tmp_path}: not a run directory (no metrics.json); pass a directory printed by `run`"


def test_a_run_without_its_config_is_refused(run_dir, tmp_path):
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    (copy / "config.yaml").unlink()
    with pytest.raises(UserError) as excinfo:
        reproduce(copy)
    assert str(excinfo.value) == f"{copy}: not a run directory (no config.yaml); pass a directory printed by `run`"


def test_a_changed_interval_is_one_difference(run_dir, tmp_path):
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    metrics = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    ci = metrics["tasks"]["stance"]["models"]["tfidf_svm"]["metrics"]["macro_f1"]["ci"]
    metrics["tasks"]["stance"]["models"]["tfidf_svm"]["metrics"]["macro_f1"]["ci"] = [0.0, 1.0]
    (copy / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    outcome = reproduce(copy, log=lambda *_: None)
    assert outcome.metric_differences == [("tasks.stance.models.tfidf_svm.metrics.macro_f1.ci", [0.0, 1.0], ci)]
