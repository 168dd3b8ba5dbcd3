"""New text to label: documents, folders, tables and standard input become paragraph records."""

from __future__ import annotations

import io
import json
import tempfile
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments.corpus import segment_text, text_hash
from experiments.errors import UserError
from experiments.inputs import (Inputs, TableColumns, count_paragraphs, count_per_file, iter_file, iter_paragraphs,
                               open_inputs)

DOCUMENT = (
    "Strikes Near Isfahan\n"
    "Exit mobile version\n"
    "\n"
    "Officials said on Monday that talks would resume.\n"
    "\n"
    "Critics warned that sanctions\n"
    "hurt ordinary families.\n"
)
DOCUMENT_PARAGRAPHS = [
    ("headline", "Strikes Near Isfahan"),
    ("body", "Officials said on Monday that talks would resume."),
    ("body", "Critics warned that sanctions hurt ordinary families."),
]


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def records(names, **kwargs) -> list[dict]:
    with open_inputs([str(n) for n in names], **kwargs) as inputs:
        return list(iter_paragraphs(inputs))


def error_of(names, **kwargs) -> str:
    """The message of the UserError that reading ``names`` in full raises."""
    with pytest.raises(UserError) as excinfo:
        with open_inputs([str(n) for n in names], **kwargs) as inputs:
            count_paragraphs(inputs)
    return str(excinfo.value)


def fake_stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))


# --- documents and folders ---------------------------------------------------------------------------------------


def test_a_document_is_segmented_by_the_corpus_rules_with_its_id_from_the_file_name(tmp_path):
    path = write(tmp_path / "Op Ed 12.txt", DOCUMENT)
    got = records([path])
    assert [(r["id"], r["doc_id"], r["kind"], r["text"]) for r in got] == [
        (f"op_ed_12-{i:03d}", "op_ed_12", kind, text) for i, (kind, text) in enumerate(DOCUMENT_PARAGRAPHS, start=1)
    ]
    assert all(r["hash"] == text_hash(r["text"]) and r["source"] == str(path) for r in got)
    assert all(list(r) == ["id", "doc_id", "position", "kind", "text", "hash", "source"] for r in got)
    corpus = segment_text(DOCUMENT, "op_ed_12")
    assert [(r["id"], r["position"], r["kind"], r["text"], r["hash"]) for r in got] == [
        (r["id"], r["position"], r["kind"], r["text"], r["hash"]) for r in corpus
    ]
    assert [r["position"] for r in got] == [1, 2, 3]


def test_a_markdown_document_with_a_bom_is_read_like_a_text_document(tmp_path):
    path = write(tmp_path / "notes.MD", "\ufeff" + DOCUMENT)
    assert [(r["id"], r["kind"], r["text"]) for r in records([path])] == [
        (f"notes-{i:03d}", kind, text) for i, (kind, text) in enumerate(DOCUMENT_PARAGRAPHS, start=1)
    ]


def test_a_folder_yields_its_documents_and_tables_sorted_by_path_recursively(tmp_path):
    folder = tmp_path / "in"
    write(folder / "b.txt", "Bee Headline\n\nThe bee story goes on here.\n")
    write(folder / "a.csv", "text\nFrom the CSV table.\n")
    write(folder / "sub" / "c.jsonl", json.dumps({"text": "From the nested JSONL table."}) + "\n")
    write(folder / "sub" / "d.tsv", "id\ttext\nt1\tFrom the nested TSV table.\n")
    write(folder / "z.md", "Zed words in the markdown file.\n")
    write(folder / ".hidden.txt", "A hidden document.\n")
    write(folder / "sub" / ".draft.jsonl", json.dumps({"text": "A hidden table."}) + "\n")
    write(folder / "notes.pdf", b"%PDF-1.4 binary")
    write(folder / "readme", "no suffix\n")
    with open_inputs([str(folder)]) as inputs:
        assert inputs.files == [
            (folder / "a.csv", "csv"), (folder / "b.txt", "document"), (folder / "sub" / "c.jsonl", "jsonl"),
            (folder / "sub" / "d.tsv", "tsv"), (folder / "z.md", "document"),
        ]
        got = list(iter_paragraphs(inputs))
    assert [(r["id"], r["doc_id"], r["text"], r["source"]) for r in got] == [
        ("a:2", "a", "From the CSV table.", str(folder / "a.csv")),
        ("b-001", "b", "Bee Headline", str(folder / "b.txt")),
        ("b-002", "b", "The bee story goes on here.", str(folder / "b.txt")),
        ("c:1", "c", "From the nested JSONL table.", str(folder / "sub" / "c.jsonl")),
        ("t1", "d", "From the nested TSV table.", str(folder / "sub" / "d.tsv")),
        ("z-001", "z", "Zed words in the markdown file.", str(folder / "z.md")),
    ]


