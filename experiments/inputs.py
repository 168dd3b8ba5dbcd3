"""New text to label: documents, folders, JSON Lines, CSV or Parquet tables, standard input.

``open_inputs`` checks the paths a user named and ``iter_paragraphs``
streams one record per paragraph from them, in a fixed order, so a second
pass over the same inputs yields the same paragraphs (``predict`` relies on
that to resume). Documents are segmented by the corpus rules; a table row
is one paragraph, its text whitespace-normalised like the corpus.
``iter_file`` reads one file from its n-th paragraph on, which is how the
Ray engine's workers read their shard of the inputs.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "Op Ed.txt").write_text("A Title\\n\\nIt rained on Monday.\\n", encoding="utf-8")
>>> [(p["id"], p["kind"], p["text"]) for p in iter_paragraphs(open_inputs([str(folder)]))]
[('op_ed-001', 'headline', 'A Title'), ('op_ed-002', 'body', 'It rained on Monday.')]
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from experiments.corpus import DOCUMENT_SUFFIXES, document_id, normalize_whitespace, read_document, segment_text, text_hash
from experiments.errors import UserError
from experiments.io import CsvTable, jsonl_records, unreadable_parquet

TABLE_SUFFIXES = (".jsonl", ".csv", ".tsv", ".parquet")
STDIN_FORMATS = ("text", "jsonl", "csv", "parquet")
PARQUET_BATCH = 1024  # rows decoded at a time from a Parquet file


@dataclass(frozen=True)
class TableColumns:
    """Which columns of a JSON Lines, CSV or Parquet table hold the text, the id and the document."""

    text: str = "text"
    id: str = "id"
    doc: str = "doc_id"


@dataclass
class Inputs:
    """Checked input files in reading order; ``close`` removes a spooled copy of stdin."""

    files: list[tuple[Path, str]]  # (path, "document" | "jsonl" | "csv" | "tsv" | "parquet")
    names: list[str]  # as the user named them, for messages and resume checks
    columns: TableColumns = field(default_factory=TableColumns)
    _spool: Path | None = None

    def signature(self) -> list[dict]:
        """What identifies these inputs for resuming: each file's name, size and modification time."""
        out = []
        for path, kind in self.files:
            stat = path.stat()
            name = "<stdin>" if self._spool and path.is_relative_to(self._spool) else str(path.resolve())
            out.append({"file": name, "kind": kind, "bytes": stat.st_size,
                        "mtime": None if name == "<stdin>" else stat.st_mtime_ns})
        return out

    def source(self, path: Path) -> str:
        """How messages name ``path``: as given, or ``<stdin>`` for the copy of standard input."""
        return "<stdin>" if self._spool and path.is_relative_to(self._spool) else str(path)

    def check_output(self, out: Path, flag: str = "--out") -> None:
        """Refuse an output that is one of the inputs, lies inside an input folder, or holds an input."""
        target = Path(out).resolve()
        for name in self.names:
            if name == "-":
                continue
            given = Path(name).resolve()
            if target == given:
                raise UserError(f"{flag} {out}: is one of the inputs; write the output somewhere else")
            if given.is_dir() and target.is_relative_to(given):
                raise UserError(f"{flag} {out}: is inside the input folder {name}; write the output outside it")
            if given.is_relative_to(target):
                raise UserError(f"{flag} {out}: holds the input {name}; write the output somewhere else")

    def close(self) -> None:
        if self._spool:
            shutil.rmtree(self._spool, ignore_errors=True)

    def __enter__(self) -> "Inputs":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in DOCUMENT_SUFFIXES:
        return "document"
    if suffix in TABLE_SUFFIXES:
        return suffix[1:]
    return None


