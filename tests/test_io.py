"""JSON Lines reading and appending: torn tails (cut JSON or a cut character), bad lines named by number."""

from __future__ import annotations

import io
import json

import pytest

from experiments.errors import UserError
from experiments.io import CsvTable, append_jsonl, read_jsonl

NOTE = "یادداشت"  # "note": every letter is two bytes in UTF-8
WHOLE = ('{"id": "a"}\n' + json.dumps({"id": "b", "note": NOTE}, ensure_ascii=False) + "\n").encode("utf-8")
# A kill during a write of a Persian note: the last line stops one byte into its last letter.
TORN = json.dumps({"id": "c", "note": NOTE}, ensure_ascii=False).encode("utf-8")[:-3]


def test_torn_tail_is_cut_inside_a_character():
    with pytest.raises(UnicodeDecodeError):
        TORN.decode("utf-8")


def test_a_tail_cut_inside_a_character_is_skipped_when_torn_tails_are_allowed(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_bytes(WHOLE + TORN)
    assert list(read_jsonl(path, torn_tail_ok=True)) == [(1, {"id": "a"}), (2, {"id": "b", "note": NOTE})]


@pytest.mark.parametrize(
    "raw, torn_tail_ok, line",
    [
        (WHOLE + TORN, False, 3),  # torn tails not allowed here
        (WHOLE + TORN + b"\n", True, 3),  # it has its newline, so it was written whole
        (b'{"id": "a"}\n{"id": "\xff"}\n{"id": "c"}\n', True, 2),
        (b'{"id": "a"}\n' + TORN + b'\n{"id": "c"}', True, 2),
        (b'{"id": "\xe9t\xe9"}\n', True, 1),  # Latin-1
    ],
    ids=["not-allowed", "with-newline", "middle", "cut-then-more", "latin-1"],
)
def test_bytes_that_are_not_utf8_anywhere_else_name_the_file_and_line(tmp_path, raw, torn_tail_ok, line):
    path = tmp_path / "notes.jsonl"
    path.write_bytes(raw)
    with pytest.raises(UserError) as excinfo:
        list(read_jsonl(path, torn_tail_ok=torn_tail_ok))
    assert str(excinfo.value) == f"{path}:{line}: not UTF-8 text; convert it to UTF-8, e.g. with iconv"


def test_the_next_append_drops_a_tail_cut_inside_a_character(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_bytes(WHOLE + TORN)
    append_jsonl(path, {"id": "c", "note": NOTE})
    assert path.read_bytes() == WHOLE + json.dumps({"id": "c", "note": NOTE}, ensure_ascii=False).encode() + b"\n"
    assert [r for _, r in read_jsonl(path)] == [{"id": "a"}, {"id": "b", "note": NOTE}, {"id": "c", "note": NOTE}]


def test_the_next_append_drops_a_tail_that_is_json_but_not_utf8(tmp_path):
    """An encoded surrogate parses as JSON from bytes, but the reader refuses it: it must not be kept."""
    path = tmp_path / "notes.jsonl"
    path.write_bytes(WHOLE + b'{"id": "\xed\xa0\x80"}')
    append_jsonl(path, {"id": "c"})
    assert path.read_bytes() == WHOLE + b'{"id": "c"}\n'
    assert [r["id"] for _, r in read_jsonl(path)] == ["a", "b", "c"]


# --- CSV: the one reader of import and predict ---------------------------------------------------------------------


def csv_table(text: str, delimiter: str = ",") -> CsvTable:
    return CsvTable(io.StringIO(text, newline=""), "t.csv", delimiter)


def test_csv_rows_are_numbered_by_the_physical_line_they_start_on():
    table = csv_table('\nid,text\n\n1,"over\ntwo lines"\n\n2,short\n')
    assert (table.header, table.header_line) == (["id", "text"], 2)
    assert list(table.rows()) == [(4, ["1", "over\ntwo lines"]), (7, ["2", "short"])]


def test_csv_rows_can_pass_over_rows_already_read():
    assert list(csv_table("text\na\n\nb\nc\n").rows(skip=2)) == [(5, ["c"])]


def test_an_empty_csv_has_no_header_and_no_rows():
    table = csv_table("\n\n")
    assert (table.header, list(table.rows())) == ([], [])


@pytest.mark.parametrize("text, delimiter, message", [
    ("id,text\n1,a, b\n", ",", "t.csv:2: 3 fields, but the header has 2; quote fields that contain ','"),
    ("id\ttext\n\n1\n", "\t", "t.csv:3: 1 field, but the header has 2; fill in the missing ones"),
    ("text\n" + "x" * 200_000 + "\n", ",",
     "t.csv:2: cannot read the row (field larger than field limit (131072)); check its quoting"),
    ("text\nCaf\udce9\n", ",", "t.csv:2: not UTF-8 text; convert it to UTF-8, e.g. with iconv"),
], ids=["more", "fewer", "quoting", "not-utf8"])
def test_a_bad_csv_row_is_refused_with_file_and_line(text, delimiter, message):
    with pytest.raises(UserError) as exc:
        list(csv_table(text, delimiter).rows())
    assert str(exc.value) == message
