"""summary.md and the README's results section (``summary``), written from a run's saved metrics.

The run is built by hand (tests/inline_run.py): these tests check exact numbers, p-values and table rows worked out
from its inline metrics, which a trained run cannot pin down.
"""

from __future__ import annotations

import json
import shutil

import yaml
from inline_run import CONFIG, PAIRED, lodo, run, write_run  # noqa: F401 (fixtures)

from experiments.summary import fmt_p, paired_table, readme_results, summary_markdown


def test_a_p_value_of_zero_reads_as_below_one_over_the_resamples():
    assert fmt_p(0.0, 1000) == "< 0.001"
    assert fmt_p(0.21, 1000) == "= 0.21"


def test_the_stance_subset_column_is_named_after_the_labels_it_averages(tmp_path):
    config = {**CONFIG, "metrics": {**CONFIG["metrics"], "stance_subset": ["against", "neutral"]}}
    run = write_run(tmp_path / "results", config=config)
    header = next(line for line in summary_markdown(run).splitlines() if line.startswith("| model | n | accuracy"))
    assert header.split(" | ")[4] == "macro-F1 (against, neutral)"
    assert "favor, against" not in summary_markdown(run)
    # A label the task does not have is not averaged, so it is not named either.
    config = {**CONFIG, "metrics": {**CONFIG["metrics"], "stance_subset": ["pro", "favor"]}}
    other = write_run(tmp_path / "other", config=config)
    assert "| macro-F1 (favor) |" in summary_markdown(other)


def test_the_summary_names_the_protocol_the_significant_tests_and_the_learning_curve(run):
    summary = summary_markdown(run)
    assert "- protocol: stratified 2-fold cross-validation × 2 repeats; 95% CIs from 1000 paragraph-level" in summary
    assert ("Paired bootstrap tests: 1 of 2 comparisons differ at p < 0.05 (better model first; the rest could be "
            "resampling noise):\n\n- tfidf_svm beats majority by 0.37 macro-F1 [0.26, 0.45], p < 0.001\n") in summary
    assert "| model | 50% (n=1) | 100% (n=2.5) |\n|---|---|---|\n| majority | 0.21 [0.11, 0.31] |" in summary
    assert "- [learning curve](plots/stance/learning_curve.png)" in summary


def test_a_summary_without_paired_tests_or_curve_leaves_them_out(lodo):
    metrics = json.loads((lodo / "metrics.json").read_text(encoding="utf-8"))
    for info in metrics["tasks"].values():
        info.pop("paired")
    (lodo / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    summary = summary_markdown(lodo)
    assert "Paired bootstrap" not in summary and "Learning curve" not in summary


def test_the_readme_section_holds_scores_paired_tests_between_trained_models_and_learning_curves(run, tmp_path):
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    metrics["tasks"]["stance"]["models"]["tfidf_cnb"] = metrics["tasks"]["stance"]["models"]["tfidf_svm"]
    metrics["tasks"]["stance"]["paired"] = PAIRED + [
        {"a": "tfidf_svm", "b": "tfidf_cnb", "metric": "macro_f1", "diff": 0.12, "ci": [0.03, 0.21], "p": 0.016,
         "resamples": 1000},
        {"a": "tfidf_cnb", "b": "majority", "metric": "macro_f1", "diff": 0.1, "ci": [-0.01, 0.2], "p": 0.08,
         "resamples": 1000},
    ]
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    table = paired_table([run]).splitlines()
    assert table[2] == "| kfold_run | stance | tfidf_svm | tfidf_cnb | 0.12 [0.03, 0.21] | 0.016 | yes |"
    assert len([line for line in table if line.startswith("| kfold_run")]) == 1  # pairs with a chance baseline are left out
    assert table[-1] == "- kfold_run, stance: tfidf_svm beats the majority baseline (p < 0.05); tfidf_cnb does not."
    section = readme_results([run])
    assert section.startswith("| config | task | model |")
    assert f"![stance learning curve, kfold_run]({run / 'plots' / 'stance' / 'learning_curve.png'})" in section


def test_the_readme_puts_each_protocol_side_by_side_and_names_the_model_predict_uses(run, tmp_path):
    lodo = tmp_path / "results" / "lodo_run" / run.name
    shutil.copytree(run, lodo)
    metrics = json.loads((lodo / "metrics.json").read_text(encoding="utf-8"))
    metrics["config"] = "lodo_run"
    metrics["protocol"] = {**metrics["protocol"], "name": "lodo", "group_column": "doc_id"}
    info = metrics["tasks"]["stance"]
    info["selection"] = {"model": "tfidf_svm", "metric": "macro_f1", "value": 0.31, "ci": [0.2, 0.4], "n": 60,
                         "protocol": "lodo", "transfer": True}
    (lodo / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    unsaved = readme_results([lodo, run])  # a run without final_fit saves no models: predict never reads it
    assert ": `predict` uses" not in unsaved and "| tfidf_svm | **" not in unsaved
    config = yaml.safe_load((lodo / "config.yaml").read_text(encoding="utf-8")) or {}
    (lodo / "config.yaml").write_text(yaml.safe_dump({**config, "final_fit": True}), encoding="utf-8")
    section = readme_results([lodo, run])
    stance_table = section.split("| frames |")[0]
    svm = [line for line in stance_table.splitlines() if line.startswith("| tfidf_svm |")]
    assert len(svm) == 1 and svm[0].count("**") == 2  # both protocols' scores, the lodo one bold: predict uses it
    assert "- lodo_run, stance: `predict` uses **tfidf_svm (macro-F1 0.31 [0.20, 0.40], n=60, leave-one-document-out)**." in section
