"""Export the gold corpus as a Hugging Face ``datasets`` DatasetDict, Parquet and a dataset card.

``export_gold`` reads ``data/gold.jsonl`` (written by ``python -m
experiments corpus``) and writes one folder::

    OUT/
      dataset/            DatasetDict.save_to_disk: load with datasets.load_from_disk("OUT/dataset")
      parquet/train.parquet   the same rows (Dataset.to_parquet; the card's YAML header points at it,
                          so datasets.load_dataset("OUT") reads it as well)
      README.md           a dataset card computed from the data: columns, labels with their
                          codebook definitions, counts, how gold was derived, caveats
      codebook.yaml       a byte copy of the codebook the labels come from
      export.json         what was exported: codebook version, data fingerprint, rows, gold checksum

Labels are typed: ``stance`` is a ``ClassLabel`` over the codebook's stance
labels, ``frames`` a list of ``ClassLabel`` over its frame labels, and
``frame_vector`` the same frames as a fixed-length 0/1 (int8) vector in frame
label order. Every split's ``info.description`` names the codebook version and
both label sets.

Splits. The corpus has a handful of documents, and paragraphs of one document
share an author, an occasion and usually a stance, so a paragraph-level
random split leaks and any fixed document-level train/test split would score
a model on one or two documents. The export therefore keeps every gold
paragraph in a single ``train`` split and, with ``split="document"`` (the
default), adds a ``fold`` column: the index of the paragraph's document in
sorted ``doc_id`` order. Leaving one fold out at a time is leave-one-document-
out evaluation (the project's ``lodo`` protocol; in scikit-learn
``PredefinedSplit(test_fold=ds["fold"])`` or ``LeaveOneGroupOut`` with
``groups=ds["doc_id"]``), and no document is ever on both sides.
``split="none"`` leaves the ``fold`` column out.

The folder is built in a temporary sibling and renamed into place at the
end, so a failure leaves nothing half-written. An existing non-empty ``OUT``
is refused unless ``overwrite=True``, and even then only a folder a previous
export wrote (it has ``export.json``) is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import datasets
import yaml

from experiments import paths
from experiments.codebook import Codebook, load_codebook
from experiments.data import fingerprint
from experiments.errors import UserError
from experiments.io import read_jsonl


SPLITS = ("document", "none")
MARKER = "export.json"
SOURCES = {
    "single": "labelled by one annotator only (no second opinion)",
    "agreed": "labelled by two or more annotators who gave identical stance and frames",
    "adjudicated": "annotators disagreed and an adjudicator decided",
}


@dataclass
class ExportSummary:
    """What ``export_gold`` wrote: rows per split and the paths of each part."""

    out: Path
    rows: dict[str, int]
    documents: int
    codebook_version: str
    fingerprint: str
    split: str
    dataset: Path
    parquet: dict[str, Path] = field(default_factory=dict)
    card: Path = Path()
    codebook: Path = Path()

    def lines(self, show: Callable[[Path], str] = str) -> list[str]:
        """What was written, for the CLI; ``show`` renders a path (e.g. relative to the working folder)."""
        rows = ", ".join(f"{name}: {n}" for name, n in self.rows.items())
        out = [f"{sum(self.rows.values())} gold paragraphs from {self.documents} documents ({rows}), "
               f"codebook {self.codebook_version}, fingerprint {self.fingerprint}"]
        if self.split == "document":
            out.append(f"fold column: leave-one-document-out, folds 0-{self.documents - 1} (see the card)")
        out.append(f"dataset  -> {show(self.dataset)}")
        out += [f"parquet  -> {show(path)}" for path in self.parquet.values()]
        out.append(f"card     -> {show(self.card)}")
        out.append(f"codebook -> {show(self.codebook)}")
        return out


def export_gold(out: Path, codebook: Codebook, gold_path: Path = paths.GOLD, split: str = "document",
                overwrite: bool = False, codebook_path: Path = paths.CODEBOOK) -> ExportSummary:
    """Write the gold corpus to ``out`` as a DatasetDict, Parquet, a dataset card and the codebook.

    ``codebook`` must be the one in ``codebook_path`` (its file is copied
    beside the data). Problems are ``UserError``s naming the file (and line)
    and what to do; ``out`` is only created once everything has been written.
    """
    out = Path(out)
    if split not in SPLITS:
        raise UserError(f"split: {split!r} is not one of {', '.join(SPLITS)}")
    _check_out(out, overwrite)
    target = out.resolve()
    codebook_path = Path(codebook_path)
    _check_codebook(codebook, codebook_path)
    gold_path = Path(gold_path)
    rows = read_gold(gold_path, codebook)
    docs = sorted({r["doc_id"] for r in rows})

    features = gold_features(codebook, split)
    fp = fingerprint(rows, codebook.version)
    records = [_encode(r, codebook, docs if split == "document" else None) for r in rows]
    info = datasets.DatasetInfo(description=_description(codebook, len(rows), len(docs), split, fp),
                                license="see source documents", features=features)
    dataset = datasets.DatasetDict({"train": datasets.Dataset.from_list(records, features=features, info=info,
                                                                         split=datasets.Split.TRAIN)})

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes an owner-only folder; this one becomes an ordinary one
        dataset.save_to_disk(str(tmp / "dataset"))
        (tmp / "parquet").mkdir()
        for name, part in dataset.items():
            part.to_parquet(str(tmp / "parquet" / f"{name}.parquet"))
        shutil.copyfile(codebook_path, tmp / "codebook.yaml")
        card = dataset_card(rows, codebook, split=split, fp=fp, gold_path=gold_path)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        manifest = {
            "codebook_version": codebook.version,
            "stance_labels": codebook.stance_labels,
            "frame_labels": codebook.frame_labels,
            "fingerprint": fp,
            "split": split,
            "rows": {name: len(part) for name, part in dataset.items()},
            "documents": {doc: sum(r["doc_id"] == doc for r in rows) for doc in docs},
            "gold": _display(gold_path),
            "gold_sha256": hashlib.sha256(gold_path.read_bytes()).hexdigest(),
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / MARKER).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _move_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportSummary(
        out=out, rows={name: len(part) for name, part in dataset.items()}, documents=len(docs),
        codebook_version=codebook.version, fingerprint=fp, split=split, dataset=out / "dataset",
        parquet={name: out / "parquet" / f"{name}.parquet" for name in dataset},
        card=out / "README.md", codebook=out / "codebook.yaml",
    )


def gold_features(codebook: Codebook, split: str = "document") -> datasets.Features:
    """The typed columns of the export (``fold`` only with ``split="document"``)."""
    span = {"start": datasets.Value("int32"), "end": datasets.Value("int32"),
            "text": datasets.Value("string"), "label": datasets.Value("string")}
    columns: dict[str, Any] = {
        "id": datasets.Value("string"),
        "doc_id": datasets.Value("string"),
        "kind": datasets.Value("string"),
        "text": datasets.Value("string"),
        "hash": datasets.Value("string"),
        "stance": datasets.ClassLabel(names=list(codebook.stance_labels)),
        "frames": datasets.List(datasets.ClassLabel(names=list(codebook.frame_labels))),
        "frame_vector": datasets.List(datasets.Value("int8"), length=len(codebook.frame_labels)),
        "annotators": datasets.List(datasets.Value("string")),
        "source": datasets.Value("string"),
        "rationale": datasets.Value("string"),
        "rationales": datasets.List(span),
    }
    if split == "document":
        columns["fold"] = datasets.Value("int32")
    return datasets.Features(columns)


def read_gold(path: Path, codebook: Codebook) -> list[dict[str, Any]]:
    """The gold records, checked against the codebook; a problem names ``path:line``."""
    if not path.exists():
        raise UserError(f"{path}: gold labels not found; run `python -m experiments corpus` first")
    stances, frames = set(codebook.stance_labels), set(codebook.frame_labels)
    fix = "fix that line or re-derive gold with `python -m experiments corpus`"
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for lineno, record in read_jsonl(path):
        where = f"{path}:{lineno}"
        for key in ("id", "doc_id", "kind", "text", "hash", "stance", "source"):
            if not isinstance(record.get(key), str) or not record[key]:
                raise UserError(f"{where}: {key!r} must be a non-empty string; {fix}")
        if record["stance"] not in stances:
            raise UserError(f"{where}: stance {record['stance']!r} is not a codebook stance label "
                            f"({', '.join(codebook.stance_labels)}); {fix}")
        if not isinstance(record.get("frames"), list) or not all(isinstance(f, str) for f in record["frames"]):
            raise UserError(f"{where}: 'frames' must be a list of frame labels; {fix}")
        unknown = [f for f in record["frames"] if f not in frames]
        if unknown:
            raise UserError(f"{where}: frame {unknown[0]!r} is not a codebook frame label "
                            f"({', '.join(codebook.frame_labels)}); {fix}")
        if len(set(record["frames"])) < len(record["frames"]):
            raise UserError(f"{where}: 'frames' lists a frame twice; {fix}")
        if record["id"] in seen:
            raise UserError(f"{where}: id {record['id']!r} is also on line {seen[record['id']]}; {fix}")
        seen[record["id"]] = lineno
        annotators = record.get("annotators", [])
        if not isinstance(annotators, list) or not all(isinstance(a, str) for a in annotators):
            raise UserError(f"{where}: 'annotators' must be a list of names; {fix}")
        rationale = record.get("rationale") or ""
        if not isinstance(rationale, str):
            raise UserError(f"{where}: 'rationale' must be a string; {fix}")
        spans = record.get("rationales") or []
        if not isinstance(spans, list) or not all(_is_span(s) for s in spans):
            raise UserError(f"{where}: 'rationales' must be a list of {{start, end, text, label}} spans; {fix}")
        rows.append({**record, "annotators": annotators, "rationale": rationale,
                     "rationales": [{k: s[k] for k in ("start", "end", "text", "label")} for s in spans]})
    if not rows:
        raise UserError(f"{path}: no gold paragraphs; annotate paragraphs, then run `python -m experiments corpus`")
    return rows


def _is_span(span: object) -> bool:
    return (isinstance(span, dict) and all(isinstance(span.get(k), int) and not isinstance(span.get(k), bool)
                                           for k in ("start", "end"))
            and all(isinstance(span.get(k), str) for k in ("text", "label")))


def _encode(row: dict[str, Any], codebook: Codebook, docs: list[str] | None) -> dict[str, Any]:
    """A gold record in the column order of ``gold_features``."""
    record = {k: row[k] for k in ("id", "doc_id", "kind", "text", "hash", "stance", "frames")}
    record["frame_vector"] = [int(label in row["frames"]) for label in codebook.frame_labels]
    record.update({k: row[k] for k in ("annotators", "source", "rationale", "rationales")})
    if docs is not None:
        record["fold"] = docs.index(row["doc_id"])
    return record


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: is a file, not a folder; choose a new or empty folder for the export")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / MARKER).is_file():
        raise UserError(f"{out}: folder is not empty and holds no earlier export (no {MARKER}); "
                        "choose a new or empty folder")
    if not overwrite:
        raise UserError(f"{out}: an earlier export is there; choose a new folder or pass --force to replace it")


def _check_codebook(codebook: Codebook, codebook_path: Path) -> None:
    on_disk = load_codebook(codebook_path)
    if on_disk.model_dump() != codebook.model_dump():
        raise UserError(f"{codebook_path}: differs from the codebook the labels were checked against "
                        f"(version {on_disk.version} vs {codebook.version}); export with the codebook file itself")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished ``tmp`` to ``out``, replacing an empty folder or an earlier export."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".old"))
    os.rename(out, old / "export")
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old / "export", out)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _description(codebook: Codebook, n: int, n_docs: int, split: str, fp: str) -> str:
    text = (f"{codebook.title}: gold corpus of {n} paragraphs from {n_docs} documents. "
            f"Codebook version {codebook.version}. Stance labels (ClassLabel): {', '.join(codebook.stance_labels)}. "
            f"Frame labels (ClassLabel list; frame_vector in this order): {', '.join(codebook.frame_labels)}. "
            f"Data fingerprint {fp}.")
    if split == "document":
        text += " Evaluate leave-one-document-out: the fold column numbers the documents in sorted doc_id order."
    return text


def _display(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.ROOT))
    except ValueError:
        return Path(path).name


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _size_category(n: int) -> str:
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    return next((name for bound, name in bounds if n < bound), "1M<n<10M")


def _table(header: list[str], rows: list[list[object]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows), ""]


def dataset_card(rows: list[dict[str, Any]], codebook: Codebook, split: str, fp: str, gold_path: Path) -> str:
    """A Hugging Face style dataset card (YAML header, then prose); every number comes from ``rows``."""
    n = len(rows)
    docs = sorted({r["doc_id"] for r in rows})
    stance = Counter(r["stance"] for r in rows)
    frames = Counter(f for r in rows for f in r["frames"])
    no_frames = sum(not r["frames"] for r in rows)
    sources = Counter(r["source"] for r in rows)
    kinds = Counter(r["kind"] for r in rows)
    annotators = sorted({a for r in rows for a in r["annotators"]})
    header = {
        "pretty_name": f"{codebook.title} (gold corpus)",
        "license": "other",
        "license_name": "see source documents",
        "language": ["en"],
        "task_categories": ["text-classification"],
        "task_ids": ["multi-class-classification", "multi-label-classification"],
        "size_categories": [_size_category(n)],
        "tags": ["stance-detection", "framing", "iran"],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "parquet/train.parquet"}]}],
    }
    title = f"{codebook.title}: gold corpus"
    out = ["---", yaml.safe_dump(header, sort_keys=False, allow_unicode=True).rstrip(), "---", "", f"# {title}", ""]
    out += [
        f"{n} English paragraphs from {len(docs)} documents about Iran, each labelled with one stance toward "
        f"foreign intervention in Iran and zero or more frames, under codebook version **{codebook.version}** "
        f"(`codebook.yaml` in this folder). Exported from `{_display(gold_path)}` by `python -m experiments export`; "
        f"data fingerprint `{fp}` (the `data fingerprint` a project run logs when it uses these gold labels, "
        "all paragraph kinds and this codebook).",
        "",
        "License: see source documents. The paragraphs are quoted from the documents listed below; "
        "their copyright stays with their authors and publishers.",
        "",
        "## Loading",
        "",
        "```python",
        "import datasets",
        'ds = datasets.load_from_disk("dataset")["train"]        # or: datasets.load_dataset("parquet", '
        'data_files="parquet/train.parquet")',
        'ds.features["stance"].names                              # stance labels, in class-index order',
        'ds.features["frames"].feature.names                      # frame labels, in class-index order',
        "```",
        "",
        "In the Parquet file (e.g. read with pandas) `stance` and `frames` hold class indices; the label names "
        "are in the tables below, in index order.",
        "",
        "## Splits and evaluation",
        "",
    ]
    if split == "document":
        out += [
            f"All {n} paragraphs are in one `train` split. Paragraphs of one document share an author, an "
            "occasion and often a stance, so they must never be on both sides of an evaluation, and with "
            f"{len(docs)} documents a fixed document-level test split would score a model on very few of them. "
            "Evaluate leave-one-document-out instead: the `fold` column is the index of the paragraph's "
            "document in the table under *Documents*; train on the other folds and test on one, for each fold in "
            'turn (scikit-learn: `PredefinedSplit(test_fold=ds["fold"])`, or `LeaveOneGroupOut()` with '
            '`groups=ds["doc_id"]`).',
            "",
        ]
    else:
        out += [
            f"All {n} paragraphs are in one `train` split, with no evaluation split. Paragraphs of one document "
            "share an author, an occasion and often a stance: split by `doc_id` (e.g. leave one document out), "
            "never by paragraph.",
            "",
        ]
    column_rows = [
        ["id", "string", "paragraph id, unique in the corpus"],
        ["doc_id", "string", "the document the paragraph comes from"],
        ["kind", "string", "paragraph kind: " + ", ".join(f"{k} ({kinds[k]})" for k in sorted(kinds))],
        ["text", "string", "the paragraph text, as annotated"],
        ["hash", "string", "first 16 hex digits of the SHA-256 of `text` (UTF-8); equal texts have equal hashes"],
        ["stance", "ClassLabel", "one stance label (see *Stance labels*)"],
        ["frames", "list of ClassLabel", "zero or more frame labels, in codebook order (see *Frame labels*)"],
        ["frame_vector", f"list of {len(codebook.frame_labels)} int8",
         "the frames as 0/1 indicators in frame label order: " + ", ".join(codebook.frame_labels)],
        ["annotators", "list of string", "who labelled the paragraph"],
        ["source", "string", "how the gold label was reached: " + "; ".join(f"{k}: {v}" for k, v in SOURCES.items())],
        ["rationale", "string", "the annotators' written reasons, quoting the words each label rests on"],
        ["rationales", "list of {start, end, text, label}",
         "character spans of `text` supporting a label (`stance` or a frame name)"],
    ]
    if split == "document":
        column_rows.append(["fold", "int32", "the document's index in sorted doc_id order: leave-one-document-out fold"])
    out += ["## Columns", ""]
    out += _table(["column", "type", "meaning"], column_rows)
    out += ["## Stance labels", "", " ".join(codebook.stance.question.split()), ""]
    out += _table(["index", "label", "paragraphs", "definition"],
                  [[i, l.name, stance[l.name], l.definition] for i, l in enumerate(codebook.stance.labels)])
    out += ["## Frame labels", "", " ".join(codebook.frames.question.split()),
            "", f"A paragraph can carry several frames; {no_frames} of {n} carry none.", ""]
    titles = {g.name: g.title for g in codebook.generic_frames.labels}
    out += _table(["index", "label", "paragraphs", "definition", "generic frame"],
                  [[i, l.name, frames[l.name], l.definition, titles[l.generic_frame]]
                   for i, l in enumerate(codebook.frames.labels)])
    out += ["## Documents", ""]
    doc_rows = []
    for i, doc in enumerate(docs):
        items = [r for r in rows if r["doc_id"] == doc]
        doc_stance = Counter(r["stance"] for r in items)
        doc_frames = Counter(f for r in items for f in r["frames"])
        doc_rows.append([*([i] if split == "document" else []), doc, len(items),
                         *(doc_stance[s] for s in codebook.stance_labels),
                         *(doc_frames[f] for f in codebook.frame_labels)])
    out += _table([*(["fold"] if split == "document" else []), "doc_id", "paragraphs",
                   *codebook.stance_labels, *codebook.frame_labels], doc_rows)
    out += ["## How gold was derived", ""]
    out += [
        f"Paragraphs were labelled by {len(annotators)} annotator(s) "
        f"({', '.join(annotators) or 'none recorded'}) following the codebook. A paragraph's gold label is "
        "its annotators' label when all of them agree, or an adjudicator's decision when they do not; "
        "paragraphs with an unresolved disagreement or no annotation are not in this corpus.",
        "",
    ]
    out += _table(["source", "paragraphs", "meaning"],
                  [[k, sources[k], SOURCES.get(k, "")] for k in [*SOURCES, *sorted(set(sources) - set(SOURCES))]
                   if k in SOURCES or sources[k]])
    out += ["## Caveats", ""]
    caveats = [f"The corpus is small: {n} paragraphs from {len(docs)} documents. Scores on it have wide "
               "confidence intervals, and a model can learn a document's style rather than the labels."]
    single = sources.get("single", 0)
    if single:
        caveats.append(f"{single} of {n} gold labels rest on a single annotator, with no second opinion; "
                       "no agreement figure covers them.")
    rare = [f"{name} ({count})" for name, count in [*((s, stance[s]) for s in codebook.stance_labels),
                                                    *((f, frames[f]) for f in codebook.frame_labels)] if count < 5]
    if rare:
        caveats.append("Labels with fewer than 5 paragraphs: " + ", ".join(rare) + ".")
    caveats.append("Labels describe each paragraph on its own words (codebook rule `paragraph_is_the_unit`), "
                   "not the document's overall position.")
    out += [f"- {c}" for c in caveats]
    out += ["", "## Codebook", "",
            f"`codebook.yaml` is a copy of the codebook (version {codebook.version}) the labels were checked "
            "against, with the full definitions, cues, examples and decision rules for every label.", ""]
    return "\n".join(out)
