"""Small file helpers: JSON Lines and CSV reading with file:line errors, and all-or-nothing writes."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from experiments.errors import UserError


def read_jsonl(path: Path, torn_tail_ok: bool = False) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each non-blank line of ``path``.

    With ``torn_tail_ok`` a last line that has no newline and is not valid
    JSON or not valid UTF-8 (a write cut off by a crash, perhaps inside a
    multi-byte character) is skipped instead of refused.
    """
    try:
        # Undecodable bytes become lone surrogates, so the line that holds them can be named (or skipped).
        handle = open(path, encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    with handle:
        yield from jsonl_records(handle, str(path), torn_tail_ok)


_UNDECODED = re.compile("[\udc80-\udcff]")


def jsonl_records(handle, name: str, torn_tail_ok: bool = False) -> Iterator[tuple[int, dict]]:
    """``(line_number, record)`` for each non-blank line of an open text file; errors name ``name:line``."""
    path = name
    try:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            torn = torn_tail_ok and not line.endswith("\n")
            if _UNDECODED.search(line):
                if torn:
                    return
                raise UserError(f"{path}:{lineno}: not UTF-8 text; convert it to UTF-8, e.g. with iconv")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                if torn:
                    return
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove that line") from None
            if not isinstance(record, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object per line")
            yield lineno, record
    except UnicodeDecodeError:
        # A handle opened without surrogateescape: the decoder reads ahead in blocks, so the line is not known.
        raise UserError(f"{path}: not UTF-8 text; convert it to UTF-8, e.g. with iconv") from None


class CsvTable:
    """A CSV or TSV text stream read row by row: ``header``, then ``(line, fields)`` from ``rows()``.

    ``line`` is the physical line a row starts on, counting blank lines and
    line breaks inside quoted fields, so ``name:line`` finds it in an
    editor. Blank lines are not rows. A row with more or fewer fields than
    the header, a quoting error and (in a handle opened with
    ``errors="surrogateescape"``) bytes that are not UTF-8 are refused with
    ``name:line`` and what to do.

    >>> import io
    >>> table = CsvTable(io.StringIO('id,text\\n\\n1,"Two\\nlines"\\n'), "t.csv")
    >>> table.header, list(table.rows())
    (['id', 'text'], [(3, ['1', 'Two\\nlines'])])
    """

    def __init__(self, handle, name: str, delimiter: str = ","):
        self.name, self.delimiter = name, delimiter
        self._reader = csv.reader(handle, delimiter=delimiter)
        self._last = 0  # the last physical line read
        self.header: list[str] = []
        with self._errors():
            for row in self._reader:
                if row:
                    self.header = row
                    break
                self._last = self._reader.line_num
        self.header_line = self._last + 1
        self._last = self._reader.line_num
        self._check_text(self.header_line, self.header)

    def rows(self, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
        """``(line, fields)`` per row, after passing over the first ``skip`` rows unchecked (to resume)."""
        width = len(self.header)
        with self._errors():
            for row in self._reader:
                start, self._last = self._last + 1, self._reader.line_num
                if not row:
                    continue
                if skip:
                    skip -= 1
                    continue
                if len(row) != width:
                    n = len(row)
                    fix = f"quote fields that contain {self.delimiter!r}" if n > width else "fill in the missing ones"
                    raise UserError(f"{self.name}:{start}: {n} field{'s' * (n != 1)}, but the header has {width}; {fix}")
                self._check_text(start, row)
                yield start, row

    def _check_text(self, line: int, row: list[str]) -> None:
        if any(_UNDECODED.search(field) for field in row):
            raise UserError(f"{self.name}:{line}: not UTF-8 text; convert it to UTF-8, e.g. with iconv")

    @contextmanager
    def _errors(self):
        try:
            yield
        except csv.Error as exc:
            raise UserError(f"{self.name}:{self._last + 1}: cannot read the row ({exc}); check its quoting") from None


def unreadable_parquet(name: str, exc: Exception, fix: str = "") -> UserError:
    """The error for a Parquet file Arrow cannot open or decode: ``name``, Arrow's first line, and ``fix`` if given."""
    return UserError(f"{name}: not a readable Parquet file ({str(exc).splitlines()[0]}){'; ' + fix if fix else ''}")


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; these are ordinary project files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl_atomic(path: Path, records: Iterable[dict]) -> None:
    write_text_atomic(path, "".join(dumps(r) + "\n" for r in records))


def append_jsonl(path: Path, *records: dict) -> None:
    """Append records and flush them to disk before returning (annotation files are append-only).

    The records go out in one ``write`` under an exclusive lock, so two
    processes appending to the same file never interleave their lines. If
    the file ends without a newline, its last line is either a whole record
    (a hand edit; it gets its newline) or a write cut off by a crash (not
    JSON, or not UTF-8 when cut inside a character), which was never
    confirmed to anyone and is dropped, so the file stays readable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(dumps(r) + "\n" for r in records).encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            start = _last_line_start(fd, size)
            try:
                json.loads(os.pread(fd, size - start, start).decode("utf-8"))  # strict, as read_jsonl reads it
                payload = b"\n" + payload
            except ValueError:  # UnicodeDecodeError included
                os.ftruncate(fd, start)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_line_start(fd: int, size: int, block: int = 65536) -> int:
    """Offset just after the last newline of an open file (0 when it has none)."""
    end = size
    while end > 0:
        start = max(0, end - block)
        found = os.pread(fd, end - start, start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


@contextmanager
def locked(path: Path):
    """Hold an exclusive lock on ``path`` across processes (through ``.<name>.lock`` beside it).

    A separate lock file is used because an atomic rewrite replaces the
    file itself, and a lock on the old file would protect nothing.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.parent / f".{path.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_yaml(path: Path, what: str = "file", missing_hint: str = "check the path") -> object:
    """Parse a YAML file; a missing file or a syntax error is a one-line ``UserError`` with the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found; {missing_hint}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save it as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}{where}: not valid YAML ({problem}); fix the syntax") from None


def read_json_object(path: Path, fix: str) -> dict:
    """Parse a JSON file that must hold one object (a run's ``metrics.json``, a model card).

    A missing, unreadable, non-UTF-8, invalid or non-object file is a
    one-line ``UserError`` that names the file (and the line, where there is
    one) and ends with ``fix``, what to do about it.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found; {fix}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror}); {fix}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text; the file is damaged; {fix}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the file is damaged or cut off; {fix}") from None
    if not isinstance(value, dict):
        kind = {list: "a list", str: "a string", type(None): "null", bool: "true or false"}.get(type(value), "a number")
        raise UserError(f"{path}: expected a JSON object, found {kind}; the file is damaged; {fix}")
    return value


def rerun_hint(run_dir: Path) -> str:
    """What to do about a damaged file of a run directory: run its saved config again."""
    config = Path(run_dir) / "config.yaml"
    if config.is_file():
        return f"re-run the config to make the run again: python -m experiments run {config}"
    return "re-run the config that made this run: python -m experiments run CONFIG"
