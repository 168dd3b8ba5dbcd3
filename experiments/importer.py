"""A labelled table a user brings (CSV, TSV, JSON Lines, Parquet) → a named dataset.

``import_table`` reads the whole table, checks every row, and only then
writes ``<root>/<name>/dataset.parquet`` (one row per text, the columns of
the ``gold`` source plus ``kind``, ``target`` and ``split``) and
``info.json`` (where it came from, the options, labels and counts). A config
names the result with ``data: {source: NAME}``; ``load_imported`` reads it.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "t.csv").write_text("text,Stance\\nTax  cuts help.,FAVOR\\nNo more wars.,AGAINST\\n", encoding="utf-8")
>>> summary = import_table(folder / "t.csv", "toy", ImportOptions(stance_column="Stance",
...                        label_map={"FAVOR": "favor", "AGAINST": "against"}), root=folder / "imported")
>>> dataset, info = load_imported("toy", root=folder / "imported")
>>> [(r["id"], r["text"], r["stance"], r["frames"]) for r in dataset]
[('toy-1', 'Tax cuts help.', 'favor', []), ('toy-2', 'No more wars.', 'against', [])]
>>> print(format_summary(summary))
toy: 2 rows; tasks: stance
<BLANKLINE>
stance   rows
against     1
favor       1
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import io
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from experiments import paths
from experiments.corpus import normalize_whitespace, text_hash
from experiments.errors import UserError
from experiments.io import CsvTable, jsonl_records, locked, read_json_object, unreadable_parquet

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
SPLITS = ("train", "dev", "test")
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SCHEMA = pa.schema([
    ("id", pa.string()), ("doc_id", pa.string()), ("text", pa.string()), ("hash", pa.string()),
    ("kind", pa.string()), ("stance", pa.string()), ("frames", pa.list_(pa.string())),
    ("target", pa.string()), ("split", pa.string()),
])

_TRUE = frozenset({"1", "1.0", "true", "yes"})
_FALSE = frozenset({"0", "0.0", "false", "no"})


@dataclass(frozen=True)
class ImportOptions:
    """Which columns of the table hold what, and how to read and rename its values.

    Each field is the CLI option of the same name (``frame_columns`` is
    ``--frame-columns``); error messages name the option.
    """

    text_column: str = "text"
    stance_column: str | None = None  # one stance label per row
    frames_column: str | None = None  # a list (JSON Lines, Parquet) or labels joined by frames_separator
    frame_columns: tuple[str, ...] = ()  # one 0/1 indicator column per frame, named by the frame
    frames_separator: str = ";"
    target_column: str | None = None  # what the stance is toward, for tables with several targets
    split_column: str | None = None  # train / dev / test (after label_map)
    group_column: str | None = None  # document or author id; default: each row is its own group
    id_column: str | None = None  # default: "<name>-<row number>"
    encoding: str = "utf-8"
    delimiter: str | None = None  # default: "," for .csv, tab for .tsv
    label_map: dict[str, str] = field(default_factory=dict)  # OLD -> NEW for stance, frame and split values
    stance_labels: tuple[str, ...] = ()  # the allowed stance labels (after label_map); empty: any
    frame_labels: tuple[str, ...] = ()  # the allowed frame labels (after label_map); empty: any


@dataclass(frozen=True)
class ImportSummary:
    """What ``import_table`` wrote: the folder, the row count, the tasks and the counts of ``info.json``."""

    name: str
    path: Path
    rows: int
    tasks: list[str]
    counts: dict
    replaced: bool = False


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


# --- reading -----------------------------------------------------------------------------------------------------


@dataclass
class _Table:
    """The raw values of the named columns, one list per column, and where each row is in the file."""

    path: Path
    format: str
    positions: list[int]  # physical line (csv, tsv, jsonl) or row number (parquet), 1-based
    columns: dict[str, list[Any]]
    sha256: str

    def where(self, i: int) -> str:
        if self.format == "parquet":
            return f"{self.path}: row {self.positions[i]}"
        return f"{self.path}:{self.positions[i]}"

    def at(self, i: int) -> str:
        """Row ``i``'s place as another message mentions it: "line 3" or "row 3"."""
        return f"{'row' if self.format == 'parquet' else 'line'} {self.positions[i]}"


