"""Labelled data for a task: data sources, label encoding and fingerprints.

A data source is a function registered under a name (``data.source`` in a
config) that returns a ``datasets.Dataset`` with the columns ``id``,
``doc_id``, ``text``, ``hash``, ``stance`` and ``frames``. The shipped source
``gold`` derives the seed gold labels from the annotation records; later
sources (imported tables) plug in the same way. ``data.auxiliary`` adds the
stance rows of imported datasets to every training part, never to a test part.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import datasets
import numpy as np

from experiments import paths
from experiments.annotations import derive_gold, load_paragraphs
from experiments.codebook import Codebook
from experiments.config import Config
from experiments.errors import UserError

# Row counts are printed by the CLI; datasets' own per-call progress bars only add noise.
datasets.disable_progress_bars()

# A source returns the dataset, notes for the log, and its label sets per task
# (None: the codebook's labels).
DataSource = Callable[[Codebook], tuple[datasets.Dataset, list[str], dict[str, list[str]] | None]]
DATA_SOURCES: dict[str, DataSource] = {}


def data_source(name: str) -> Callable[[DataSource], DataSource]:
    def register(func: DataSource) -> DataSource:
        DATA_SOURCES[name] = func
        return func

    return register


@data_source("gold")
def gold_source(codebook: Codebook) -> tuple[datasets.Dataset, list[str], None]:
    """The seed gold labels, derived from ``data/annotations`` as ``derive_gold`` does."""
    report = derive_gold(codebook, load_paragraphs(paths.PARAGRAPHS))
    if not report.gold:
        raise UserError(f"{paths.ANNOTATIONS}: no gold labels; annotate paragraphs first (see README)")
    return datasets.Dataset.from_list(report.gold), report.lines()[1:], None


def imported_source(name: str) -> tuple[datasets.Dataset, list[str], dict[str, list[str]]]:
    """A dataset made by ``python -m experiments import``, with its own label sets."""
    from experiments import importer

    dataset, info = importer.load_imported(name, paths.IMPORTED)
    labels = {"stance": list(info.get("stance_labels") or []), "frames": list(info.get("frame_labels") or [])}
    return dataset, [f"imported dataset {name!r} from {info['source']['file']} ({info['imported']})"], labels


@dataclass
class AuxiliaryData:
    """Training-only rows from ``data.auxiliary``: ``y`` indexes the main task's labels, ``weights`` are sample weights."""

    ids: list[str]
    texts: list[str]
    y: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TaskData:
    """Texts and encoded labels for one task, ready for scikit-learn style models.

    ``y`` holds class indices into ``labels`` for stance and a 0/1 matrix with
    one column per label for frames.
    """

    task: str
    labels: list[str]
    ids: list[str]
    texts: list[str]
    doc_ids: np.ndarray
    hashes: list[str]
    y: np.ndarray
    columns: dict[str, list] = field(default_factory=dict)
    fingerprint: str = ""
    targets: np.ndarray | None = None  # the stance target of each row, for datasets with several
    auxiliary: AuxiliaryData | None = None  # extra training rows (stance), never in a test part

    @property
    def multilabel(self) -> bool:
        return self.y.ndim == 2

    def __len__(self) -> int:
        return len(self.ids)

    def decode(self, row: np.ndarray | int) -> str | list[str]:
        """Class index (stance) or 0/1 row (frames) back to label names."""
        if self.multilabel:
            return [self.labels[j] for j in np.flatnonzero(row)]
        return self.labels[int(row)]


def fingerprint(records: list[dict], codebook_version: str) -> str:
    """A hash of the texts, the gold labels and the codebook version: it changes when any of them does.

    Target and split columns, where a dataset has them, are covered too.
    """
    digest = hashlib.sha256(codebook_version.encode())
    for r in sorted(records, key=lambda r: r["id"]):
        extra = [r[k] for k in ("target", "split") if r.get(k) is not None]
        digest.update(json.dumps([r["id"], r["hash"], r["stance"], sorted(r["frames"] or []), *extra]).encode())
    return digest.hexdigest()[:16]


