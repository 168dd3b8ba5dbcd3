"""`reproduce`: a saved run re-runs to identical numbers, and any difference is named."""

from __future__ import annotations

import json
import shutil

import pytest

from experiments import cli
from experiments.analysis import count_values
from experiments.errors import UserError
from experiments.reproduce import reproduce

# Each test re-runs the session's trained run (conftest run_dir) at most once: a reproduction trains it again.


def test_a_run_reproduces_to_identical_metrics_and_predictions_and_a_kept_run_has_its_plots_and_summary(run_dir,
                                                                                                        tmp_path):
    outcome = reproduce(run_dir, results=tmp_path / "again", log=lambda *_: None)
    assert outcome.identical and outcome.metric_differences == [] and outcome.predictions_identical
    assert outcome.lines()[0].startswith(f"reproduced {run_dir}: all ")
    assert outcome.new_run.parent.parent == tmp_path / "again"
    assert (outcome.new_run / "summary.md").is_file() and (outcome.new_run / "plots" / "stance").is_dir()


def test_a_changed_number_is_named_with_its_path_and_both_values_and_a_changed_interval_is_one_difference(
        run_dir, tmp_path, capsys):
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    metrics = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    macro_f1 = metrics["tasks"]["stance"]["models"]["tfidf_logreg"]["metrics"]["macro_f1"]
    saved_value, saved_ci = macro_f1["value"], macro_f1["ci"]
    macro_f1["value"], macro_f1["ci"] = 0.999, [0.0, 1.0]
    (copy / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    assert cli.main(["reproduce", str(copy)]) == 1
    where = "tasks.stance.models.tfidf_logreg.metrics.macro_f1"
    lines = capsys.readouterr().out.splitlines()
    assert lines[:3] == [
        f"NOT reproduced {copy}: 2 of {count_values(metrics)} metric values differ",
        f"  {where}.value: 0.999 -> {saved_value}",
        f"  {where}.ci: [0.0, 1.0] -> {saved_ci}",
    ]
    # The rest says what else changed since the run (a dirty checkout, say); the scratch run is not kept.
    assert not [line for line in lines if "the new run is kept" in line]


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