def test_a_folder_ignores_files_inside_hidden_folders(tmp_path):
    folder = tmp_path / "in"
    write(folder / "a.txt", "The only visible document here.\n")
    write(folder / ".ipynb_checkpoints" / "a-checkpoint.txt", "An editor's stale copy of the document.\n")
    with open_inputs([str(folder)]) as inputs:
        assert inputs.files == [(folder / "a.txt", "document")]


def test_several_inputs_are_read_in_the_order_given(tmp_path):
    first = write(tmp_path / "z.jsonl", json.dumps({"text": "Zed first."}) + "\n")
    second = write(tmp_path / "a.txt", "Aye second.\n")
    assert [r["id"] for r in records([first, second])] == ["z:1", "a-001"]


def test_a_folder_with_nothing_readable_is_refused(tmp_path):
    folder = tmp_path / "empty"
    write(folder / "notes.pdf", b"%PDF")
    write(folder / ".hidden.txt", "hidden\n")
    with pytest.raises(UserError) as excinfo:
        open_inputs([str(folder)])
    assert str(excinfo.value) == f"{folder}: no .txt, .md, .jsonl, .csv, .tsv or .parquet files in this folder"


# --- tables ------------------------------------------------------------------------------------------------------


def test_jsonl_rows_are_one_paragraph_each_with_normalised_text_and_default_ids(tmp_path):
    path = write(tmp_path / "My Table.jsonl", "\n".join([
        json.dumps({"text": "  Sanctions\u00a0 hit\tbread\nprices. "}),
        "",
        json.dumps({"id": "p-7", "doc_id": "article-3", "text": "Talks resume in Oman.", "extra": [1, 2]}),
        "   ",
        json.dumps({"id": "", "doc_id": "", "text": "Empty ids fall back."}),
    ]) + "\n")
    got = records([path])
    assert [(r["id"], r["doc_id"], r["position"], r["kind"], r["text"]) for r in got] == [
        ("my_table:1", "my_table", 1, "body", "Sanctions hit bread prices."),
        ("p-7", "article-3", 2, "body", "Talks resume in Oman."),
        ("my_table:5", "my_table", 3, "body", "Empty ids fall back."),
    ]
    assert all(list(r) == ["id", "doc_id", "position", "kind", "text", "hash", "source"] for r in got)
    assert all(r["hash"] == text_hash(r["text"]) and r["source"] == str(path) for r in got)


def test_csv_rows_are_one_paragraph_each_with_normalised_text_and_default_ids(tmp_path):
    path = write(tmp_path / "rows.csv", (
        "id,text,doc_id\r\n"
        ",\"  A quoted, comma  text \",\r\n"
        "r2,Second   row.,doc-b\r\n"
        "\r\n"
        "r3,\"Spans\ntwo lines.\",doc-c\r\n"
    ))
    got = records([path])
    assert [(r["id"], r["doc_id"], r["position"], r["text"]) for r in got] == [
        ("rows:2", "rows", 1, "A quoted, comma text"),
        ("r2", "doc-b", 2, "Second row."),
        ("r3", "doc-c", 3, "Spans two lines."),
    ]