def open_inputs(names: list[str], columns: TableColumns = TableColumns(), stdin_format: str = "text") -> Inputs:
    """Resolve files, folders and ``-`` (standard input) into the files to read, in order.

    A folder contributes its documents and tables, sorted by path, searched
    recursively. Standard input is copied to a temporary file first so it
    can be read twice (once to check and count, once to label).
    """
    if not names:
        raise UserError("no input given; name .txt/.md documents, .jsonl/.csv/.parquet tables, folders, "
                        "or - for standard input")
    if names.count("-") > 1:
        raise UserError("standard input (-) can be named only once")
    files: list[tuple[Path, str]] = []
    spool: list[Path] = []
    try:
        _collect(names, stdin_format, files, spool)
    except BaseException:
        for folder in spool:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return Inputs(files=files, names=list(names), columns=columns, _spool=spool[0] if spool else None)


def _collect(names: list[str], stdin_format: str, files: list[tuple[Path, str]], spool: list[Path]) -> None:
    """Append each named input's files to ``files``; a stdin copy's folder goes to ``spool``."""
    for name in names:
        if name == "-":
            if stdin_format not in STDIN_FORMATS:
                raise UserError(f"--stdin-format {stdin_format!r}: use one of {', '.join(STDIN_FORMATS)}")
            spool.append(Path(tempfile.mkdtemp(prefix="experiments-stdin-")))
            path = spool[0] / f"stdin.{'txt' if stdin_format == 'text' else stdin_format}"
            with open(path, "wb") as handle:
                shutil.copyfileobj(sys.stdin.buffer, handle)
            files.append((path, _kind(path)))
            continue
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p)
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise UserError(f"{path}: no .txt, .md, .jsonl, .csv, .tsv or .parquet files in this folder")
            files.extend((p, _kind(p)) for p in found)
        elif path.is_file():
            kind = _kind(path)
            if kind is None:
                raise UserError(f"{path}: cannot read {path.suffix or 'files without a suffix'}; "
                                "give .txt/.md documents, .jsonl/.csv/.tsv/.parquet tables, or a folder of them")
            files.append((path, kind))
        else:
            raise UserError(f"{path}: no such file or folder")


def iter_paragraphs(inputs: Inputs) -> Iterator[dict]:
    """One record per paragraph: ``id``, ``doc_id``, ``position``, ``kind``, ``text``, ``hash`` and ``source``."""
    for path, kind in inputs.files:
        yield from iter_file(path, kind, inputs.source(path), inputs.columns)


def iter_file(path: Path, kind: str, source: str, columns: TableColumns = TableColumns(), start: int = 0) -> Iterator[dict]:
    """The paragraphs of one input file (as ``iter_paragraphs``), from the ``start``-th (0-based) on.

    The paragraphs before ``start`` are passed over without being built: a
    table's rows are split but not decoded, a Parquet file's earlier row
    groups are not read. ``start`` assumes a file already checked by a full
    pass (``count_paragraphs``).
    """
    if kind == "document":
        try:
            raw = read_document(path)
        except UserError as exc:
            raise UserError(str(exc).replace(str(path), source, 1)) from None
        records = segment_text(raw, document_id(path) if source != "<stdin>" else "stdin")
        if not records:
            raise UserError(f"{source}: no paragraphs left after removing page boilerplate")
        for record in itertools.islice(records, start, None):
            yield {"id": record["id"], "doc_id": record["doc_id"], "position": record["position"],
                   "kind": record["kind"], "text": record["text"], "hash": record["hash"], "source": source}
    else:
        yield from _table_rows(path, kind, source, columns, start)


