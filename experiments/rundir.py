"""The run directory: the one place that opens, finds, stages and commits runs.

A run directory is ``<results>/<config name>/<YYYYmmdd-HHMMSS>-<hash>/`` and holds::

    config.yaml         the resolved config that produced it
    metrics.json        every score, with CIs, paired tests, calibration and the model chosen for new text
    meta.json           what produced it: data fingerprint, commit, packages, timings (written last)
    predictions.jsonl   the out-of-fold predictions (learning-curve ones carry a ``fraction``)
    texts.jsonl         the text of every paragraph it predicted
    top_features.json   the heaviest n-grams of the linear TF-IDF models (when there are any)
    models/<task>/<model>/   the models fitted on all data (``final_fit: true`` only)
    plots/, summary.md  drawn afterwards from the files above (``python -m experiments plot``)

``open_run`` reads one, ``latest_runs`` finds the newest of each config,
``run_with_models`` finds one ``predict`` can use, and ``staged`` builds a
new one in a hidden folder that becomes the run directory only when every
file is written. Every way a path can fail to be a run directory gives the
same one-line message (``not_a_run``), and a damaged file always names the
file and says to re-run the config.
"""

from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import yaml

from experiments import paths
from experiments.errors import UserError
from experiments.io import read_json_object, read_jsonl, rerun_hint

METRICS, META, CONFIG, PREDICTIONS, TEXTS, TOP_FEATURES = (
    "metrics.json", "meta.json", "config.yaml", "predictions.jsonl", "texts.jsonl", "top_features.json")
MODELS = "models"


def slug(name: str) -> str:
    """A model's display name as a file name.

    >>> slug("embed_logreg+semeval"), slug("logreg small")
    ('embed_logreg_semeval', 'logreg_small')
    """
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def model_path(task: str, model: str) -> Path:
    """Where a run keeps a saved model, relative to the run directory.

    >>> model_path("stance", "logreg small")
    PosixPath('models/stance/logreg_small')
    """
    return Path(MODELS) / task / slug(model)


def read_json(run_dir: Path, name: str) -> dict:
    """A JSON object of a run directory; a damaged file is a one-line error that says to re-run the config."""
    return read_json_object(Path(run_dir) / name, rerun_hint(run_dir))


# --------------------------------------------------------------------------- finding runs

def is_run(path: Path) -> bool:
    """A finished run directory: its name starts with the date and ``meta.json``, written last, is there."""
    return path.name[:1].isdigit() and (path / META).is_file()


def runs_of(config_dir: Path) -> list[Path]:
    """The finished runs in a config's results folder, oldest first."""
    return sorted(d for d in Path(config_dir).glob("[0-9]*") if is_run(d)) if Path(config_dir).is_dir() else []


def configs_with_runs(results: Path) -> list[str]:
    """The configs that have at least one finished run under ``results``."""
    if not Path(results).is_dir():
        return []
    return sorted(d.name for d in Path(results).iterdir() if d.is_dir() and runs_of(d))


def latest_runs(results: Path = paths.RESULTS, configs: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """The newest finished run of each named config (every config with runs when none is named).

    A config without runs is an error that lists the configs that have them.
    """
    results = Path(results)
    have = configs_with_runs(results)
    for name in configs:
        if name not in have:
            shipped = paths.CONFIGS / f"{name}.yaml"
            fixes = [f"run `python -m experiments run {paths.shown(shipped)}` to make one"] if shipped.is_file() else []
            fixes += [f"name one of the configs with runs: {', '.join(have)}"] if have else []
            raise UserError(f"{results}: no run of config `{name}`; "
                            + (", or ".join(fixes) or "run `python -m experiments run CONFIG` first"))
    if not have:
        raise UserError(f"{results}: no finished runs; run `python -m experiments run CONFIG` first")
    return [runs_of(results / name)[-1] for name in (configs or have)]


def not_a_run(path: Path, why: str) -> UserError:
    """The one "not a run directory" error: the path, why, and what to pass instead."""
    path = Path(path)
    runs, have = runs_of(path), configs_with_runs(path)
    if runs:
        fix = f"it holds the runs of config `{path.name}`; pass one of them, e.g. its newest {runs[-1]}"
    elif have:
        fix = (f"it is a results folder (configs with runs: {', '.join(have)}); pass a run directory such as "
               f"{runs_of(path / have[0])[-1]}")
    else:
        fix = "pass a directory printed by `run`"
    return UserError(f"{path}: not a run directory ({why}); {fix}")


# --------------------------------------------------------------------------- reading a run

@dataclass
class Run:
    """One run directory, its files read when first asked for; ``label`` names it in reports."""

    dir: Path
    metrics: dict
    label: str = ""

    @cached_property
    def meta(self) -> dict:
        if not (self.dir / META).is_file():
            raise not_a_run(self.dir, f"no {META}")
        return read_json(self.dir, META)

    @cached_property
    def config(self) -> dict:
        """The saved resolved config as plain YAML data (empty when the run saved none)."""
        path = self.dir / CONFIG
        return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}

    @cached_property
    def predictions(self) -> list[dict]:
        """The out-of-fold predictions; the learning curve's (with a ``fraction``) are left out."""
        path = self.dir / PREDICTIONS
        return [r for _, r in read_jsonl(path) if "fraction" not in r] if path.is_file() else []

    def records(self, task: str) -> list[dict]:
        """The out-of-fold predictions of one task."""
        return [r for r in self.predictions if r["task"] == task]

    @cached_property
    def texts(self) -> dict[str, str]:
        """Paragraph text by id."""
        path = self.dir / TEXTS
        return {r["id"]: r["text"] for _, r in read_jsonl(path)} if path.is_file() else {}

    @cached_property
    def top_features(self) -> dict:
        return read_json(self.dir, TOP_FEATURES) if (self.dir / TOP_FEATURES).is_file() else {}

    @property
    def protocol(self) -> dict:
        return self.metrics["protocol"]

    @property
    def saves_models(self) -> bool:
        """Whether the config fitted and saved its models (``final_fit: true``)."""
        return bool(self.config.get("final_fit"))

    def subset(self, task: str) -> list[str]:
        """The labels this run's subset macro-F1 of ``task`` averages."""
        return stance_subset(self.metrics["tasks"].get(task, {}), self.config)

    def base_name(self, model: str) -> str:
        """The registry name behind a model's display name (``label`` or ``name``), version dropped."""
        for spec in self.config.get("models") or []:
            if (spec.get("label") or spec.get("name")) == model:
                return re.sub(r"\.v\d+$", "", spec.get("name", model))
        return re.sub(r"\.v\d+$", "", model)