def load_dataset(config: Config, codebook: Codebook) -> tuple[datasets.Dataset, list[str], str, dict | None]:
    """The config's data source, filtered to its paragraph kinds, with notes, fingerprint and label sets.

    ``data.source`` names a registered source (``gold``) or a dataset made by
    ``python -m experiments import``.
    """
    if config.data.source in DATA_SOURCES:
        dataset, notes, labels = DATA_SOURCES[config.data.source](codebook)
    else:
        from experiments import importer

        names = importer.imported_names(paths.IMPORTED)
        if config.data.source not in names:
            available = [*sorted(DATA_SOURCES), *names]
            raise UserError(f"{config.where('data.source')}: unknown data source {config.data.source!r}; available: "
                            f"{', '.join(available)} (add one with `python -m experiments import`)")
        dataset, notes, labels = imported_source(config.data.source)
    present: list[str] = []
    if "kind" in dataset.column_names:
        kinds = set(config.data.kinds)
        present = sorted(set(dataset["kind"]))
        dataset = dataset.filter(lambda row: row["kind"] in kinds)
    if len(dataset) == 0:
        has = f"; it has {', '.join(present)}" if present else ""
        raise UserError(f"{config.where('data.kinds')}: no paragraphs of kind {', '.join(config.data.kinds)} in "
                        f"source {config.data.source!r}{has}")
    version = codebook.version if labels is None else f"imported:{config.data.source}"
    fp = fingerprint(dataset.to_list(), version)
    if config.data.auxiliary:
        stance_labels = codebook.stance_labels if labels is None else labels["stance"]
        if "stance" in config.tasks and stance_labels:
            _, more, aux_fp = load_auxiliary(config, list(stance_labels), set(dataset["hash"]))
            notes = [*notes, *more]
            fp = hashlib.sha256(f"{fp}+{aux_fp}".encode()).hexdigest()[:16]
        else:
            _check_auxiliary_names(config)
        if "frames" in config.tasks:
            notes = [*notes, "data.auxiliary: the frames task is trained without auxiliary rows; "
                             "auxiliary datasets add stance training rows only"]
    return dataset, notes, fp, labels


def _check_auxiliary_names(config: Config) -> None:
    from experiments import importer

    names = importer.imported_names(paths.IMPORTED)
    for i, aux in enumerate(config.data.auxiliary):
        if aux.dataset not in names:
            raise UserError(f"{config.where(f'data.auxiliary.{i}.dataset')}: unknown imported dataset {aux.dataset!r}; available: "
                            f"{', '.join(names) or 'none yet'} (add one with `python -m experiments import`)")
        if aux.dataset == config.data.source:
            raise UserError(f"{config.where(f'data.auxiliary.{i}.dataset')}: {aux.dataset!r} is data.source itself; "
                            "name another imported dataset")


def _auxiliary_label_map(key: str, dataset: str, own: list[str], label_map: dict[str, str], labels: list[str],
                         source: str) -> dict[str, str]:
    """The checked map from the auxiliary dataset's stance labels to the main source's; empty means the same names."""
    if not label_map:
        missing = [label for label in own if label not in labels]
        if missing:
            raise UserError(f"{key}.label_map: {dataset!r} has stance labels that {source!r} lacks "
                            f"({', '.join(missing)}); map them to {', '.join(labels)}, e.g. label_map: {{{missing[0]}: LABEL}}")
        return {label: label for label in own}
    for old, new in label_map.items():
        if old not in own:
            raise UserError(f"{key}.label_map.{old}: {old!r} is not a stance label of {dataset!r} ({', '.join(own)})")
        if new not in labels:
            raise UserError(f"{key}.label_map.{old}: {new!r} is not a stance label of {source!r} ({', '.join(labels)})")
    return label_map