def _table_rows(path: Path, kind: str, source: str, columns: TableColumns, start: int = 0) -> Iterator[dict]:
    stem = "stdin" if source == "<stdin>" else document_id(path)
    seen = start
    with contextlib.ExitStack() as stack:
        if kind == "parquet":
            rows = _parquet_rows(path, source, columns, start)
        else:
            # Undecodable bytes become lone surrogates, so the reader can name the line that holds them.
            handle = stack.enter_context(open(path, encoding="utf-8-sig", errors="surrogateescape", newline=""))
            if kind == "jsonl":
                rows = _jsonl_rows(handle, source, start)
            else:
                rows = _csv_rows(handle, source, columns, "\t" if kind == "tsv" else ",", start)
        for lineno, row in rows:
            where = f"{source}:{lineno}"
            raw = row.get(columns.text)
            if raw is None:
                raise UserError(f"{where}: no {columns.text!r} field; name the text field with --text-column")
            if not isinstance(raw, str):
                raise UserError(f"{where}: {columns.text!r} is not a string")
            if "\x00" in raw:
                raise UserError(f"{where}: the text in column {columns.text!r} contains a NUL character; remove it")
            text = normalize_whitespace(raw)
            if not text:
                raise UserError(f"{where}: the text is empty; fill it in or remove the row")
            seen += 1
            yield {
                "id": str(row.get(columns.id) or f"{stem}:{lineno}"),
                "doc_id": str(row.get(columns.doc) or stem),
                "position": seen,
                "kind": "body",
                "text": text,
                "hash": text_hash(text),
                "source": source,
            }
    if not seen:
        raise UserError(f"{source}: the table has no rows")


def _jsonl_rows(handle, source: str, start: int) -> Iterator[tuple[int, dict]]:
    """``(line_number, record)`` per non-blank line, after passing over ``start`` of them undecoded."""
    passed = lines = 0
    if start:
        for line in handle:
            lines += 1
            if line.strip():
                passed += 1
                if passed == start:
                    break
    for lineno, record in jsonl_records(handle, source):
        yield lines + lineno, record


def _parquet_rows(path: Path, source: str, columns: TableColumns, start: int) -> Iterator[tuple[int, dict]]:
    """``(row_number, record)`` per row (1-based), reading only the text, id and document columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable_parquet(source, exc) from None
    with parquet:
        schema = parquet.schema_arrow
        if columns.text not in schema.names:
            raise UserError(f"{source}: no column {columns.text!r} (columns: {', '.join(schema.names) or 'none'}); "
                            "name the text column with --text-column")
        text_type = schema.field(columns.text).type
        if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)
                or pa.types.is_string_view(text_type)):
            raise UserError(f"{source}: column {columns.text!r} holds {text_type}, not text; "
                            "name the text column with --text-column")
        wanted = [c for c in dict.fromkeys((columns.text, columns.id, columns.doc)) if c in schema.names]
        groups, number = [], 0
        for g in range(parquet.metadata.num_row_groups):
            rows = parquet.metadata.row_group(g).num_rows
            if groups or number + rows > start:
                groups.append(g)
            else:
                number += rows
        if not groups:
            return
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, row_groups=groups, columns=wanted):
                for record in batch.to_pylist():
                    number += 1
                    if number <= start:
                        continue
                    if record[columns.text] is None:
                        record[columns.text] = ""  # a null text is an empty one
                    yield number, record
        except (pa.ArrowException, OSError) as exc:
            raise unreadable_parquet(source, exc) from None


def _csv_rows(handle, source: str, columns: TableColumns, delimiter: str, start: int = 0) -> Iterator[tuple[int, dict]]:
    table = CsvTable(handle, source, delimiter)
    if columns.text not in table.header:
        shown = ", ".join(table.header) if table.header else "none"
        raise UserError(f"{source}: no column {columns.text!r} (columns: {shown}); name the text column with --text-column")
    for line, row in table.rows(skip=start):
        yield line, dict(zip(table.header, row))


def count_paragraphs(inputs: Inputs) -> int:
    """Read everything once, refusing bad input before anything is written; return the paragraph count."""
    return sum(count_per_file(inputs))


def count_per_file(inputs: Inputs) -> list[int]:
    """``count_paragraphs`` file by file, in the order of ``inputs.files``."""
    counts = [sum(1 for _ in iter_file(path, kind, inputs.source(path), inputs.columns)) for path, kind in inputs.files]
    if sum(counts) == 0:
        raise UserError(f"{', '.join(inputs.names)}: no paragraphs to label")
    return counts
