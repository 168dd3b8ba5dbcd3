"""``python -m experiments``: the entry point, each verb end to end (in-process), and one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import paths
from experiments.cli import main


@pytest.fixture
def at_root(monkeypatch):
    """Run as from the checkout, so that configs/... paths resolve as in the README."""
    monkeypatch.chdir(paths.ROOT)


def test_python_dash_m_experiments_starts_the_cli():
    # The one test through a real process: it checks the `python -m experiments` entry point (__main__.py) itself.
    # Every other test here calls cli.main in-process, which behaves the same and costs no interpreter start.
    from importlib.metadata import version

    done = subprocess.run([sys.executable, "-m", "experiments", "--version"], cwd=paths.ROOT, capture_output=True,
                          text=True, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (
        0, f"python -m experiments {version('iran-intervention-experiments')}\n", "")


def test_run_reports_the_data_then_the_best_model_per_task_then_the_run_directory(at_root, tmp_path, capsys,
                                                                                monkeypatch):
    argv = ["run", "configs/smoke.yaml", "--results", str(tmp_path), "--no-progress"]
    monkeypatch.setattr(sys, "argv", [str(paths.ROOT / "experiments" / "__main__.py"), *argv])  # as python -m sets it
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    lines = out.splitlines()
    assert re.fullmatch(r"smoke: \d+ paragraphs, data fingerprint [0-9a-f]{16}, protocol kfold", lines[-4])
    for line, task in zip(lines[-3:-1], ("stance", "frames")):
        assert re.fullmatch(rf"{task}: best model \w+ \(macro-F1 of calibrated decisions \d\.\d\d \[\d\.\d\d, \d\.\d\d\], n=\d+, k-fold\)", line)
    run_dir = Path(lines[-1])
    assert run_dir.parent == tmp_path / "smoke"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "summary.md").is_file()
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["command"] == f"python -m experiments run configs/smoke.yaml --results {tmp_path} --no-progress"


def test_plot_redraws_a_run_and_lists_the_files(run_dir, tmp_path, capsys):
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    assert main(["plot", str(copy)]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert sorted(listed) == sorted(str(p) for p in copy.glob("plots/*/*.png"))
    # 2 tasks x (2 confusion + per-label + comparison + calibration + coverage + label distribution)
    assert len(listed) == 2 * (2 + 5)


def test_codebook_check_passes_on_the_committed_guide(at_root, capsys):
    assert main(["codebook", "--check"]) == 0
    assert capsys.readouterr() == ("data/CODEBOOK.md is up to date\n", "")


def test_a_missing_config_is_a_one_line_error(at_root, cli_error):
    assert cli_error(["run", "configs/nope.yaml", "--no-progress"]) == (
        "configs/nope.yaml: config not found; the shipped configs are in configs/")


def test_a_config_key_typo_is_a_one_line_error(tmp_path, cli_error):
    config = tmp_path / "typo.yaml"
    config.write_text(f"extends: {paths.CONFIGS / 'smoke.yaml'}\nprotocol: {{fold: 3}}\n", encoding="utf-8")
    assert cli_error(["run", str(config), "--results", str(tmp_path), "--no-progress"]).startswith(
        f"{config}: protocol.fold: unknown key; valid keys here: name, folds, ")
    assert [p.name for p in tmp_path.iterdir()] == ["typo.yaml"]


def test_an_unregistered_model_is_a_one_line_error_listing_the_models(at_root, tmp_path, cli_error):
    message = cli_error(["run", "configs/smoke.yaml", "--set", "models.0.name=nope", "--results", str(tmp_path),
                         "--no-progress"])
    assert message.startswith("configs/smoke.yaml: models.0.name: unknown model 'nope'; registered models: "
                              "codebook_logreg, embed_logreg, finetune, majority, ")
    assert "tfidf_logreg" in message
    assert list(tmp_path.iterdir()) == []


def test_a_bad_set_is_a_one_line_error(at_root, tmp_path, cli_error):
    assert cli_error(["run", "configs/smoke.yaml", "--set", "protocol.folds", "--results", str(tmp_path)]) == (
        "--set 'protocol.folds': expected KEY=VALUE, e.g. --set seed=3")


def test_main_returns_2_and_prints_one_line_for_a_folder_that_is_not_a_run(tmp_path, cli_error):
    assert cli_error(["plot", str(tmp_path)]) == (
        f"{tmp_path}: not a run directory (no metrics.json); pass a directory printed by `run`")


def test_table_lists_every_model_of_a_run(run_dir, capsys):
    assert main(["table", str(run_dir)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("| config | task | model | n | macro-F1 [95% CI] |")
    assert [row.split(" | ")[1:3] for row in rows[2:]] == [
        ["stance", "tfidf_logreg"], ["stance", "majority"], ["frames", "tfidf_logreg"], ["frames", "majority"],
    ]


# --- the parser: --version, every verb's help, one argument style ------------------------------------------------

VERBS = ["corpus", "codebook", "run", "models", "bench", "predict", "annotate", "export", "agreement", "adjudicate",
         "import", "reproduce", "report", "plot", "headline", "table"]


def test_version_prints_the_installed_package_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"python -m experiments {version('iran-intervention-experiments')}\n"


def test_every_verb_is_listed_and_has_a_description_and_an_example(capsys):
    from experiments.cli import build_parser

    verbs = next(a for a in build_parser()._actions if a.dest == "verb")
    assert list(verbs.choices) == VERBS
    for verb in VERBS:
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = capsys.readouterr().out
        description = text.split("\n\n")[1]
        assert description[0].isupper() and description.endswith("."), (verb, description)
        examples = text[text.index("\nexamples:\n"):].splitlines()[2:]
        assert examples and all(line.startswith(f"  python -m experiments {verb}") for line in examples), (verb, text)


@pytest.mark.parametrize("argv", [["run", "configs/smoke.yaml"], ["report"], ["table"], ["headline"]])
def test_results_names_the_results_folder_in_every_verb_that_writes_or_reads_runs(argv):
    from experiments.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(argv).results == str(paths.RESULTS)
    assert parser.parse_args([*argv, "--results", "elsewhere"]).results == "elsewhere"


def test_reproduce_keeps_its_new_run_under_results_and_no_longer_takes_keep(capsys):
    from experiments.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["reproduce", "results/default/r1"]).results is None  # a scratch folder
    assert parser.parse_args(["reproduce", "results/default/r1", "--results", "kept"]).results == "kept"
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", "results/default/r1", "--keep", "kept"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.endswith("error: unrecognized arguments: --keep kept\n")


def test_report_table_and_headline_select_runs_alike():
    from experiments.cli import build_parser

    parser = build_parser()
    for verb in ("report", "table", "headline"):
        args = parser.parse_args([verb, "--config", "default", "--config", "default_kfold", "--results", "r"])
        assert (args.run_dirs, args.configs, args.results) == ([], ["default", "default_kfold"], "r")


def readme_commands() -> list[str]:
    """Every ``python -m experiments ...`` line of README.md's code blocks, continuation lines joined."""
    text = (paths.ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return [m.group(1) for m in re.finditer(r"^(?:\$ )?python -m experiments (.+)$", text, re.MULTILINE)]


def test_every_command_in_the_readme_parses():
    import shlex

    from experiments.cli import build_parser

    parser = build_parser()
    commands = readme_commands()
    assert len(commands) >= 25
    for command in commands:
        argv = shlex.split(command, comments=True)
        parser.parse_args(argv)  # an argparse error exits and fails the test


def test_a_reader_that_stops_early_ends_the_command_quietly(run_dir, tmp_path):
    """`predict RUN rows.jsonl | head -1`: a real pipe (hence a process) closed after one line, while predict
    still has far more to write than the pipe holds."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"Air strikes hit a base near Isfahan, report {i}."}) + "\n"
                            for i in range(3000)), encoding="utf-8")
    command = [sys.executable, "-m", "experiments", "predict", str(run_dir), str(rows), "--no-similarity",
               "--no-progress"]
    process = subprocess.Popen(command, cwd=paths.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    first = json.loads(process.stdout.readline())
    process.stdout.close()  # what `head -1` does after its line
    assert process.wait(timeout=300) == 0
    assert process.stderr.read() == b""
    assert first["text"] == "Air strikes hit a base near Isfahan, report 0."
