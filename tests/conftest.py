"""Shared fixtures: the shipped codebook, tiny configs written into tmp_path, and one trained run for the session."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest

from experiments import paths
from experiments.codebook import load_codebook

# The run directory records `git status`; keep git from refreshing the index of a
# checkout that other people are editing while the tests run.
os.environ.setdefault("GIT_OPTIONAL_LOCKS", "0")

BASE_CONFIG = paths.CONFIGS / "base.yaml"


@pytest.fixture(scope="session")
def codebook():
    return load_codebook()


@pytest.fixture
def cli_error(capsys):
    """``cli_error(argv)`` runs ``python -m experiments ARGV`` in-process, checks that it exits 2 with exactly one
    line on stderr (starting "error: ") and nothing on stdout (or what the pattern ``stdout`` matches in full), and
    returns the message after "error: "."""
    from experiments.cli import main

    def run(argv: list[str], stdout: re.Pattern | None = None) -> str:
        capsys.readouterr()  # what earlier steps of the test printed
        status = main(argv)
        out, err = capsys.readouterr()
        assert status == 2 and (out == "" if stdout is None else stdout.fullmatch(out)), (status, out, err)
        assert "Traceback" not in err
        assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
        return err.removeprefix("error: ").removesuffix("\n")

    return run


@pytest.fixture
def imported_root(tmp_path, monkeypatch) -> Path:
    """Imported datasets go to (and are read from) ``tmp_path/imported`` instead of data/imported; not created yet."""
    root = tmp_path / "imported"
    monkeypatch.setattr(paths, "IMPORTED", root)
    return root


@pytest.fixture
def write_config(tmp_path):
    """Write ``<tmp_path>/<name>.yaml`` extending the shipped base config (by absolute path)."""

    def write(name: str, body: str, extends: Path | str | None = BASE_CONFIG) -> Path:
        path = tmp_path / f"{name}.yaml"
        head = f"extends: {extends}\n" if extends else ""
        path.write_text(head + textwrap.dedent(body), encoding="utf-8")
        return path

    return write


TRAINED_CONFIG = f"""\
extends: {BASE_CONFIG}
description: two cheap models on both tasks, scored and saved; the run the tests that only read a run share
tasks: [stance, frames]
protocol: {{name: kfold, folds: 2, repeats: 1}}
metrics: {{bootstrap: 100}}
final_fit: true
models:
  - name: tfidf_logreg
  - name: majority
"""


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory) -> Path:
    """One run trained once for the whole session, as ``python -m experiments run`` leaves it: metrics,
    predictions, saved models (final_fit), plots and summary.md. Config ``tiny``; its results folder is the
    run's parent. Tests read it; a test that changes it changes a ``shutil.copytree`` copy."""
    from experiments.run import run_experiment
    from experiments.summary import summarise_run

    root = tmp_path_factory.mktemp("trained")
    config = root / "tiny.yaml"
    config.write_text(TRAINED_CONFIG, encoding="utf-8")
    run_dir = run_experiment(config, results=root / "results", progress=False, log=lambda *_: None)
    summarise_run(run_dir)
    return run_dir