def open_run(path: Path | str) -> Run:
    """Open a run directory (``metrics.json`` is read now, the other files when first used)."""
    path = Path(path)
    if not path.is_dir():
        raise not_a_run(path, "folder not found")
    if not (path / METRICS).is_file():
        raise not_a_run(path, f"no {METRICS}")
    return Run(path, read_json(path, METRICS))


def open_runs(run_dirs: list[Path]) -> list[Run]:
    """Open finished runs for a comparison, each labelled by its config (and run id where a config repeats)."""
    if not run_dirs:
        raise UserError("no run directory given; pass a directory printed by `run`, or --config NAME (its newest run)")
    runs = [open_run(d) for d in run_dirs]
    names = [r.metrics["config"] for r in runs]
    for run, name in zip(runs, names):
        run_id = run.meta["run_id"]  # read now: a comparison needs finished runs, and fails on the first that is not
        run.label = name if names.count(name) == 1 else f"{name} ({run_id})"
    return runs


def stance_subset(info: dict, config: dict) -> list[str]:
    """The labels ``macro_f1_subset`` averages: the config's ``metrics.stance_subset`` that are labels of the
    task, as the evaluation picked them; empty when the run does not say (a config saved without the key).

    >>> stance_subset({"labels": ["pro", "anti", "none"]}, {"metrics": {"stance_subset": ["pro", "favor"]}})
    ['pro']
    >>> stance_subset({"labels": ["favor"]}, {})
    []
    """
    if info.get("subset"):
        return list(info["subset"])
    wanted = ((config or {}).get("metrics") or {}).get("stance_subset") or []
    return [label for label in wanted if label in info.get("labels", [])]


# --------------------------------------------------------------------------- runs with saved models

def run_with_models(path: Path | str) -> Path:
    """``path`` itself when it saved models, or the newest run under a config's results folder that did.

    Runs of a config without ``final_fit: true`` saved none: the error says
    how to get them and which configs of the same results folder have them.
    """
    path = Path(path)
    if not path.is_dir():
        raise not_a_run(path, "folder not found")
    if (path / MODELS).is_dir():
        return path
    with_models = [d for d in runs_of(path) if (d / MODELS).is_dir()]
    if with_models:
        return with_models[-1]
    run = path if (path / METRICS).is_file() else (runs_of(path) or [None])[-1]
    if run is None:
        raise not_a_run(path, f"no {MODELS}/ and no runs")
    config = open_run(run).config
    name = config.get("name") or path.name
    shipped = paths.CONFIGS / f"{name}.yaml"
    config_file = paths.shown(shipped) if shipped.is_file() else paths.shown(run / CONFIG)
    whose = "its runs" if run != path else "the run"
    if config.get("final_fit"):
        raise UserError(f"{path}: no saved models, although {whose} set final_fit: true ({MODELS}/ is gone); "
                        f"run it again: python -m experiments run {config_file}")
    results = run.parent.parent
    saved = [paths.shown(results / c) for c in configs_with_runs(results)
             if any((d / MODELS).is_dir() for d in runs_of(results / c))]
    savers = [paths.shown(f) for f in sorted(paths.CONFIGS.glob("*.yaml"))
              if isinstance(doc := _yaml(f), dict) and doc.get("final_fit") is True]
    elsewhere = (f", or use the runs of a config that saved them: {', '.join(saved)}" if saved else
                 f", or run a config that saves them: {', '.join(savers)}" if savers else "")
    raise UserError(f"{path}: {whose} saved no models (config `{name}` has final_fit: false); run it with "
                    f"`python -m experiments run {config_file} --set final_fit=true`{elsewhere}")


def _yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


# --------------------------------------------------------------------------- writing a new run

def new_run_dir(results: Path, config_name: str, stamp: str, digest: str) -> Path:
    """``<results>/<config>/<stamp>-<digest>``, with ``-2``, ``-3`` ... when that name is taken: a run never
    overwrites another."""
    base = Path(results) / config_name / f"{stamp}-{digest}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


@contextmanager
def staged(run_dir: Path) -> Iterator[Path]:
    """A hidden ``.<name>.partial`` folder beside ``run_dir`` to write the run into; it becomes ``run_dir``
    when the block ends, and is removed when the block fails or is interrupted, so no half-written run
    directory is ever left behind."""
    staging = run_dir.with_name(f".{run_dir.name}.partial")
    staging.mkdir(parents=True)
    try:
        yield staging
        staging.rename(run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
