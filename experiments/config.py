"""Experiment configs: a typed schema that rejects unknown keys, ``extends:`` and ``--set``.

A config is a YAML file in ``configs/``. ``load_config`` resolves ``extends``
(a small diff over a base config), applies command-line overrides such as
``models.0.params.clf__C=0.5`` and validates the result, model parameters
included (their names and values, against each estimator's own constraints). Every error names the
file, the key path and the valid choices.
"""

from __future__ import annotations

import copy
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from experiments.errors import UserError
from experiments.io import read_yaml

Task = Literal["stance", "frames"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Located(_Strict):
    """A config section that knows the file it was loaded from, so later errors can name it."""

    _file: str | None = PrivateAttr(default=None)

    def where(self, key: str) -> str:
        """``key`` prefixed with the config file, as errors about a key start: "configs/x.yaml: protocol.folds"."""
        return f"{self._file}: {key}" if self._file else key

    def __eq__(self, other: object) -> bool:
        # Equal when the settings are: the file a config was read from is not one of them.
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__


class AuxiliaryConfig(_Strict):
    """An imported dataset whose stance rows join every training part; they are never tested or scored.

    ``label_map`` renames its labels to the main source's (rows with other
    labels are dropped; empty: its labels already are the main source's),
    ``targets`` keeps only rows with these targets (None: all), and
    ``weight`` is each row's sample weight relative to a main-source row.
    """

    dataset: str
    label_map: dict[str, str] = Field(default_factory=dict)
    targets: list[str] | None = Field(None, min_length=1)
    weight: float = Field(1.0, gt=0, allow_inf_nan=False)


class DataConfig(_Strict):
    """Where the labelled paragraphs come from."""

    source: str = "gold"
    kinds: list[Literal["headline", "body"]] = Field(default_factory=lambda: ["headline", "body"])
    target_mode: Literal["per_target", "input"] = "per_target"
    auxiliary: list[AuxiliaryConfig] = Field(default_factory=list)


class LearningCurveConfig(_Strict):
    """Training-set fractions scored on the protocol's test parts (first repeat only)."""

    fractions: list[float] = Field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8], min_length=1)
    repeats: int = Field(1, ge=1)

    @field_validator("fractions")
    @classmethod
    def _fractions_in_range(cls, fractions: list[float]) -> list[float]:
        for fraction in fractions:
            if not 0 < fraction < 1:
                raise ValueError(f"each fraction must lie between 0 and 1 (the full training part is always scored), got {fraction}")
        return sorted(set(fractions))


class ProtocolConfig(_Located):
    """How train and test parts are drawn."""

    name: Literal["kfold", "lodo", "group_kfold", "split"] = "kfold"
    folds: int = Field(5, ge=2)
    repeats: int = Field(1, ge=1)
    group_column: str = "doc_id"
    split_column: str = "split"
    learning_curve: LearningCurveConfig | None = None


class MetricsConfig(_Strict):
    """What is measured and how confidence intervals are drawn."""

    stance_subset: list[str] = Field(default_factory=lambda: ["favor", "against"])
    bootstrap: int = Field(1000, ge=100)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    min_support: int = Field(3, ge=1)
    bootstrap_unit: Literal["paragraph", "document"] = "paragraph"


class ModelConfig(_Strict):
    """One model to compare: a registry name and its hyper-parameters."""

    name: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    auxiliary: bool = True  # false: this model trains without data.auxiliary, so one run compares both

    @property
    def display(self) -> str:
        return self.label or self.name