def test_tsv_rows_are_split_on_tabs(tmp_path):
    path = write(tmp_path / "rows.tsv", "text\tid\nA tab, separated row.\tt-1\nAnother one.\t\n")
    assert [(r["id"], r["doc_id"], r["text"]) for r in records([path])] == [
        ("t-1", "rows", "A tab, separated row."),
        ("rows:3", "rows", "Another one."),
    ]


def test_a_byte_order_mark_does_not_end_up_in_the_first_column_or_row(tmp_path):
    csv_path = write(tmp_path / "bom.csv", "\ufefftext,id\nWith a BOM.,b1\n".encode("utf-8"))
    jsonl_path = write(tmp_path / "bom.jsonl", ("\ufeff" + json.dumps({"text": "JSON with a BOM."}) + "\n").encode("utf-8"))
    assert [(r["id"], r["text"]) for r in records([csv_path, jsonl_path])] == [("b1", "With a BOM."), ("bom:1", "JSON with a BOM.")]


def test_other_column_names_are_taken_from_table_columns(tmp_path):
    path = write(tmp_path / "custom.csv", "pid,body,article,text\nx1,The body text.,art-9,not this\n")
    got = records([path], columns=TableColumns(text="body", id="pid", doc="article"))
    assert [(r["id"], r["doc_id"], r["text"]) for r in got] == [("x1", "art-9", "The body text.")]


# --- errors ------------------------------------------------------------------------------------------------------


def test_a_document_that_is_not_utf8_is_refused(tmp_path):
    path = write(tmp_path / "latin1.txt", "Caf\u00e9 au lait.\n".encode("latin-1"))
    assert error_of([path]) == f"{path}: not UTF-8 text (byte 0xe9 at offset 3); convert it to UTF-8, e.g. with iconv"


def test_a_table_that_is_not_utf8_is_refused_with_the_line(tmp_path):
    path = write(tmp_path / "latin1.csv", "text\nCaf\u00e9 au lait.\n".encode("latin-1"))
    assert error_of([path]) == f"{path}:2: not UTF-8 text; convert it to UTF-8, e.g. with iconv"
    jsonl = write(tmp_path / "latin1.jsonl", '{"text": "Caf\u00e9"}\n'.encode("latin-1"))
    assert error_of([jsonl]) == f"{jsonl}:1: not UTF-8 text; convert it to UTF-8, e.g. with iconv"


def test_an_empty_document_is_refused(tmp_path):
    path = write(tmp_path / "empty.txt", " \n\n\t\n")
    assert error_of([path]) == f"{path}: the document is empty; add its text or remove the file"


def test_a_document_of_only_boilerplate_is_refused(tmp_path):
    path = write(tmp_path / "furniture.txt", "Exit mobile version\n\nLeave a Reply\n")
    assert error_of([path]) == f"{path}: no paragraphs left after removing page boilerplate"


def test_a_csv_without_the_text_column_names_its_columns_and_the_option(tmp_path):
    path = write(tmp_path / "wrong.csv", "id,body\n1,Some text.\n")
    assert error_of([path]) == f"{path}: no column 'text' (columns: id, body); name the text column with --text-column"
    empty = write(tmp_path / "nothing.csv", "")
    assert error_of([empty]) == f"{empty}: no column 'text' (columns: none); name the text column with --text-column"


def test_a_jsonl_row_without_the_text_field_is_refused_with_its_line(tmp_path):
    path = write(tmp_path / "rows.jsonl", json.dumps({"text": "Fine."}) + "\n" + json.dumps({"body": "Wrong key."}) + "\n")
    assert error_of([path]) == f"{path}:2: no 'text' field; name the text field with --text-column"


def test_bad_jsonl_lines_are_refused_with_their_line(tmp_path):
    path = write(tmp_path / "bad.jsonl", json.dumps({"text": "Fine."}) + "\nnot json\n")
    assert error_of([path]) == f"{path}:2: not valid JSON (Expecting value); fix or remove that line"
    path = write(tmp_path / "list.jsonl", '["a list"]\n')
    assert error_of([path]) == f"{path}:1: expected a JSON object per line"
    path = write(tmp_path / "number.jsonl", '{"text": 5}\n')
    assert error_of([path]) == f"{path}:1: 'text' is not a string"


