"""Labelled data for a task: data sources, label encoding and fingerprints.

A data source is a function registered under a name (``data.source`` in a
config) that returns a ``datasets.Dataset`` with the columns ``id``,
``doc_id``, ``text``, ``hash``, ``stance`` and ``frames``. The shipped source
``gold`` derives the seed gold labels from the annotation records; later
sources (imported tables) plug in the same way.
"""

from __future__ import annotations

import hashlib
import json
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

    dataset, info = importer.load_imported(name, importer.IMPORTED)
    labels = {"stance": list(info.get("stance_labels") or []), "frames": list(info.get("frame_labels") or [])}
    return dataset, [f"imported dataset {name!r} from {info['source']['file']} ({info['imported']})"], labels


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

        names = importer.imported_names(importer.IMPORTED)
        if config.data.source not in names:
            available = [*sorted(DATA_SOURCES), *names]
            raise UserError(f"data.source: unknown data source {config.data.source!r}; available: "
                            f"{', '.join(available)} (add one with `python -m experiments import`)")
        dataset, notes, labels = imported_source(config.data.source)
    if "kind" in dataset.column_names:
        kinds = set(config.data.kinds)
        dataset = dataset.filter(lambda row: row["kind"] in kinds)
    if len(dataset) == 0:
        raise UserError(f"data: no paragraphs of kind {config.data.kinds} in source {config.data.source!r}")
    version = codebook.version if labels is None else f"imported:{config.data.source}"
    return dataset, notes, fingerprint(dataset.to_list(), version), labels


def task_data(dataset: datasets.Dataset, task: str, config: Config, codebook: Codebook, fp: str,
              label_sets: dict[str, list[str]] | None = None) -> TaskData:
    """Encode one task's labels from a dataset (the codebook's labels unless the source has its own)."""
    columns = dataset.to_dict()
    own = (label_sets or {}).get(task)
    if label_sets is not None and not own:
        raise UserError(f"data.source: {config.data.source!r} has no {task} labels; "
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
    )
