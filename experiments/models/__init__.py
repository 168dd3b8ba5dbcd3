"""The model registry.

An entry is an estimator class, or a function of no arguments that returns a
``Pipeline`` with named steps. Either way every hyper-parameter is written
once, in an ``__init__`` (or the one step constructor call that changes a
default), and a config sets it by its ``get_params`` name: ``C`` for a
plain estimator, ``clf__C`` or ``features__word_ngrams`` for a pipeline's
steps. Every entry has the scikit-learn contract (``fit``, ``predict``,
``predict_proba``, ``classes_``), so the evaluation loop never branches on
the kind of model. Names carry a version (``tfidf_logreg.v1``); the bare name
means the newest version, so an old config can pin the behaviour it was
written against.

The run supplies the context parameters, wherever a step has them: the
config's ``seed`` as ``random_state`` or ``seed``, ``device``, ``precision``,
and the task's ``labels`` and ``multilabel`` (true for frames). An estimator
without ``multilabel`` is wrapped one-vs-rest for frames.

>>> from experiments.models import build_model
>>> build_model("majority", task="stance", seed=0).fit(["a", "b", "c"], [0, 1, 1]).predict(["d"])
array([1])
>>> build_model("tfidf_logreg", "stance", seed=3, params={"clf__C": 0.5}).named_steps["clf"].get_params()["C"]
0.5
"""

from __future__ import annotations

import inspect
import re
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from experiments.errors import UserError


@dataclass(frozen=True)
class Entry:
    name: str
    version: int
    make: Callable[[], BaseEstimator]  # a class, or a function of no arguments: the model with its defaults

    @property
    def key(self) -> str:
        return f"{self.name}.v{self.version}"

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.make) or "").splitlines()[0]

    @property
    def multilabel_native(self) -> bool:
        return "multilabel" in self.make().get_params()


REGISTRY: dict[str, Entry] = {}

# Parameters the run supplies from the config key named here; a config's ``params`` cannot set them.
CONTEXT = {"random_state": "seed", "seed": "seed", "device": "device", "precision": "precision",
           "labels": "tasks", "multilabel": "tasks"}


def register(name: str, version: int = 1):
    """Register an estimator class, or a function of no arguments returning a pipeline, as ``name.v<version>``.

    Its docstring's first line is the model's summary in ``python -m experiments models``.
    """

    def decorate(make: Callable[[], BaseEstimator]) -> Callable[[], BaseEstimator]:
        entry = Entry(name, version, make)
        REGISTRY[entry.key] = entry
        return make

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


def leaf(key: str) -> str:
    """A parameter's own name without its pipeline step: ``embed__model`` -> ``model``."""
    return key.rpartition("__")[2]


def _params(estimator) -> dict[str, Any]:
    """Every parameter of ``estimator`` by its ``set_params`` name; for a pipeline, its steps' (``clf__C``)."""
    params = estimator.get_params(deep=True)
    if isinstance(estimator, Pipeline):
        return {k: v for k, v in params.items() if "__" in k}
    return params


def settable_params(name: str) -> dict[str, Any]:
    """The parameters a config may set for model ``name``, with their defaults.

    >>> settable_params("tfidf_cnb")["clf__alpha"]
    0.3
    """
    return {k: v for k, v in _params(resolve(name).make()).items()
            if leaf(k) not in CONTEXT and not isinstance(v, BaseEstimator) and not _deprecated(v)}


def _deprecated(value: Any) -> bool:
    # scikit-learn marks a parameter on its way out by the default "deprecated"; configs should not start using it.
    return isinstance(value, str) and value == "deprecated"


def default_params(name: str) -> dict[str, Any]:
    """Every parameter of model ``name`` by its ``set_params`` name (``embed__model``), context included,
    with its default: what ``run.preflight`` checks against the machine before training."""
    return _params(resolve(name).make())