def test_an_empty_text_is_refused_with_file_and_line(tmp_path):
    path = write(tmp_path / "blank.csv", "id,text\na,Fine.\nb, \t \n")
    assert error_of([path]) == f"{path}:3: the text is empty; fill it in or remove the row"
    path = write(tmp_path / "blank.jsonl", json.dumps({"text": "Fine."}) + "\n" + json.dumps({"text": "\u00a0 "}) + "\n")
    assert error_of([path]) == f"{path}:2: the text is empty; fill it in or remove the row"


def test_a_csv_row_with_more_fields_than_the_header_is_refused(tmp_path):
    path = write(tmp_path / "ragged.csv", "id,text\na,Fine.\nb,Unquoted, comma.\n")
    assert error_of([path]) == f"{path}:3: 3 fields, but the header has 2; quote fields that contain ','"
    path = write(tmp_path / "ragged.tsv", "id\ttext\nb\tOne\tTwo\n")
    assert error_of([path]) == f"{path}:2: 3 fields, but the header has 2; quote fields that contain '\\t'"


def test_a_csv_row_with_fewer_fields_than_the_header_is_not_blamed_on_the_text_column(tmp_path):
    path = write(tmp_path / "short.csv", "id,text\na,Fine.\nb\n")
    assert error_of([path]) == f"{path}:3: 1 field, but the header has 2; fill in the missing ones"


def test_a_file_of_unknown_type_is_refused(tmp_path):
    path = write(tmp_path / "scan.pdf", b"%PDF")
    with pytest.raises(UserError) as excinfo:
        open_inputs([str(path)])
    assert str(excinfo.value) == (f"{path}: cannot read .pdf; give .txt/.md documents, .jsonl/.csv/.tsv/.parquet "
                                  "tables, or a folder of them")
    bare = write(tmp_path / "README", "text\n")
    with pytest.raises(UserError) as excinfo:
        open_inputs([str(bare)])
    assert str(excinfo.value) == (f"{bare}: cannot read files without a suffix; give .txt/.md documents, "
                                  ".jsonl/.csv/.tsv/.parquet tables, or a folder of them")


def test_a_missing_path_is_refused(tmp_path):
    with pytest.raises(UserError) as excinfo:
        open_inputs([str(tmp_path / "gone.txt")])
    assert str(excinfo.value) == f"{tmp_path / 'gone.txt'}: no such file or folder"


def test_no_inputs_at_all_is_refused():
    with pytest.raises(UserError) as excinfo:
        open_inputs([])
    assert str(excinfo.value) == ("no input given; name .txt/.md documents, .jsonl/.csv/.parquet tables, folders, "
                                  "or - for standard input")


def test_tables_without_rows_are_refused(tmp_path):
    for path in [write(tmp_path / "empty.jsonl", ""), write(tmp_path / "blank.jsonl", "\n  \n\n"),
                 write(tmp_path / "header.csv", "id,text\n"), write(tmp_path / "header.tsv", "text\n\n")]:
        assert error_of([path]) == f"{path}: the table has no rows"


def test_count_paragraphs_refuses_inputs_with_zero_paragraphs():
    with pytest.raises(UserError) as excinfo:
        count_paragraphs(Inputs(files=[], names=["a.jsonl", "b"]))
    assert str(excinfo.value) == "a.jsonl, b: no paragraphs to label"


def test_count_paragraphs_counts_every_paragraph_and_checks_every_file(tmp_path):
    good = write(tmp_path / "doc.txt", DOCUMENT)
    table = write(tmp_path / "rows.jsonl", "".join(json.dumps({"text": f"Row {i}."}) + "\n" for i in range(4)))
    with open_inputs([str(good), str(table)]) as inputs:
        assert count_paragraphs(inputs) == 3 + 4
    bad = write(tmp_path / "late.csv", b"text\n" + b"Fine.\n" * 50 + b"Caf\xe9\n")  # the bad byte is far down
    assert error_of([good, table, bad]) == f"{bad}:52: not UTF-8 text; convert it to UTF-8, e.g. with iconv"


