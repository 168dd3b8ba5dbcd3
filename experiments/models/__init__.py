"""The model registry.

Every entry is a factory that returns an estimator with the scikit-learn
contract (``fit``, ``predict``, ``predict_proba``, ``classes_``), so the
evaluation loop never branches on the kind of model. Names carry a version
(``tfidf_logreg.v1``); the bare name means the newest version, so an old
config can pin the behaviour it was written against.

>>> from experiments.models import build_model
>>> build_model("majority", task="stance", seed=0).fit(["a", "b", "c"], [0, 1, 1]).predict(["d"])
array([1])
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from sklearn.base import BaseEstimator

from experiments.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    version: int
    factory: Callable[..., BaseEstimator]
    multilabel_native: bool = False

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}"


REGISTRY: dict[str, Entry] = {}
_VERSIONED = re.compile(r"^(?P<name>[a-z0-9_]+)\.v(?P<version>\d+)$")


def register(name: str, version: int = 1, multilabel_native: bool = False):
    """Register a factory ``f(seed=..., **params) -> estimator`` under ``name.v<version>``.

    A factory builds a single-label classifier; for the frames task the
    registry wraps it one-vs-rest unless ``multilabel_native`` is set.
    """

    def decorate(factory: Callable[..., BaseEstimator]) -> Callable[..., BaseEstimator]:
        entry = Entry(name, version, factory, multilabel_native)
        REGISTRY[entry.key] = entry
        return factory

    return decorate


def resolve(name: str) -> Entry:
    """The entry for ``name`` or ``name.vN``; an unknown name lists the registered ones."""
    _load_families()
    if name in REGISTRY:
        return REGISTRY[name]
    versions = [e for e in REGISTRY.values() if e.name == name]
    if versions:
        return max(versions, key=lambda e: e.version)
    raise UserError(f"unknown model {name!r}; registered models: {', '.join(registered_names())} "
                    "(add .vN to pin a version)")


def factory_parameters(name: str) -> dict[str, inspect.Parameter]:
    """The parameters a model's factory takes, context arguments included."""
    return dict(inspect.signature(resolve(name).factory).parameters)


def describe_models() -> list[str]:
    """One entry per registered model: versioned name, summary and the parameters a config may set."""
    _load_families()
    lines = []
    for key, entry in sorted(REGISTRY.items()):
        params = [f"{p.name}={p.default!r}" for p in inspect.signature(entry.factory).parameters.values()
                  if p.name not in CONTEXT_ARGS]
        lines.append(f"{key:<24}{(inspect.getdoc(entry.factory) or '').splitlines()[0]}")
        if params:
            lines.append(f"{'':<24}params: {', '.join(params)}")
    return lines


def registered_names() -> list[str]:
    """Model names without versions; ``name.vN`` pins version N."""
    _load_families()
    return sorted({e.name for e in REGISTRY.values()})


# Arguments the framework supplies to a factory that asks for them; a config cannot set them.
CONTEXT_ARGS = ("seed", "task", "labels", "device", "precision")


def build_model(name: str, task: str, seed: int, params: dict[str, Any] | None = None, min_train_positives: int = 2,
                labels: list[str] | None = None, device: str = "auto", precision: str = "auto"):
    """A fresh, unfitted estimator for ``task`` ("stance" or "frames") over ``labels``."""
    from experiments.models.multilabel import OneVsRestFrames

    entry = resolve(name)
    accepted = factory_parameters(name)
    context = {"seed": seed, "task": task, "labels": labels, "device": device, "precision": precision}
    kwargs = {k: v for k, v in context.items() if k in accepted}
    try:
        estimator = entry.factory(**kwargs, **(params or {}))
    except TypeError as exc:
        raise UserError(f"model {name!r}: {exc}") from None
    if task == "frames" and not entry.multilabel_native:
        return OneVsRestFrames.wrap(estimator, min_train_positives=min_train_positives)
    return estimator


def check_model_config(model: Any, where: str) -> None:
    """Fail early, naming the config key, for an unknown model or parameter."""
    try:
        entry = resolve(model.name)
    except UserError as exc:
        raise UserError(f"{where}.name: {exc}") from None
    accepted = [p for p in factory_parameters(model.name) if p not in CONTEXT_ARGS]
    for key in model.params:
        if key not in accepted:
            raise UserError(f"{where}.params.{key}: not a parameter of {entry.key}; valid: {', '.join(accepted)}")


def _load_families() -> None:
    # Importing a family module runs its @register decorators; torch loads only when a model is built.
    from experiments.models import baselines, finetune, sentence, setfit_family  # noqa: F401