def _missing_column(path: Path, option: str, column: str, available: list[str]) -> UserError:
    shown = ", ".join(available) if available else "none"
    return UserError(f"{path}: {_flag(option)} {column!r}: no such column; the columns are: {shown}")


def _named_columns(options: ImportOptions) -> list[tuple[str, str]]:
    """``(option, column)`` for every column the options name, in the order they are checked."""
    named = [("text_column", options.text_column)]
    for option in ("id_column", "stance_column", "frames_column", "target_column", "split_column", "group_column"):
        if getattr(options, option) is not None:
            named.append((option, getattr(options, option)))
    named.extend(("frame_columns", column) for column in options.frame_columns)
    return named


def _decode(path: Path, data: bytes, encoding: str) -> str:
    if codecs.lookup(encoding).name == "utf-8":
        encoding = "utf-8-sig"  # a byte-order mark (Excel writes one) is not part of the header
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start:exc.start + 1].hex()
        raise UserError(f"{path}:{line}: byte 0x{byte} is not valid {encoding.removesuffix('-sig')}; "
                        "give the file's encoding, e.g. --encoding latin-1") from None


def _read_csv(path: Path, text: str, delimiter: str, named: list[tuple[str, str]]) -> tuple[list[int], dict[str, list]]:
    table = CsvTable(io.StringIO(text, newline=""), str(path), delimiter)
    if not table.header:
        raise UserError(f"{path}: the file is empty; expected a header line naming the columns, then one row per text")
    for option, column in named:
        if column not in table.header:
            raise _missing_column(path, option, column, table.header)
        if table.header.count(column) > 1:
            raise UserError(f"{path}:{table.header_line}: column {column!r} ({_flag(option)}) appears twice in the header; "
                            "rename one of them")
    wanted = [(column, table.header.index(column)) for column in dict.fromkeys(column for _, column in named)]
    columns: dict[str, list] = {column: [] for column, _ in wanted}
    positions: list[int] = []
    for line, row in table.rows():
        positions.append(line)
        for column, index in wanted:
            columns[column].append(row[index])
    return positions, columns


def _read_jsonl(path: Path, text: str, named: list[tuple[str, str]]) -> tuple[list[int], dict[str, list]]:
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        raise UserError(f"{path}: a JSON array; give JSON Lines (one object per line), e.g. convert it with jq -c '.[]'")
    wanted = list(dict.fromkeys(column for _, column in named))
    columns: dict[str, list] = {column: [] for column in wanted}
    positions: list[int] = []
    seen: dict[str, None] = {}
    for line, row in jsonl_records(io.StringIO(text), str(path)):
        seen.update(dict.fromkeys(row))
        positions.append(line)
        for column in wanted:
            columns[column].append(row.get(column))
    if not positions:
        raise UserError(f"{path}: the table has no rows")
    for option, column in named:
        if column not in seen:
            raise _missing_column(path, option, column, list(seen))
    return positions, columns


def _read_parquet(path: Path, named: list[tuple[str, str]]) -> tuple[list[int], dict[str, list]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable_parquet(str(path), exc) from None
    for option, column in named:
        if column not in table.column_names:
            raise _missing_column(path, option, column, table.column_names)
        if table.column_names.count(column) > 1:
            raise UserError(f"{path}: column {column!r} ({_flag(option)}) appears twice; rename one of them")
    columns = {column: table.column(column).to_pylist() for _, column in named}
    return list(range(1, table.num_rows + 1)), columns


def _read_table(path: Path, options: ImportOptions) -> _Table:
    if not path.is_file():
        raise UserError(f"{path}: {'not a file' if path.exists() else 'file not found'}")
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: cannot import {path.suffix or 'a file without a suffix'}; "
                        "give a .csv, .tsv, .jsonl (or .json lines) or .parquet table")
    if options.delimiter is not None and kind not in ("csv", "tsv"):
        raise UserError(f"--delimiter applies to .csv and .tsv files, not to {path.name}")
    named = _named_columns(options)
    if kind == "parquet":
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        positions, columns = _read_parquet(path, named)
        return _Table(path, kind, positions, columns, digest.hexdigest())
    data = path.read_bytes()
    text = _decode(path, data, options.encoding)
    nul = text.find("\x00")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        raise UserError(f"{path}:{line}: NUL byte in the file; remove the NUL bytes "
                        "(if the file is UTF-16 text, give --encoding utf-16)")
    if kind == "jsonl":
        positions, columns = _read_jsonl(path, text, named)
    else:
        delimiter = options.delimiter or ("\t" if kind == "tsv" else ",")
        positions, columns = _read_csv(path, text, delimiter, named)
    return _Table(path, kind, positions, columns, hashlib.sha256(data).hexdigest())