# --- standard input ----------------------------------------------------------------------------------------------


def test_stdin_as_text_is_segmented_as_the_document_stdin_and_its_spool_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake_stdin(monkeypatch, DOCUMENT.encode("utf-8"))
    inputs = open_inputs(["-"])
    spool = inputs._spool
    assert spool is not None and spool.parent == tmp_path and spool.is_dir()
    got = list(iter_paragraphs(inputs))
    assert [(r["id"], r["doc_id"], r["kind"], r["text"], r["source"]) for r in got] == [
        (f"stdin-{i:03d}", "stdin", kind, text, "<stdin>") for i, (kind, text) in enumerate(DOCUMENT_PARAGRAPHS, start=1)
    ]
    assert list(iter_paragraphs(inputs)) == got  # read twice: once to count, once to label
    assert inputs.signature() == [{"file": "<stdin>", "kind": "document", "bytes": len(DOCUMENT.encode()), "mtime": None}]
    with inputs:
        pass
    assert not spool.exists()
    assert list(tmp_path.iterdir()) == []


def test_stdin_as_jsonl_reads_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake_stdin(monkeypatch, (json.dumps({"text": "First row."}) + "\n" + json.dumps({"id": "x", "text": "Second."}) + "\n").encode())
    with open_inputs(["-"], stdin_format="jsonl") as inputs:
        assert [(r["id"], r["doc_id"], r["text"], r["source"]) for r in iter_paragraphs(inputs)] == [
            ("stdin:1", "stdin", "First row.", "<stdin>"), ("x", "stdin", "Second.", "<stdin>"),
        ]
    assert list(tmp_path.iterdir()) == []


