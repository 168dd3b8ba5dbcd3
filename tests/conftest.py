"""Shared fixtures: the shipped codebook, tiny configs written into tmp_path."""

from __future__ import annotations

import os
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
def write_config(tmp_path):
    """Write ``<tmp_path>/<name>.yaml`` extending the shipped base config (by absolute path)."""

    def write(name: str, body: str, extends: Path | str | None = BASE_CONFIG) -> Path:
        path = tmp_path / f"{name}.yaml"
        head = f"extends: {extends}\n" if extends else ""
        path.write_text(head + textwrap.dedent(body), encoding="utf-8")
        return path

    return write