# --- checking ----------------------------------------------------------------------------------------------------


def _check_options(name: str, options: ImportOptions) -> None:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"--name {name!r}: use 1-64 lower-case letters, digits, '_' or '-', "
                        "starting with a letter or digit, e.g. semeval2016")
    if options.stance_column is None and options.frames_column is None and not options.frame_columns:
        raise UserError("nothing to import: name the labels with --stance-column, --frames-column or --frame-columns")
    if options.frames_column is not None and options.frame_columns:
        raise UserError("give either --frames-column (one column of frame lists) or --frame-columns "
                        "(one indicator column per frame), not both")
    if not options.frames_separator:
        raise UserError("--frames-separator: must not be empty; e.g. ';' or '|'")
    try:
        codecs.lookup(options.encoding)
    except LookupError:
        raise UserError(f"--encoding {options.encoding!r}: unknown encoding; e.g. utf-8, latin-1 or cp1252") from None
    if options.delimiter is not None and len(options.delimiter) != 1:
        raise UserError(f"--delimiter {options.delimiter!r}: give one character, e.g. ';' or a tab")
    for old, new in options.label_map.items():
        if not old.strip() or not new.strip():
            raise UserError(f"--map {old}={new}: both sides must be non-empty, e.g. --map FAVOR=favor")
    for option in ("frame_columns", "stance_labels", "frame_labels"):
        values = getattr(options, option)
        twice = [v for i, v in enumerate(values) if v in values[:i]]
        if twice:
            raise UserError(f"{_flag(option)}: {twice[0]!r} is given twice")
    frames = [options.label_map.get(c, c) for c in options.frame_columns]
    for i, frame in enumerate(frames):
        if frame in frames[:i]:
            raise UserError(f"--frame-columns: {options.frame_columns[frames.index(frame)]!r} and "
                            f"{options.frame_columns[i]!r} are both mapped to frame {frame!r}")
        if options.frame_labels and frame not in options.frame_labels:
            raise UserError(f"--frame-columns: column {options.frame_columns[i]!r} is frame {frame!r}, which is not "
                            f"among the declared --frame-labels ({', '.join(options.frame_labels)})")


