"""Evaluation protocols: how a dataset is cut into train and test parts.

A protocol is a function registered under the name a config gives in
``protocol.name``. It yields ``Fold`` objects; ``make_folds`` then removes
from each training part every paragraph whose text also occurs in the test
part, so no paragraph, and no duplicate of one, is ever on both sides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut, StratifiedGroupKFold, StratifiedKFold

from experiments.config import ProtocolConfig
from experiments.data import TaskData
from experiments.errors import UserError


@dataclass(frozen=True)
class Fold:
    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray


Protocol = Callable[[TaskData, ProtocolConfig, int], Iterator[Fold]]
PROTOCOLS: dict[str, Protocol] = {}


def protocol(name: str) -> Callable[[Protocol], Protocol]:
    def register(func: Protocol) -> Protocol:
        PROTOCOLS[name] = func
        return func

    return register


def _fewer_folds(n: int) -> str:
    return f"set protocol.folds to at most {n}" if n >= 2 else "label more paragraphs"


def _check_size(data: TaskData, spec: ProtocolConfig) -> None:
    if len(data) < spec.folds:
        raise UserError(f"{spec.where('protocol.folds')}: {spec.folds} folds need at least {spec.folds} paragraphs, "
                        f"the data has {len(data)}; {_fewer_folds(len(data))}")


@protocol("kfold")
def repeated_kfold(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """Repeated stratified k-fold; iterative stratification for multi-label frames."""
    _check_size(data, spec)
    X = np.zeros(len(data))
    for repeat in range(spec.repeats):
        rs = seed + repeat
        splitter = (
            MultilabelStratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=rs)
            if data.multilabel
            else StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=rs)
        )
        for fold, (train, test) in enumerate(splitter.split(X, data.y)):
            yield Fold(repeat, fold, train, test)


def _groups(data: TaskData, spec: ProtocolConfig) -> np.ndarray:
    if spec.group_column == "doc_id":
        return data.doc_ids
    if spec.group_column not in data.columns:
        raise UserError(
            f"{spec.where('protocol.group_column')}: {spec.group_column!r} is not a column of the data "
            f"(columns: {', '.join(sorted(data.columns))})"
        )
    return np.array(data.columns[spec.group_column])


@protocol("lodo")
def leave_one_document_out(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """Each document (or group) is the test part once: the honest number for a new article."""
    groups = _groups(data, spec)
    if len(set(groups)) < 2:
        raise UserError(f"{spec.where('protocol.name')}: lodo needs at least two documents (values of "
                        f"{spec.group_column}), the data has one; use protocol.name: kfold")
    for fold, (train, test) in enumerate(LeaveOneGroupOut().split(np.zeros(len(data)), groups=groups)):
        yield Fold(0, fold, train, test)


@protocol("group_kfold")
def grouped_kfold(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """k folds that never split a group (document) across train and test."""
    groups = _groups(data, spec)
    _check_size(data, spec)
    found = len(set(groups))
    if found < spec.folds:
        fix = f"{_fewer_folds(found)}, or use protocol.name: lodo" if found >= 2 else "use protocol.name: kfold"
        raise UserError(f"{spec.where('protocol.folds')}: {spec.folds} folds need at least {spec.folds} groups "
                        f"(values of {spec.group_column}), the data has {found}; {fix}")
    for repeat in range(spec.repeats):
        rs = seed + repeat
        splitter = (
            GroupKFold(n_splits=spec.folds, shuffle=True, random_state=rs)
            if data.multilabel
            else StratifiedGroupKFold(n_splits=spec.folds, shuffle=True, random_state=rs)
        )
        for fold, (train, test) in enumerate(splitter.split(np.zeros(len(data)), data.y, groups)):
            yield Fold(repeat, fold, train, test)


@protocol("split")
def predefined_split(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """A column marks rows train, dev or test; the test rows are scored once."""
    key = spec.where("protocol.split_column")
    if spec.split_column not in data.columns:
        raise UserError(f"{key}: {spec.split_column!r} is not a column of the data "
                        f"(columns: {', '.join(sorted(data.columns))}); name the column that holds train, dev and test, "
                        "or use another protocol.name")
    values = data.columns[spec.split_column]
    if all(v is None for v in values):
        raise UserError(f"{key}: {spec.split_column!r} is empty in every row; import the table again with "
                        "--split-column COLUMN, or use another protocol.name")
    split = np.array(values)
    unknown = sorted({str(v) for v in values} - {"train", "dev", "test"})
    if unknown:
        raise UserError(f"{key}: values must be train, dev or test, found {unknown}")
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    if not len(train) or not len(test):
        raise UserError(f"{key}: need both train and test rows in {spec.split_column!r}")
    yield Fold(0, 0, train, test)


def make_folds(data: TaskData, spec: ProtocolConfig, seed: int) -> list[Fold]:
    """All folds of the configured protocol, with test-set duplicates removed from training."""
    hashes = np.array(data.hashes)
    folds = []
    with warnings.catch_warnings():
        # Rare classes trigger "least populated class" warnings; the metrics report support instead.
        warnings.simplefilter("ignore", UserWarning)
        for fold in PROTOCOLS[spec.name](data, spec, seed):
            train = fold.train[~np.isin(hashes[fold.train], hashes[fold.test])]
            folds.append(Fold(fold.repeat, fold.fold, np.sort(train), np.sort(fold.test)))
    return folds