def load_auxiliary(config: Config, labels: list[str], main_hashes: set[str],
                   prefix_targets: bool = False) -> tuple[AuxiliaryData, list[str], str]:
    """The stance rows of every ``data.auxiliary`` dataset, encoded as indices into the main task's ``labels``.

    Each dataset is filtered to its ``targets``, relabelled by its
    ``label_map`` (rows with unmapped labels are dropped) and loses the rows
    whose text is also in the main source, so no test text is ever trained
    on. Returns the rows, notes for the run log, and a fingerprint of the
    rows kept. With ``prefix_targets`` a row's target is prepended to its
    text, as ``target_mode: input`` does for the main source.
    """
    from experiments import importer

    _check_auxiliary_names(config)
    index = {label: j for j, label in enumerate(labels)}
    ids, texts, y, weights, notes, digests = [], [], [], [], [], []
    for i, aux in enumerate(config.data.auxiliary):
        key = config.where(f"data.auxiliary.{i}")  # errors name the config file; the note below does not
        dataset, info = importer.load_imported(aux.dataset, paths.IMPORTED)
        own = list(info.get("stance_labels") or [])
        if not own:
            raise UserError(f"{key}.dataset: {aux.dataset!r} has no stance labels; auxiliary datasets add stance rows")
        label_map = _auxiliary_label_map(key, aux.dataset, own, aux.label_map, labels, config.data.source)
        records = dataset.to_list()
        dropped = []
        if aux.targets is not None:
            present = sorted({r["target"] for r in records if r["target"] is not None})
            if not present:
                raise UserError(f"{key}.targets: {aux.dataset!r} has no targets; remove targets to keep every row")
            for j, target in enumerate(aux.targets):
                if target not in present:
                    raise UserError(f"{key}.targets.{j}: no row of {aux.dataset!r} has target {target!r}; "
                                    f"its targets: {', '.join(present)}")
            kept = [r for r in records if r["target"] in aux.targets]
            if len(kept) < len(records):
                dropped.append(f"{len(records) - len(kept)} of other targets")
            records = kept
        unmapped = Counter(r["stance"] for r in records if r["stance"] not in label_map)
        if unmapped:
            dropped.append(f"{sum(unmapped.values())} with unmapped labels ({', '.join(sorted(unmapped))})")
        records = [{**r, "stance": label_map[r["stance"]]} for r in records if r["stance"] in label_map]
        shared = sum(r["hash"] in main_hashes for r in records)
        if shared:
            dropped.append(f"{shared} whose text is also in the main source")
            records = [r for r in records if r["hash"] not in main_hashes]
        if not records:
            raise UserError(f"{key}: no rows of {aux.dataset!r} are left (dropped {', '.join(dropped)}); "
                            "widen its targets or label_map")
        ids += [f"{aux.dataset}:{r['id']}" for r in records]
        texts += [f"{r['target']}: {r['text']}" if prefix_targets and r["target"] is not None else r["text"]
                  for r in records]
        y += [index[r["stance"]] for r in records]
        weights += [aux.weight] * len(records)
        digests.append(fingerprint(records, f"auxiliary:{aux.dataset}:{aux.weight!r}"))
        notes.append(f"data.auxiliary.{i} ({aux.dataset}): {len(records)} of {len(dataset)} rows added to every stance "
                     f"training part at weight {aux.weight:g}" + (f"; dropped {', '.join(dropped)}" if dropped else ""))
    out = AuxiliaryData(ids=ids, texts=texts, y=np.array(y, dtype=int), weights=np.array(weights, dtype=float))
    return out, notes, hashlib.sha256(json.dumps(digests).encode()).hexdigest()[:16]


def task_data(dataset: datasets.Dataset, task: str, config: Config, codebook: Codebook, fp: str,
              label_sets: dict[str, list[str]] | None = None) -> TaskData:
    """Encode one task's labels from a dataset (the codebook's labels unless the source has its own).

    A stance task also gets the ``data.auxiliary`` rows (see ``load_auxiliary``).
    """
    columns = dataset.to_dict()
    own = (label_sets or {}).get(task)
    if label_sets is not None and not own:
        raise UserError(f"{config.where('data.source')}: {config.data.source!r} has no {task} labels; "
                        f"set tasks to the ones it has ({', '.join(t for t, l in label_sets.items() if l)})")
    if task == "stance":
        labels = list(own or codebook.stance_labels)
        index = {name: i for i, name in enumerate(labels)}
        y = np.array([index[s] for s in columns["stance"]], dtype=int)
    else:
        generic = config.frame_level == "generic" and own is None
        labels = list(own or (codebook.generic_labels if generic else codebook.frame_labels))
        y = np.zeros((len(dataset), len(labels)), dtype=int)
        for i, frames in enumerate(columns["frames"]):
            for frame in codebook.to_generic(frames) if generic else frames:
                y[i, labels.index(frame)] = 1
    targets = None
    texts = list(columns["text"])
    if any(t is not None for t in columns.get("target", [])):
        targets = np.array([str(t) for t in columns["target"]])
        if config.data.target_mode == "input":
            texts = [f"{t}: {text}" for t, text in zip(targets, texts)]
    auxiliary = None
    if task == "stance" and config.data.auxiliary:
        auxiliary, _, _ = load_auxiliary(config, labels, set(columns["hash"]),
                                         prefix_targets=targets is not None and config.data.target_mode == "input")
    return TaskData(
        task=task,
        labels=labels,
        ids=list(columns["id"]),
        texts=texts,
        doc_ids=np.array(columns["doc_id"]),
        hashes=list(columns["hash"]),
        y=y,
        columns=columns,
        fingerprint=fp,
        targets=targets,
        auxiliary=auxiliary,
    )
