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


def _check_size(data: TaskData, folds: int, what: str = "paragraphs") -> None:
    if len(data) < folds:
        raise UserError(f"protocol.folds: {folds} folds need at least {folds} {what}, the data has {len(data)}")


@protocol("kfold")
def repeated_kfold(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """Repeated stratified k-fold; iterative stratification for multi-label frames."""
    _check_size(data, spec.folds)
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
            f"protocol.group_column: {spec.group_column!r} is not a column of the data "
            f"(columns: {', '.join(sorted(data.columns))})"
        )
    return np.array(data.columns[spec.group_column])


@protocol("lodo")
def leave_one_document_out(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """Each document (or group) is the test part once: the honest number for a new article."""
    groups = _groups(data, spec)
    if len(set(groups)) < 2:
        raise UserError("protocol.name: lodo needs at least two documents")
    for fold, (train, test) in enumerate(LeaveOneGroupOut().split(np.zeros(len(data)), groups=groups)):
        yield Fold(0, fold, train, test)


@protocol("group_kfold")
def grouped_kfold(data: TaskData, spec: ProtocolConfig, seed: int) -> Iterator[Fold]:
    """k folds that never split a group (document) across train and test."""
    groups = _groups(data, spec)
    _check_size(data, spec.folds)
    if len(set(groups)) < spec.folds:
        raise UserError(f"protocol.folds: {spec.folds} folds need at least {spec.folds} groups, found {len(set(groups))}")
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
    if spec.split_column not in data.columns:
        raise UserError(f"protocol.split_column: {spec.split_column!r} is not a column of the data")
    split = np.array(data.columns[spec.split_column])
    unknown = sorted({str(v) for v in split} - {"train", "dev", "test"})
    if unknown:
        raise UserError(f"protocol.split_column: values must be train, dev or test, found {unknown}")
    train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
    if not len(train) or not len(test):
        raise UserError(f"protocol.split_column: need both train and test rows in {spec.split_column!r}")
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
