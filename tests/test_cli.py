"""``python -m experiments``: end to end through a real process, and one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import paths
from experiments.cli import main


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run([sys.executable, "-m", "experiments", *args], cwd=paths.ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_one_line_error(done: subprocess.CompletedProcess, message: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [done.stderr.rstrip("\n")], done.stderr  # exactly one line
    assert done.stderr.startswith("error: ")
    assert done.stderr.rstrip("\n").startswith(f"error: {message}"), done.stderr


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return results, cli("run", "configs/smoke.yaml", "--results", str(results), "--no-progress")


def test_run_exits_zero_and_prints_the_run_directory_last(smoke_run):
    results, done = smoke_run
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.splitlines()[-1])
    assert run_dir.parent == results / "smoke"
    assert (run_dir / "metrics.json").is_file() and (run_dir / "summary.md").is_file()
    meta = json.loads((run_dir / "meta.json").read_text(encoding="utf-8"))
    assert meta["command"] == f"python -m experiments run configs/smoke.yaml --results {results} --no-progress"


def test_run_reports_the_data_then_the_best_model_per_task_then_the_run_directory(smoke_run):
    done = smoke_run[1]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"smoke: \d+ paragraphs, data fingerprint [0-9a-f]{16}, protocol kfold", lines[-4])
    for line, task in zip(lines[-3:-1], ("stance", "frames")):
        assert re.fullmatch(rf"{task}: best model \w+ \(macro-F1 of calibrated decisions \d\.\d\d \[\d\.\d\d, \d\.\d\d\], n=\d+, k-fold\)", line)
    assert "Traceback" not in done.stderr


def test_plot_redraws_a_run_and_lists_the_files(smoke_run):
    run_dir = Path(smoke_run[1].stdout.splitlines()[-1])
    done = cli("plot", str(run_dir))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == sorted(str(p) for p in run_dir.glob("plots/*/*.png"))
    # 2 tasks x (2 confusion + per-label + comparison + calibration + coverage + label distribution)
    assert len(done.stdout.splitlines()) == 2 * (2 + 5)


def test_codebook_check_passes_on_the_committed_guide():
    done = cli("codebook", "--check")
    assert (done.returncode, done.stdout, done.stderr) == (0, "data/CODEBOOK.md is up to date\n", "")


def test_a_missing_config_is_a_one_line_error():
    assert_one_line_error(cli("run", "configs/nope.yaml", "--no-progress"),
                          "configs/nope.yaml: config not found; the shipped configs are in configs/")


def test_a_config_key_typo_is_a_one_line_error(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text(f"extends: {paths.CONFIGS / 'smoke.yaml'}\nprotocol: {{fold: 3}}\n", encoding="utf-8")
    assert_one_line_error(cli("run", str(config), "--results", str(tmp_path), "--no-progress"),
                          f"{config}: protocol.fold: unknown key; valid keys here: name, folds, ")
    assert [p.name for p in tmp_path.iterdir()] == ["typo.yaml"]


def test_an_unregistered_model_is_a_one_line_error_listing_the_models(tmp_path):
    done = cli("run", "configs/smoke.yaml", "--set", "models.0.name=nope", "--results", str(tmp_path), "--no-progress")
    assert_one_line_error(done, "configs/smoke.yaml: models.0.name: unknown model 'nope'; registered models: codebook_logreg, embed_logreg, finetune, majority, ")
    assert "tfidf_logreg" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_bad_set_is_a_one_line_error(tmp_path):
    assert_one_line_error(cli("run", "configs/smoke.yaml", "--set", "protocol.folds", "--results", str(tmp_path)),
                          "--set 'protocol.folds': expected KEY=VALUE, e.g. --set seed=3")


def test_main_returns_2_and_prints_one_line_for_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"error: {tmp_path}: not a run directory (no metrics.json); pass a directory printed by `run`\n")


def test_table_lists_every_model_of_a_run(smoke_run, capsys):
    run_dir = smoke_run[1].stdout.splitlines()[-1]
    assert main(["table", run_dir]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("| config | task | model | n | macro-F1 [95% CI] |")
    assert [row.split(" | ")[1:3] for row in rows[2:]] == [
        ["stance", "majority"], ["stance", "tfidf_logreg"], ["frames", "majority"], ["frames", "tfidf_logreg"],
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