def _scalar(table: _Table, i: int, column: str, value: Any, what: str) -> str:
    """A label-like cell as whitespace-normalised text ("" when missing); numbers are read as their digits."""
    if value is None:
        return ""
    if isinstance(value, str):
        _no_nul(table, i, column, value, what)
        return normalize_whitespace(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    shown = json.dumps(value, default=str)
    raise UserError(f"{table.where(i)}: the {what} in column {column!r} is {shown}; expected text")


def _no_nul(table: _Table, i: int, column: str, value: str, what: str) -> None:
    """Refuse a cell with a NUL character (a JSON ``\\u0000`` or a Parquet string): it is never part of text."""
    if "\x00" in value:
        raise UserError(f"{table.where(i)}: the {what} in column {column!r} contains a NUL character; remove it")


def _relabel(table: _Table, i: int, column: str, raw: str, what: str, options: ImportOptions,
             declared: tuple[str, ...], option: str) -> str:
    label = options.label_map.get(raw, raw)
    if declared and label not in declared:
        shown = repr(label) if label == raw else f"{label!r} (mapped from {raw!r})"
        raise UserError(f"{table.where(i)}: unknown {what} label {shown} in column {column!r}; the declared labels "
                        f"are {', '.join(declared)}; rename it with --map {raw}=LABEL or declare it with {_flag(option)}")
    return label


def _frame_list(table: _Table, i: int, column: str, value: Any, options: ImportOptions) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        pieces = value.split(options.frames_separator)
    elif isinstance(value, list):
        pieces = value
    else:
        shown = json.dumps(value, default=str)
        raise UserError(f"{table.where(i)}: the frames in column {column!r} are {shown}; expected a list of labels "
                        f"or labels joined by {options.frames_separator!r} (--frames-separator)")
    frames: dict[str, None] = {}
    for piece in pieces:
        raw = _scalar(table, i, column, piece, "frame")
        if raw:
            frames[_relabel(table, i, column, raw, "frame", options, options.frame_labels, "frame_labels")] = None
    return list(frames)


def _indicator(table: _Table, i: int, column: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    shown = "empty" if value is None or value == "" else repr(value)
    raise UserError(f"{table.where(i)}: invalid value {shown} in indicator column {column!r}; use 1/0, true/false or yes/no")


def _split_hint(raw: str) -> str:
    lowered = raw.lower()
    return "train" if lowered.startswith("train") else "test" if lowered.startswith("test") else "dev"


def _rows(table: _Table, name: str, options: ImportOptions) -> dict[str, list]:
    """Check every row and build the dataset's columns; the first bad row raises a ``UserError``."""
    n = len(table.positions)
    if n == 0:
        raise UserError(f"{table.path}: the table has no rows")
    cols = table.columns
    out: dict[str, list] = {key: [] for key in SCHEMA.names}
    first_at: dict[str, int] = {}
    frame_names = [options.label_map.get(c, c) for c in options.frame_columns]
    for i in range(n):
        raw_text = cols[options.text_column][i]
        if raw_text is not None and not isinstance(raw_text, str):
            raise UserError(f"{table.where(i)}: the text in column {options.text_column!r} is "
                            f"{json.dumps(raw_text, default=str)}; expected a string")
        _no_nul(table, i, options.text_column, raw_text or "", "text")
        text = normalize_whitespace(raw_text or "")
        if not text:
            raise UserError(f"{table.where(i)}: the text in column {options.text_column!r} is empty; "
                            "fill it in or remove the row")

        if options.id_column is None:
            row_id = f"{name}-{i + 1}"
        else:
            row_id = _scalar(table, i, options.id_column, cols[options.id_column][i], "id")
            if not row_id:
                raise UserError(f"{table.where(i)}: the id in column {options.id_column!r} is empty; "
                                "fill it in, or leave out --id-column to number the rows")
            if row_id in first_at:
                raise UserError(f"{table.where(i)}: duplicate id {row_id!r} in column {options.id_column!r} "
                                f"(also at {table.at(first_at[row_id])}); make the ids unique, "
                                "or leave out --id-column to number the rows")
            first_at[row_id] = i

        stance = None
        if options.stance_column is not None:
            raw = _scalar(table, i, options.stance_column, cols[options.stance_column][i], "stance label")
            if not raw:
                raise UserError(f"{table.where(i)}: the stance label in column {options.stance_column!r} is empty; "
                                "fill it in or remove the row")
            stance = _relabel(table, i, options.stance_column, raw, "stance", options, options.stance_labels,
                              "stance_labels")

        if options.frames_column is not None:
            frames = _frame_list(table, i, options.frames_column, cols[options.frames_column][i], options)
        else:
            frames = [frame for frame, column in zip(frame_names, options.frame_columns)
                      if _indicator(table, i, column, cols[column][i])]

        target = None
        if options.target_column is not None:
            target = _scalar(table, i, options.target_column, cols[options.target_column][i], "target")
            if not target:
                raise UserError(f"{table.where(i)}: the target in column {options.target_column!r} is empty; "
                                "fill it in or remove the row")

        split = None
        if options.split_column is not None:
            raw = _scalar(table, i, options.split_column, cols[options.split_column][i], "split")
            split = options.label_map.get(raw, raw)
            if split not in SPLITS:
                shown = "empty" if not raw else repr(split) if split == raw else f"{split!r} (mapped from {raw!r})"
                hint = f", or rename it with --map {raw}={_split_hint(raw)}" if raw else ""
                raise UserError(f"{table.where(i)}: the split in column {options.split_column!r} is {shown}; "
                                f"use train, dev or test{hint}")

        doc_id = row_id
        if options.group_column is not None:
            doc_id = _scalar(table, i, options.group_column, cols[options.group_column][i], "group")
            if not doc_id:
                raise UserError(f"{table.where(i)}: the group in column {options.group_column!r} is empty; "
                                "fill it in or remove the row")

        out["id"].append(row_id)
        out["doc_id"].append(doc_id)
        out["text"].append(text)
        out["hash"].append(text_hash(text))
        out["kind"].append("body")
        out["stance"].append(stance)
        out["frames"].append(frames)
        out["target"].append(target)
        out["split"].append(split)
    return out


def _check_stance_labels(table: _Table, stances: list[str], options: ImportOptions, known: list[str]) -> None:
    """Refuse undeclared stance labels outside the codebook when the table's other labels are the codebook's."""
    labels = list(dict.fromkeys(stances))  # in order of first appearance
    outside = [label for label in labels if label not in known]
    if not outside or len(outside) == len(labels):
        return
    column = options.stance_column
    shown, renames = [], []
    for label in outside:
        i = stances.index(label)
        raw = _scalar(table, i, column, table.columns[column][i], "stance label")
        shown.append(f"{label!r} ({table.at(i)}" + (f", mapped from {raw!r})" if raw != label else ")"))
        close = difflib.get_close_matches(raw.lower(), known, n=1, cutoff=0.75)
        renames.append(f"--map {raw}={close[0] if close else 'LABEL'}")
    raise UserError(f"{table.path}: stance labels outside the codebook in column {column!r}: {', '.join(shown)}; "
                    f"rename them with {' '.join(renames)} (the codebook's labels: {', '.join(known)}), "
                    f"or declare the label set with --stance-labels {','.join(labels)}")


# --- counting ----------------------------------------------------------------------------------------------------


def _tally(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _label_info(rows: dict[str, list], options: ImportOptions) -> dict:
    """The label sets and counts of ``info.json``; declared labels keep their order and show zero counts."""
    stance_counts = _tally(s for s in rows["stance"] if s is not None)
    frame_counts = _tally(f for frames in rows["frames"] for f in frames)
    stance_labels = (list(options.stance_labels) or sorted(stance_counts)) if options.stance_column else []
    if options.frame_labels:
        frame_labels = list(options.frame_labels)
    else:
        frame_labels = sorted({*frame_counts, *(options.label_map.get(c, c) for c in options.frame_columns)})
    has_frames = options.frames_column is not None or bool(options.frame_columns)
    if not has_frames:
        frame_labels = []
    targets = sorted({t for t in rows["target"] if t is not None})
    splits = sorted({s for s in rows["split"] if s is not None})
    by_target: dict[str, dict[str, int]] = {}
    if targets and stance_labels:
        by_target = {t: dict.fromkeys(stance_labels, 0) for t in targets}
        for target, stance in zip(rows["target"], rows["stance"]):
            by_target[target][stance] += 1
    target_counts = _tally(t for t in rows["target"] if t is not None)
    split_counts = _tally(s for s in rows["split"] if s is not None)
    return {
        "tasks": (["stance"] if options.stance_column else []) + (["frames"] if has_frames else []),
        "stance_labels": stance_labels,
        "frame_labels": frame_labels,
        "targets": targets,
        "splits": splits,
        "counts": {
            "stance": {label: stance_counts.get(label, 0) for label in stance_labels},
            "frames": {label: frame_counts.get(label, 0) for label in frame_labels},
            "target": {t: target_counts[t] for t in targets},
            "split": {s: split_counts[s] for s in splits},
            "target_by_stance": by_target,
        },
    }


# --- writing -----------------------------------------------------------------------------------------------------


def import_table(path: Path, name: str, options: ImportOptions, root: Path = paths.IMPORTED,
                 force: bool = False, codebook=None) -> ImportSummary:
    """Check the whole table, then write ``root/name/`` (``dataset.parquet`` and ``info.json``) in one step.

    Nothing is written when any row is wrong. An existing dataset of that
    name is refused unless ``force``; then it is replaced only once the new
    one is complete, so a reader sees the old or the new, never half of one.

    Without ``--stance-labels`` the stance labels (after ``--map``) are
    either all ``codebook``'s (default: the shipped codebook) or a label set
    of the table's own (raw SemEval ``FAVOR``/``AGAINST``/``NONE``, say,
    which ``data.auxiliary.label_map`` maps later). A table that mixes the
    two has a label that ``--map`` missed, and is refused.
    """
    path, root = Path(path), Path(root)
    _check_options(name, options)
    final = root / name
    if final.exists() and not force:
        raise UserError(f"{final}: an imported dataset named {name!r} exists; "
                        "choose another --name or replace it with --force")
    table = _read_table(path, options)
    rows = _rows(table, name, options)
    if options.stance_column is not None and not options.stance_labels:
        if codebook is None:
            from experiments.codebook import load_codebook

            codebook = load_codebook()
        _check_stance_labels(table, rows["stance"], options, list(codebook.stance_labels))
    info = {
        "name": name,
        "source": {"file": str(path), "sha256": table.sha256, "rows": len(rows["id"])},
        "options": asdict(options),
        "imported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **_label_info(rows, options),
    }
    dataset = pa.Table.from_pydict(rows, schema=SCHEMA)
    with locked(final):
        replaced = final.exists()
        if replaced and not force:  # another import of this name finished meanwhile
            raise UserError(f"{final}: an imported dataset named {name!r} exists; "
                            "choose another --name or replace it with --force")
        staging, old = root / f".{name}.partial", root / f".{name}.old"
        for leftover in (staging, old):
            shutil.rmtree(leftover, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
            pq.write_table(dataset, staging / "dataset.parquet")
            (staging / "info.json").write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            if replaced:
                os.rename(final, old)
            try:
                os.rename(staging, final)
            except BaseException:
                if replaced:
                    os.rename(old, final)
                raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
    return ImportSummary(name=name, path=final, rows=len(rows["id"]), tasks=info["tasks"],
                         counts=info["counts"], replaced=replaced)


# --- reading back ------------------------------------------------------------------------------------------------


def imported_names(root: Path = paths.IMPORTED) -> list[str]:
    """The names of the complete imported datasets under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        entry.name for entry in root.iterdir()
        if NAME_PATTERN.fullmatch(entry.name) and (entry / "dataset.parquet").is_file() and (entry / "info.json").is_file()
    )


def load_imported(name: str, root: Path = paths.IMPORTED) -> tuple[datasets.Dataset, dict]:
    """The imported dataset ``name`` as a ``datasets.Dataset``, and its ``info.json``."""
    root = Path(root)
    names = imported_names(root)
    if name not in names:
        shown = ", ".join(names) if names else "none yet"
        raise UserError(f"unknown imported dataset {name!r}; imported in {root}: {shown} "
                        "(add one with `python -m experiments import FILE --name NAME`)")
    folder = root / name
    fix = f"import the table again: python -m experiments import FILE --name {name} --force"
    info = read_json_object(folder / "info.json", fix)
    try:
        table = pq.read_table(folder / "dataset.parquet")
    except (pa.ArrowException, OSError) as exc:
        raise unreadable_parquet(str(folder / "dataset.parquet"), exc, fix) from None
    return datasets.Dataset(table), info


# --- the terminal summary ----------------------------------------------------------------------------------------


def _grid(header: list[str], rows: list[list[Any]]) -> list[str]:
    """An aligned plain-text table: the first column left-aligned, the others (counts) right-aligned."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
    return ["  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]).rstrip()
            for row in cells]


def format_summary(summary: ImportSummary) -> str:
    """The counts per stance label, frame, target (by stance) and split, as aligned tables for the terminal."""
    counts = summary.counts
    lines = [f"{summary.name}: {summary.rows} rows; tasks: {', '.join(summary.tasks)}"]
    tables: list[list[str]] = []
    if counts["stance"]:
        tables.append(_grid(["stance", "rows"], [[k, v] for k, v in counts["stance"].items()]))
    if counts["frames"]:
        tables.append(_grid(["frame", "rows"], [[k, v] for k, v in counts["frames"].items()]))
    if counts["target"]:
        labels = list(counts["stance"]) if counts["target_by_stance"] else []
        tables.append(_grid(["target", "rows", *labels], [
            [t, n, *(counts["target_by_stance"][t][label] for label in labels)] for t, n in counts["target"].items()
        ]))
    if counts["split"]:
        tables.append(_grid(["split", "rows"], [[k, v] for k, v in counts["split"].items()]))
    for table in tables:
        lines += ["", *table]
    return "\n".join(lines)