class Config(_Located):
    """A whole experiment. See ``configs/base.yaml`` for every key with a comment."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    tasks: list[Task] = Field(min_length=1)
    frame_level: Literal["project", "generic"] = "project"
    min_train_positives: int = Field(2, ge=1)
    data: DataConfig = Field(default_factory=DataConfig)
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    models: list[ModelConfig] = Field(min_length=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    final_fit: bool = False

    @field_validator("tasks", mode="before")
    @classmethod
    def _one_task_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("models")
    @classmethod
    def _unique_labels(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        seen: set[str] = set()
        for i, model in enumerate(models):
            if model.display in seen:
                raise ValueError(f"model {i} ({model.display!r}) appears twice; give one a distinct 'label'")
            seen.add(model.display)
        return models


def _deep_merge(base: dict, over: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml(path: Path) -> dict:
    path = Path(os.path.relpath(path)) if path.is_relative_to(Path.cwd()) else path
    raw = read_yaml(path, "config", "the shipped configs are in configs/")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a mapping of keys to values")
    return raw


def resolve_raw(path: Path, _chain: tuple[Path, ...] = ()) -> dict:
    """Read a config and merge it over the configs it ``extends`` (paths relative to it)."""
    path = path.resolve()
    if path in _chain:
        raise UserError(f"{path}: 'extends' forms a cycle ({' -> '.join(p.name for p in (*_chain, path))})")
    raw = _read_yaml(path)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise UserError(f"{path}: extends: expected a file name such as base.yaml")
    parent_path = path.parent / parent
    if not parent_path.exists():
        raise UserError(f"{path}: extends: {parent} not found next to it")
    return _deep_merge(resolve_raw(parent_path, (*_chain, path)), raw)


def apply_override(raw: dict, assignment: str) -> dict:
    """Apply one ``key.path=value`` override; the value is parsed as YAML.

    >>> apply_override({"models": [{"params": {"C": 1}}]}, "models.0.params.C=0.5")
    {'models': [{'params': {'C': 0.5}}]}
    """
    key, sep, text = assignment.partition("=")
    if not sep or not key:
        raise UserError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set seed=3")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    raw = copy.deepcopy(raw)
    parts = key.split(".")
    node: Any = raw
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {key}: {where}: index out of range (the list has {len(node)} items)")
            index = int(part)
            if last:
                node[index] = value
            else:
                node = node[index]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise UserError(f"--set {key}: {'.'.join(parts[:depth])} is a value, not a section")
    return raw


def load_config(path: Path | str, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load, merge, override and validate a config file."""
    path = Path(path)
    raw = resolve_raw(path)
    for assignment in overrides:
        raw = apply_override(raw, assignment)
    raw.setdefault("name", path.stem)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {describe_error(exc, Config)}") from None
    # Errors found later (unknown data source, too many folds) name the file too; copies keep it.
    config._file = config.protocol._file = str(path)
    from experiments.models import check_model_config

    for i, model in enumerate(config.models):
        check_model_config(model, where=f"{path}: models.{i}")
    return config


def describe_error(exc: ValidationError, root: type[BaseModel]) -> str:
    """One line for the first validation error: key path, problem and valid choices."""
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        valid = _fields_at(root, loc[:-1])
        hint = f"; valid keys here: {', '.join(valid)}" if valid else ""
        return f"{where}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message} (got {error.get('input')!r})"


def _fields_at(model: Any, loc: list[str]) -> list[str]:
    """The field names of the schema node at ``loc`` (for 'valid keys' hints)."""
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel) and part in model.model_fields:
            model = model.model_fields[part].annotation
        elif part.isdigit():
            args = typing.get_args(model)
            model = args[0] if args else None
        else:
            return []
        if isinstance(model, types.UnionType) or typing.get_origin(model) is typing.Union:
            model = next((a for a in typing.get_args(model) if a is not type(None)), None)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


# Smoke mode: the whole pipeline on every code path in seconds, for checks and tests.
SMOKE_PROTOCOL = {"folds": 2, "repeats": 1}
SMOKE_BOOTSTRAP = 100
SMOKE_MODEL_PARAMS = {"max_steps": 2, "num_iterations": 1, "epochs": 1, "max_length": 64}


def smoke(config: Config) -> Config:
    """The same experiment shrunk to run in seconds: 2 folds, 1 repeat, 100 resamples, tiny training.

    Each model gets the ``SMOKE_MODEL_PARAMS`` it has, in whichever step
    (``embed__max_length`` too), so transformer models take two optimiser
    steps on 64-token inputs.
    """
    from experiments.models import settable_params

    models = []
    for spec in config.models:
        tiny = {key: SMOKE_MODEL_PARAMS[key.rpartition("__")[2]] for key in settable_params(spec.name)
                if key.rpartition("__")[2] in SMOKE_MODEL_PARAMS}
        models.append(spec.model_copy(update={"params": {**spec.params, **tiny}}))
    update = dict(SMOKE_PROTOCOL) if config.protocol.name in ("kfold", "group_kfold") else {}
    if config.protocol.learning_curve is not None:
        update["learning_curve"] = config.protocol.learning_curve.model_copy(update={"fractions": [0.5], "repeats": 1})
    protocol = config.protocol.model_copy(update=update)
    return config.model_copy(update={
        "name": f"{config.name}-smoke", "protocol": protocol, "models": models,
        "metrics": config.metrics.model_copy(update={"bootstrap": SMOKE_BOOTSTRAP}),
    })


def to_yaml(config: Config) -> str:
    """The resolved config as YAML, as saved in each run directory."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