def describe_models() -> list[str]:
    """One entry per registered model: versioned name, summary and the parameters a config may set."""
    _load_families()
    lines = []
    for key, entry in sorted(REGISTRY.items()):
        lines.append(f"{key:<24}{entry.summary}")
        params = ", ".join(f"{k}={v!r}" for k, v in settable_params(key).items())
        if params:
            lines += textwrap.wrap(params, 120, initial_indent=f"{'':<24}params: ", subsequent_indent=" " * 32,
                                   break_on_hyphens=False)
    return lines


def registered_names() -> list[str]:
    """Model names without versions; ``name.vN`` pins version N."""
    _load_families()
    return sorted({e.name for e in REGISTRY.values()})


_SKLEARN_MESSAGE = re.compile(r"^The '(?P<param>\w+)' parameter of \w+ must be (?P<rule>.*)\. Got (?P<got>.*) instead\.$",
                              re.DOTALL)


def _configured(entry: Entry, params: dict[str, Any], context: dict[str, Any], where: str) -> BaseEstimator:
    """``entry``'s estimator with the ``context`` and ``params`` set and checked against each part's
    ``_parameter_constraints``; a wrong key or value is a ``UserError`` naming ``where.KEY``.
    YAML has no tuples, so a list value becomes a tuple (``features__word_ngrams: [1, 2]``)."""
    estimator = entry.make()
    every = _params(estimator)
    settable = settable_params(entry.key)
    for key in params:
        if key in settable:
            continue
        if key in every and leaf(key) in CONTEXT:
            raise UserError(f"{where}.{key}: set by the run from the config's {CONTEXT[leaf(key)]!r} key, not in params")
        near = [k for k in settable if leaf(k) == leaf(key)]
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise UserError(f"{where}.{key}: not a parameter of {entry.key}{hint}; valid: {', '.join(settable)}")
    estimator.set_params(**{k: context[leaf(k)] for k in every if leaf(k) in CONTEXT})
    estimator.set_params(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    parts = estimator.steps if isinstance(estimator, Pipeline) else [(None, estimator)]
    for step, part in parts:
        if not hasattr(part, "_parameter_constraints"):
            continue
        try:
            part._validate_params()
        except InvalidParameterError as exc:
            found = _SKLEARN_MESSAGE.match(str(exc))
            if found is None:
                raise UserError(f"{where}: {exc}") from None
            key = found["param"] if step is None else f"{step}__{found['param']}"
            raise UserError(f"{where}.{key}: must be {found['rule']}, got {found['got']}") from None
    return estimator


def _context(task: str, seed: int, labels, device: str, precision: str) -> dict[str, Any]:
    """The value of each ``CONTEXT`` parameter."""
    return {"random_state": seed, "seed": seed, "device": device, "precision": precision, "labels": labels,
            "multilabel": task == "frames"}


def build_model(name: str, task: str, seed: int, params: dict[str, Any] | None = None, min_train_positives: int = 2,
                labels: list[str] | None = None, device: str = "auto", precision: str = "auto"):
    """A fresh, unfitted estimator for ``task`` ("stance" or "frames") over ``labels``."""
    from experiments.models.multilabel import OneVsRestFrames

    entry = resolve(name)
    estimator = _configured(entry, params or {}, _context(task, seed, labels, device, precision), f"model {name!r}: params")
    if task == "frames" and not entry.multilabel_native:
        return OneVsRestFrames.wrap(estimator, min_train_positives=min_train_positives)
    return estimator


def check_model_config(model: Any, where: str) -> None:
    """Fail when the config loads, naming the key, for an unknown model, parameter or parameter value."""
    try:
        entry = resolve(model.name)
    except UserError as exc:
        raise UserError(f"{where}.name: {exc}") from None
    _configured(entry, model.params, _context("stance", 0, None, "auto", "auto"), f"{where}.params")


def _load_families() -> None:
    # Importing a family module runs its @register decorators; torch loads only when a model is fitted.
    from experiments.models import baselines, finetune, sentence, setfit_family  # noqa: F401
