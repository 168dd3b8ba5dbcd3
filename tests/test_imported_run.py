"""A public-style stance table with several targets and a predefined split, imported and run end to end."""

from __future__ import annotations

import csv
import json

import pytest

from experiments import cli, paths
from experiments.io import read_jsonl

TARGETS = ["Sanctions", "Military strikes", "Nuclear deal"]
PHRASES = {"FAVOR": "we must back this now", "AGAINST": "this would be a disaster", "NONE": "the café was quiet"}


@pytest.fixture
def table(tmp_path, imported_root):
    path = tmp_path / "stance.tsv"
    with open(path, "w", newline="", encoding="latin-1") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["ID", "Target", "Tweet", "Stance", "Split"])
        for i in range(90):
            target, stance = TARGETS[i % 3], list(PHRASES)[(i // 3) % 3]
            split = "test" if i % 5 == 0 else "dev" if i % 7 == 0 else "train"
            writer.writerow([f"t{i}", target, f"On {target.lower()}: {PHRASES[stance]} (#{i})", stance, split])
    return path


def config(tmp_path, mode: str):
    path = tmp_path / f"{mode}.yaml"
    path.write_text(f"""\
extends: {paths.CONFIGS / "base.yaml"}
tasks: [stance]
data: {{source: policy_tweets, target_mode: {mode}}}
protocol: {{name: split}}
metrics: {{bootstrap: 100, stance_subset: [favor, against]}}
models:
  - name: majority
  - name: tfidf_logreg
""", encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["per_target", "input"])
def test_import_then_run_scores_the_test_split_with_every_target(table, tmp_path, capsys, mode):
    argv = ["import", str(table), "--name", "policy_tweets", "--text-column", "Tweet", "--stance-column", "Stance",
            "--target-column", "Target", "--split-column", "Split", "--id-column", "ID", "--encoding", "latin-1",
            "--map", "FAVOR=favor", "--map", "AGAINST=against", "--map", "NONE=none"]
    assert cli.main(argv) == 0
    assert "policy_tweets: 90 rows" in capsys.readouterr().out

    assert cli.main(["run", str(config(tmp_path, mode)), "--results", str(tmp_path / "results"), "--no-progress"]) == 0
    run_dir = tmp_path / "results" / mode
    [run_dir] = [d for d in run_dir.iterdir() if not d.name.startswith(".")]
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    stance = metrics["tasks"]["stance"]
    assert stance["labels"] == ["against", "favor", "none"]
    assert metrics["protocol"]["name"] == "split"
    test_ids = {f"t{i}" for i in range(90) if i % 5 == 0}
    records = [r for _, r in read_jsonl(run_dir / "predictions.jsonl")]
    assert {r["id"] for r in records} == test_ids  # dev and train rows are never scored
    assert stance["models"]["tfidf_logreg"]["n"] == len(test_ids) == 18
    assert stance["models"]["tfidf_logreg"]["metrics"]["macro_f1"]["value"] > stance["models"]["majority"]["metrics"]["macro_f1"]["value"]
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["data"]["source"] == "policy_tweets" and meta["data"]["n_paragraphs"] == 90


def test_a_stance_subset_the_dataset_lacks_is_named(table, tmp_path, capsys):
    cli.main(["import", str(table), "--name", "policy_tweets", "--text-column", "Tweet", "--stance-column", "Stance",
              "--target-column", "Target", "--split-column", "Split", "--encoding", "latin-1"])
    capsys.readouterr()
    path = config(tmp_path, "per_target")
    assert cli.main(["run", str(path), "--results", str(tmp_path / "results")]) == 2
    assert capsys.readouterr().err == (f"error: {path}: metrics.stance_subset.0: 'favor' is not a stance label of "
                                       "dataset 'policy_tweets' (AGAINST, FAVOR, NONE)\n")
