"""The run directory: opening one, finding the newest of a config, runs with saved models, staging a new one,
and the one message for a path that is not a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from experiments import cli
from experiments.errors import UserError
from experiments.rundir import (
    latest_runs, model_path, new_run_dir, open_run, open_runs, run_with_models, runs_of, staged,
)

NOT_PRINTED = "pass a directory printed by `run`"


def make_run(results: Path, config: str, stamp: str, final_fit: bool = False, models: bool = False) -> Path:
    """A finished run directory with the files every reader needs, a few records and texts."""
    run_dir = results / config / f"{stamp}-abcdef"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": config, "final_fit": final_fit}), encoding="utf-8")
    (run_dir / "metrics.json").write_text(json.dumps({"config": config, "protocol": {"name": "kfold"}, "tasks": {}}),
                                          encoding="utf-8")
    (run_dir / "meta.json").write_text(json.dumps({"run_id": run_dir.name}), encoding="utf-8")
    records = [{"task": "stance", "id": "p1", "doc_id": "d1", "gold": "favor", "pred": "favor"},
               {"task": "stance", "id": "p1", "doc_id": "d1", "gold": "favor", "pred": "none", "fraction": 0.5},
               {"task": "frames", "id": "p1", "doc_id": "d1", "gold": [], "pred": []}]
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (run_dir / "texts.jsonl").write_text(json.dumps({"id": "p1", "doc_id": "d1", "text": "Aid now."}) + "\n",
                                         encoding="utf-8")
    if models:
        (run_dir / model_path("stance", "tfidf_logreg")).mkdir(parents=True)
    return run_dir


@pytest.fixture
def results(tmp_path):
    """Two runs of `default` (the newer saved models), one of `stance_baselines`, and debris that is no run."""
    root = tmp_path / "results"
    make_run(root, "default", "20260101-000000", final_fit=True, models=True)
    make_run(root, "default", "20260102-000000", final_fit=True, models=True)
    make_run(root, "stance_baselines", "20260101-000000")
    (root / "stance_baselines" / ".20260109-000000-abcdef.partial").mkdir()  # an interrupted run
    (root / "stance_baselines" / "20260108-000000-abcdef").mkdir()  # no meta.json: not finished
    (root / "empty_config").mkdir()
    return root


def test_a_run_opens_with_its_metrics_and_reads_the_other_files_when_asked(results):
    run = open_run(results / "default" / "20260101-000000-abcdef")
    assert run.metrics["config"] == "default" and run.meta == {"run_id": "20260101-000000-abcdef"}
    assert run.config == {"final_fit": True, "name": "default"} and run.saves_models
    assert [(r["task"], r["pred"]) for r in run.predictions] == [("stance", "favor"), ("frames", [])]  # no curve
    assert [r["task"] for r in run.records("frames")] == ["frames"]
    assert run.texts == {"p1": "Aid now."} and run.top_features == {}


def test_the_newest_finished_run_of_each_config_is_found(results):
    assert latest_runs(results, ["stance_baselines", "default"]) == [
        results / "stance_baselines" / "20260101-000000-abcdef", results / "default" / "20260102-000000-abcdef"]
    assert [p.parent.name for p in latest_runs(results)] == ["default", "stance_baselines"]
    assert runs_of(results / "stance_baselines") == [results / "stance_baselines" / "20260101-000000-abcdef"]


def test_a_config_without_runs_is_named_with_the_configs_that_have_them(results, capsys):
    assert cli.main(["table", "--results", str(results), "--config", "nope"]) == 2
    assert capsys.readouterr().err == (f"error: {results}: no run of config `nope`; name one of the configs with runs: "
                                       "default, stance_baselines\n")
    with pytest.raises(UserError) as caught:
        latest_runs(results, ["smoke"])
    assert str(caught.value) == (f"{results}: no run of config `smoke`; run `python -m experiments run configs/smoke.yaml` "
                                 "to make one, or name one of the configs with runs: default, stance_baselines")


def test_a_results_folder_without_runs_says_to_run_a_config_first(tmp_path):
    with pytest.raises(UserError) as caught:
        latest_runs(tmp_path)
    assert str(caught.value) == f"{tmp_path}: no finished runs; run `python -m experiments run CONFIG` first"


def test_every_path_that_is_not_a_run_gets_the_same_message_and_a_way_out(results):
    def message(path: Path) -> str:
        with pytest.raises(UserError) as caught:
            open_run(path)
        return str(caught.value)

    assert message(results / "gone") == f"{results / 'gone'}: not a run directory (folder not found); {NOT_PRINTED}"
    assert message(results / "empty_config") == f"{results / 'empty_config'}: not a run directory (no metrics.json); {NOT_PRINTED}"
    assert message(results / "default") == (
        f"{results / 'default'}: not a run directory (no metrics.json); it holds the runs of config `default`; "
        f"pass one of them, e.g. its newest {results / 'default' / '20260102-000000-abcdef'}")
    assert message(results) == (
        f"{results}: not a run directory (no metrics.json); it is a results folder (configs with runs: default, "
        f"stance_baselines); pass a run directory such as {results / 'default' / '20260102-000000-abcdef'}")


def test_a_run_without_meta_is_not_finished_and_a_report_refuses_it(results):
    unfinished = results / "stance_baselines" / "20260108-000000-abcdef"
    (unfinished / "metrics.json").write_text(json.dumps({"config": "stance_baselines", "tasks": {}}), encoding="utf-8")
    with pytest.raises(UserError) as caught:
        open_runs([unfinished])
    assert str(caught.value) == f"{unfinished}: not a run directory (no meta.json); {NOT_PRINTED}"


def test_a_damaged_file_names_itself_and_says_to_rerun_the_config(results):
    run_dir = results / "default" / "20260101-000000-abcdef"
    (run_dir / "metrics.json").write_text('{"config": "default",\n "tasks": ', encoding="utf-8")
    with pytest.raises(UserError) as caught:
        open_run(run_dir)
    assert str(caught.value) == (
        f"{run_dir / 'metrics.json'}:2: not valid JSON (Expecting value); the file is damaged or cut off; "
        f"re-run the config to make the run again: python -m experiments run {run_dir / 'config.yaml'}")
    newer = results / "default" / "20260102-000000-abcdef"
    (newer / "meta.json").write_text("[]", encoding="utf-8")
    run = open_run(newer)  # meta.json is read when first used
    with pytest.raises(UserError) as caught:
        run.meta
    assert str(caught.value) == (
        f"{newer / 'meta.json'}: expected a JSON object, found a list; the file is damaged; "
        f"re-run the config to make the run again: python -m experiments run {newer / 'config.yaml'}")


def test_same_labels_get_their_run_id(results):
    newest = results / "default" / "20260102-000000-abcdef"
    runs = open_runs([newest, results / "default" / "20260101-000000-abcdef", results / "stance_baselines" / "20260101-000000-abcdef"])
    assert [r.label for r in runs] == ["default (20260102-000000-abcdef)", "default (20260101-000000-abcdef)",
                                       "stance_baselines"]


def test_predict_finds_the_newest_run_that_saved_models(results):
    newest = results / "default" / "20260102-000000-abcdef"
    assert run_with_models(results / "default") == newest
    assert run_with_models(newest) == newest


def test_runs_that_saved_no_models_say_why_and_how_to_get_them(results):
    with pytest.raises(UserError) as caught:
        run_with_models(results / "stance_baselines")
    assert str(caught.value) == (
        f"{results / 'stance_baselines'}: its runs saved no models (config `stance_baselines` has final_fit: false); "
        "run it with `python -m experiments run configs/stance_baselines.yaml --set final_fit=true`, "
        f"or use the runs of a config that saved them: {results / 'default'}")


def test_a_run_whose_models_are_gone_says_to_run_it_again(results):
    run_dir = results / "default" / "20260102-000000-abcdef"
    (run_dir / model_path("stance", "tfidf_logreg")).rmdir()
    (run_dir / "models" / "stance").rmdir()
    (run_dir / "models").rmdir()
    with pytest.raises(UserError) as caught:
        run_with_models(run_dir)
    assert str(caught.value) == (f"{run_dir}: no saved models, although the run set final_fit: true (models/ is gone); "
                                 "run it again: python -m experiments run configs/default.yaml")


def test_a_new_run_appears_only_when_every_file_is_written_and_never_overwrites(tmp_path):
    first = new_run_dir(tmp_path, "tiny", "20260101-000000", "abcdef")
    with staged(first) as staging:
        (staging / "metrics.json").write_text("{}", encoding="utf-8")
        assert not first.exists()
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["20260101-000000-abcdef"]
    second = new_run_dir(tmp_path, "tiny", "20260101-000000", "abcdef")
    assert second.name == "20260101-000000-abcdef-2"
    with pytest.raises(KeyboardInterrupt), staged(second) as staging:
        (staging / "metrics.json").write_text("{}", encoding="utf-8")
        raise KeyboardInterrupt
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["20260101-000000-abcdef"]


def test_models_are_saved_under_the_task_and_a_file_safe_model_name():
    assert model_path("frames", "embed_logreg+semeval") == Path("models/frames/embed_logreg_semeval")