def test_stdin_as_csv_reads_rows_next_to_files(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fake_stdin(monkeypatch, b"text,doc_id\nPiped in.,piped\n")
    doc = write(tmp_path / "doc.txt", "A file after the pipe.\n")
    with open_inputs(["-", str(doc)], stdin_format="csv") as inputs:
        assert [(r["id"], r["doc_id"], r["source"]) for r in iter_paragraphs(inputs)] == [
            ("stdin:2", "piped", "<stdin>"), ("doc-001", "doc", str(doc)),
        ]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_an_unknown_stdin_format_is_refused(monkeypatch):
    fake_stdin(monkeypatch, b"")
    with pytest.raises(UserError) as excinfo:
        open_inputs(["-"], stdin_format="xml")
    assert str(excinfo.value) == "--stdin-format 'xml': use one of text, jsonl, csv, parquet"


def test_bad_stdin_rows_are_reported_as_stdin(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake_stdin(monkeypatch, b'{"text": "ok"}\n{"text": ""}\n')
    assert error_of(["-"], stdin_format="jsonl") == "<stdin>:2: the text is empty; fill it in or remove the row"
    assert list(tmp_path.iterdir()) == []


def test_an_empty_stdin_document_is_reported_as_stdin(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fake_stdin(monkeypatch, b"  \n")
    assert error_of(["-"]) == "<stdin>: the document is empty; add its text or remove the file"


def test_a_refused_input_after_stdin_leaves_no_spooled_copy(tmp_path, monkeypatch):
    spools = tmp_path / "tmp"
    spools.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    fake_stdin(monkeypatch, DOCUMENT.encode())
    with pytest.raises(UserError):
        open_inputs(["-", str(tmp_path / "missing.txt")])
    assert list(spools.iterdir()) == []


# --- repeatability -----------------------------------------------------------------------------------------------


def test_iterating_twice_gives_identical_records(tmp_path):
    folder = tmp_path / "in"
    write(folder / "doc.txt", DOCUMENT)
    write(folder / "rows.csv", "text\nOne.\nTwo.\n")
    write(folder / "rows.jsonl", json.dumps({"text": "Three."}) + "\n")
    with open_inputs([str(folder)]) as inputs:
        first = list(iter_paragraphs(inputs))
        second = list(iter_paragraphs(inputs))
    assert len(first) == 3 + 2 + 1
    assert first == second


def test_the_signature_names_each_file_with_its_size_and_changes_when_a_file_changes(tmp_path):
    path = write(tmp_path / "rows.jsonl", json.dumps({"text": "One."}) + "\n")
    with open_inputs([str(path)]) as inputs:
        before = inputs.signature()
        assert before == [{"file": str(path.resolve()), "kind": "jsonl", "bytes": path.stat().st_size,
                           "mtime": path.stat().st_mtime_ns}]
        path.write_text(json.dumps({"text": "One, changed."}) + "\n", encoding="utf-8")
        assert inputs.signature() != before


# --- Parquet tables ----------------------------------------------------------------------------------------------


def write_parquet(path: Path, columns: dict, row_group_size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return path


def test_parquet_rows_are_one_paragraph_each_with_normalised_text_and_default_ids(tmp_path):
    path = write_parquet(tmp_path / "My Table.parquet", {
        "text": ["  Sanctions\u00a0 hit\tbread\nprices. ", "Talks resume.", "Strikes hit."],
        "id": ["x1", None, "x3"], "doc_id": [None, "article-7", "article-7"], "extra": [1, 2, 3]})
    got = records([path])
    assert [(r["id"], r["doc_id"], r["position"], r["kind"], r["text"]) for r in got] == [
        ("x1", "my_table", 1, "body", "Sanctions hit bread prices."),
        ("my_table:2", "article-7", 2, "body", "Talks resume."),
        ("x3", "article-7", 3, "body", "Strikes hit."),
    ]
    assert got[0]["hash"] == text_hash("Sanctions hit bread prices.") and got[0]["source"] == str(path)


def test_parquet_ids_that_are_numbers_become_strings_and_other_columns_are_named(tmp_path):
    path = write_parquet(tmp_path / "t.parquet", {"body": ["One.", "Two."], "pid": [7, 8], "article": [1, 1]})
    got = records([path], columns=TableColumns(text="body", id="pid", doc="article"))
    assert [(r["id"], r["doc_id"], r["text"]) for r in got] == [("7", "1", "One."), ("8", "1", "Two.")]


def test_a_folder_reads_its_parquet_files_with_the_others(tmp_path):
    folder = tmp_path / "in"
    write(folder / "a.txt", "Aye.\n")
    write_parquet(folder / "b.parquet", {"text": ["Bee."]})
    write(folder / "c.jsonl", json.dumps({"text": "Sea."}) + "\n")
    assert [r["text"] for r in records([folder])] == ["Aye.", "Bee.", "Sea."]


def test_bad_parquet_is_refused_with_one_line_naming_the_file_and_row(tmp_path):
    no_text = write_parquet(tmp_path / "no_text.parquet", {"id": ["1"], "body": ["Some text."]})
    assert error_of([no_text]) == (f"{no_text}: no column 'text' (columns: id, body); "
                                   "name the text column with --text-column")
    numbers = write_parquet(tmp_path / "numbers.parquet", {"text": [1, 2]})
    assert error_of([numbers]) == f"{numbers}: column 'text' holds int64, not text; name the text column with --text-column"
    empty = write_parquet(tmp_path / "empty_text.parquet", {"text": ["Fine.", "  ", None]})
    assert error_of([empty]) == f"{empty}:2: the text is empty; fill it in or remove the row"
    nulls = write_parquet(tmp_path / "null.parquet", {"text": ["Fine.", None]})
    assert error_of([nulls]) == f"{nulls}:2: the text is empty; fill it in or remove the row"
    no_rows = write_parquet(tmp_path / "no_rows.parquet", {"text": pa.array([], pa.string())})
    assert error_of([no_rows]) == f"{no_rows}: the table has no rows"
    broken = write(tmp_path / "broken.parquet", b"PAR1 this is not parquet")
    message = error_of([broken])
    assert message.startswith(f"{broken}: not a readable Parquet file (") and "\n" not in message


def test_stdin_as_parquet_reads_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    table = write_parquet(tmp_path / "in" / "t.parquet", {"text": ["One.", "Two."]})
    fake_stdin(monkeypatch, table.read_bytes())
    assert [(r["id"], r["doc_id"], r["source"]) for r in records(["-"], stdin_format="parquet")] == [
        ("stdin:1", "stdin", "<stdin>"), ("stdin:2", "stdin", "<stdin>")]


# --- reading one file from its n-th paragraph (the Ray engine's workers) -----------------------------------------


def test_iter_file_from_any_start_gives_the_tail_of_a_full_read(tmp_path):
    rows = [f"Row number {i}." for i in range(23)]
    files = [
        write(tmp_path / "doc.txt", DOCUMENT),
        # blank lines and CRLF line ends, which a skip must count as the full read does
        write(tmp_path / "rows.jsonl", "\r\n".join(json.dumps({"text": t}) if i % 5 else "\r\n" + json.dumps({"text": t})
                                                   for i, t in enumerate(rows)) + "\r\n"),
        # a quoted field across lines, and blank lines between rows
        write(tmp_path / "rows.csv", "id,text\n" + "".join(
            f'r{i},"{t}\nsecond line"\n' if i % 7 == 0 else f"r{i},{t}\n" + ("\n" if i % 4 == 0 else "")
            for i, t in enumerate(rows))),
        write(tmp_path / "rows.tsv", "text\n" + "".join(f"{t}\n" for t in rows)),
        write_parquet(tmp_path / "rows.parquet", {"text": rows}, row_group_size=5),
    ]
    with open_inputs([str(f) for f in files]) as inputs:
        counts = count_per_file(inputs)
        assert counts == [3, 23, 23, 23, 23]
        for (path, kind), count in zip(inputs.files, counts):
            full = list(iter_file(path, kind, str(path), inputs.columns))
            assert len(full) == count
            for start in range(count + 2):
                assert list(iter_file(path, kind, str(path), inputs.columns, start)) == full[start:], (path, start)


def test_count_per_file_checks_everything_like_count_paragraphs(tmp_path):
    good = write(tmp_path / "rows.jsonl", json.dumps({"text": "One."}) + "\n")
    bad = write(tmp_path / "bad.jsonl", json.dumps({"text": ""}) + "\n")
    with open_inputs([str(good), str(bad)]) as inputs:
        with pytest.raises(UserError) as excinfo:
            count_per_file(inputs)
    assert str(excinfo.value) == f"{bad}:1: the text is empty; fill it in or remove the row"


# --- the output is not an input ----------------------------------------------------------------------------------


def test_an_output_that_is_an_input_or_inside_an_input_folder_is_refused(tmp_path):
    folder = tmp_path / "in"
    write(folder / "doc.txt", DOCUMENT)
    table = write(tmp_path / "rows.jsonl", json.dumps({"text": "One."}) + "\n")
    with open_inputs([str(folder), str(table)]) as inputs:
        for out, message in [
            (table, f"--out {table}: is one of the inputs; write the output somewhere else"),
            (folder / "labels.jsonl", f"--out {folder / 'labels.jsonl'}: is inside the input folder {folder}; "
                                      "write the output outside it"),
            (folder / "sub" / "out", f"--out {folder / 'sub' / 'out'}: is inside the input folder {folder}; "
                                     "write the output outside it"),
            (tmp_path, f"--out {tmp_path}: holds the input {folder}; write the output somewhere else"),
        ]:
            with pytest.raises(UserError) as excinfo:
                inputs.check_output(out)
            assert str(excinfo.value) == message
        inputs.check_output(tmp_path / "labels.jsonl")
        inputs.check_output(tmp_path / "shards")
        with pytest.raises(UserError) as excinfo:
            inputs.check_output(table, "--review-queue")
        assert str(excinfo.value).startswith("--review-queue ")
