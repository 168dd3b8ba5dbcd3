"""Importing a labelled table: formats, columns, label mapping, every refusal, and the all-or-nothing write."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments.corpus import text_hash
from experiments.errors import UserError
from experiments.importer import ImportOptions, format_summary, import_table, imported_names, load_imported

COLUMNS = ["id", "doc_id", "text", "hash", "kind", "stance", "frames", "target", "split"]

# SemEval-2016 task 6 layout: one tweet per row, the stance toward one of several targets, a predefined split.
SEMEVAL = (
    "ID\tTarget\tTweet\tStance\tsplit\n"
    "101\tAtheism\tGod is  not needed.\tFAVOR\ttrain\n"
    "102\tAtheism\tPray every day.\tAGAINST\ttrain\n"
    "103\tHillary Clinton\tShe will win.\tFAVOR\tdev\n"
    "104\tHillary Clinton\tNever her.\tAGAINST\ttest\n"
    "105\tHillary Clinton\tDebate tonight.\tNONE\ttest\n"
    "106\tAtheism\tNice weather.\tAGAINST\ttrain\n"
)
SEMEVAL_OPTIONS = ImportOptions(
    text_column="Tweet", stance_column="Stance", target_column="Target", split_column="split", id_column="ID",
    label_map={"FAVOR": "favor", "AGAINST": "against", "NONE": "none"},
)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def rows_of(root: Path, name: str, *keys: str) -> list[tuple]:
    dataset, _ = load_imported(name, root=root)
    return [tuple(row[k] for k in keys) for row in dataset]


def info_of(root: Path, name: str) -> dict:
    return json.loads((root / name / "info.json").read_text(encoding="utf-8"))


def refusal(path: Path, options: ImportOptions, name: str = "bad", root: Path | None = None, **kwargs) -> str:
    """The message of the import's UserError, after checking that the import wrote nothing."""
    root = root or path.parent / "imported"
    before = sorted(root.rglob("*")) if root.exists() else None
    with pytest.raises(UserError) as excinfo:
        import_table(path, name, options, root=root, **kwargs)
    assert (sorted(root.rglob("*")) if root.exists() else None) == before
    return str(excinfo.value)


# --- a SemEval-style stance table ----------------------------------------------------------------------------------


def test_a_stance_table_with_targets_and_a_split_becomes_a_dataset(tmp_path):
    path = write(tmp_path / "semeval.tsv", SEMEVAL)
    root = tmp_path / "imported"
    summary = import_table(path, "semeval", SEMEVAL_OPTIONS, root=root)
    assert (summary.name, summary.path, summary.rows, summary.tasks, summary.replaced) == (
        "semeval", root / "semeval", 6, ["stance"], False)
    assert sorted(p.name for p in (root / "semeval").iterdir()) == ["dataset.parquet", "info.json"]
    dataset, info = load_imported("semeval", root=root)
    assert dataset.column_names == COLUMNS
    assert dataset[0] == {
        "id": "101", "doc_id": "101", "text": "God is not needed.", "hash": text_hash("God is not needed."),
        "kind": "body", "stance": "favor", "frames": [], "target": "Atheism", "split": "train",
    }
    assert [(r["id"], r["stance"], r["target"], r["split"]) for r in dataset] == [
        ("101", "favor", "Atheism", "train"),
        ("102", "against", "Atheism", "train"),
        ("103", "favor", "Hillary Clinton", "dev"),
        ("104", "against", "Hillary Clinton", "test"),
        ("105", "none", "Hillary Clinton", "test"),
        ("106", "against", "Atheism", "train"),
    ]
    assert info["name"] == "semeval"
    assert info["source"] == {"file": str(path), "sha256": hashlib.sha256(SEMEVAL.encode()).hexdigest(), "rows": 6}
    assert info["options"] == json.loads(json.dumps(asdict(SEMEVAL_OPTIONS)))
    assert info["imported"].endswith("+00:00")
    assert info["tasks"] == ["stance"]
    assert info["stance_labels"] == ["against", "favor", "none"]
    assert info["frame_labels"] == []
    assert info["targets"] == ["Atheism", "Hillary Clinton"]
    assert info["splits"] == ["dev", "test", "train"]
    assert info["counts"] == {
        "stance": {"against": 3, "favor": 2, "none": 1},
        "frames": {},
        "target": {"Atheism": 3, "Hillary Clinton": 3},
        "split": {"dev": 1, "test": 2, "train": 3},
        "target_by_stance": {
            "Atheism": {"against": 2, "favor": 1, "none": 0},
            "Hillary Clinton": {"against": 1, "favor": 1, "none": 1},
        },
    }
    assert summary.counts == info["counts"]


def test_the_summary_prints_the_counts_as_aligned_tables(tmp_path):
    summary = import_table(write(tmp_path / "semeval.tsv", SEMEVAL), "semeval", SEMEVAL_OPTIONS, root=tmp_path / "i")
    assert format_summary(summary) == (
        "semeval: 6 rows; tasks: stance\n"
        "\n"
        "stance   rows\n"
        "against     3\n"
        "favor       2\n"
        "none        1\n"
        "\n"
        "target           rows  against  favor  none\n"
        "Atheism             3        2      1     0\n"
        "Hillary Clinton     3        1      1     1\n"
        "\n"
        "split  rows\n"
        "dev       1\n"
        "test      2\n"
        "train     3"
    )


def test_declared_stance_labels_keep_their_order_and_show_labels_without_rows(tmp_path):
    path = write(tmp_path / "semeval.tsv", SEMEVAL)
    options = ImportOptions(**{**asdict(SEMEVAL_OPTIONS), "stance_labels": ("favor", "against", "none", "unsure")})
    import_table(path, "semeval", options, root=tmp_path / "imported")
    info = info_of(tmp_path / "imported", "semeval")
    assert info["stance_labels"] == ["favor", "against", "none", "unsure"]
    assert info["counts"]["stance"] == {"favor": 2, "against": 3, "none": 1, "unsure": 0}
    assert info["counts"]["target_by_stance"]["Atheism"] == {"favor": 1, "against": 2, "none": 0, "unsure": 0}


def test_the_group_column_becomes_doc_id_and_split_values_can_be_renamed(tmp_path):
    path = write(tmp_path / "t.csv", "text,stance,author,part\nA.,pro,u1,training\nB.,con,u1,validation\nC.,pro,u2,test\n")
    options = ImportOptions(stance_column="stance", group_column="author", split_column="part",
                            label_map={"training": "train", "validation": "dev"})
    import_table(path, "grouped", options, root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "grouped", "id", "doc_id", "stance", "split") == [
        ("grouped-1", "u1", "pro", "train"), ("grouped-2", "u1", "con", "dev"), ("grouped-3", "u2", "pro", "test"),
    ]


# --- encodings -----------------------------------------------------------------------------------------------------


LATIN1 = "text,stance\nCafé con leche.,favor\nEl niño llegó.,against\n".encode("latin-1")


def test_a_latin1_table_is_refused_as_utf8_with_a_hint_and_imported_with_the_encoding(tmp_path):
    path = write(tmp_path / "spanish.csv", LATIN1)
    assert refusal(path, ImportOptions(stance_column="stance"), name="spanish") == (
        f"{path}:2: byte 0xe9 is not valid utf-8; give the file's encoding, e.g. --encoding latin-1"
    )
    import_table(path, "spanish", ImportOptions(stance_column="stance", encoding="latin-1"), root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "spanish", "text", "hash", "stance") == [
        ("Café con leche.", text_hash("Café con leche."), "favor"),
        ("El niño llegó.", text_hash("El niño llegó."), "against"),
    ]
    assert info_of(tmp_path / "imported", "spanish")["source"]["sha256"] == hashlib.sha256(LATIN1).hexdigest()


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path):
    path = write(tmp_path / "excel.csv", "\ufefftext,stance\nHello there.,favor\n")
    import_table(path, "excel", ImportOptions(stance_column="stance"), root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "excel", "text", "stance") == [("Hello there.", "favor")]


# --- frames ----------------------------------------------------------------------------------------------------------


def test_jsonl_frame_lists_and_strings_split_on_the_separator(tmp_path):
    path = write(tmp_path / "frames.jsonl", "".join(json.dumps(r) + "\n" for r in [
        {"text": "Jobs will vanish.", "frames": ["Economic", "security"]},
        {"text": "Nothing to see.", "frames": []},
        {"text": "No frame field at all."},
        {"text": "Two as a string.", "frames": "morality; Economic"},
        {"text": "Repeated.", "frames": ["security", "security"]},
    ]))
    import_table(path, "framed", ImportOptions(frames_column="frames", label_map={"Economic": "economic"}),
                 root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "framed", "id", "stance", "frames") == [
        ("framed-1", None, ["economic", "security"]),
        ("framed-2", None, []),
        ("framed-3", None, []),
        ("framed-4", None, ["morality", "economic"]),
        ("framed-5", None, ["security"]),
    ]
    info = info_of(tmp_path / "imported", "framed")
    assert info["tasks"] == ["frames"]
    assert (info["stance_labels"], info["frame_labels"]) == ([], ["economic", "morality", "security"])
    assert info["counts"]["frames"] == {"economic": 2, "morality": 1, "security": 2}
    assert info["counts"]["stance"] == {} and info["counts"]["target_by_stance"] == {}


def test_a_single_label_column_gives_one_primary_frame_per_row(tmp_path):
    path = write(tmp_path / "primary.csv", "text,primary_frame,stance\nA.,Economic,pro\nB.,Security,con\nC.,,con\n")
    import_table(path, "primary", ImportOptions(stance_column="stance", frames_column="primary_frame",
                                                label_map={"Economic": "economic", "Security": "security"}),
                 root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "primary", "frames", "stance") == [
        (["economic"], "pro"), (["security"], "con"), ([], "con"),
    ]
    assert info_of(tmp_path / "imported", "primary")["tasks"] == ["stance", "frames"]


def test_csv_frames_split_on_a_chosen_separator(tmp_path):
    path = write(tmp_path / "multi.csv", 'text,frames\nA.,economic|security\n"B, quoted.",security\n')
    import_table(path, "multi", ImportOptions(frames_column="frames", frames_separator="|"), root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "multi", "text", "frames") == [
        ("A.", ["economic", "security"]), ("B, quoted.", ["security"]),
    ]


def test_indicator_columns_name_the_frames(tmp_path):
    path = write(tmp_path / "ind.csv", "text,Economy,security,moral\nA.,1,0,no\nB.,yes,True,0\nC.,0,false,1.0\n")
    import_table(path, "ind", ImportOptions(frame_columns=("Economy", "security", "moral"),
                                            label_map={"Economy": "economic"}), root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "ind", "frames") == [(["economic"],), (["economic", "security"],), (["moral"],)]
    info = info_of(tmp_path / "imported", "ind")
    assert info["frame_labels"] == ["economic", "moral", "security"]
    assert info["counts"]["frames"] == {"economic": 2, "moral": 1, "security": 1}


def test_indicator_columns_with_no_positive_rows_still_count_as_labels(tmp_path):
    path = write(tmp_path / "ind.csv", "text,a,b\nA.,1,0\n")
    import_table(path, "ind", ImportOptions(frame_columns=("a", "b")), root=tmp_path / "imported")
    assert info_of(tmp_path / "imported", "ind")["counts"]["frames"] == {"a": 1, "b": 0}


# --- Parquet ---------------------------------------------------------------------------------------------------------


def test_a_parquet_table_with_a_list_column_and_integer_labels(tmp_path):
    path = tmp_path / "table.parquet"
    pq.write_table(pa.table({
        "uid": [7, 8, 9],
        "body": ["First  text.", "Second text.", "Third text."],
        "label": [0, 1, 0],
        "tags": [["economic"], [], ["moral", "economic"]],
        "doc": ["d1", "d1", "d2"],
    }), path)
    options = ImportOptions(text_column="body", id_column="uid", stance_column="label", frames_column="tags",
                            group_column="doc", label_map={"0": "against", "1": "favor"})
    import_table(path, "pq", options, root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "pq", "id", "doc_id", "text", "stance", "frames") == [
        ("7", "d1", "First text.", "against", ["economic"]),
        ("8", "d1", "Second text.", "favor", []),
        ("9", "d2", "Third text.", "against", ["moral", "economic"]),
    ]
    assert info_of(tmp_path / "imported", "pq")["source"] == {
        "file": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "rows": 3}


def test_parquet_errors_name_the_row(tmp_path):
    path = tmp_path / "table.parquet"
    pq.write_table(pa.table({"text": ["Fine.", " ", "Fine too."], "stance": ["a", "b", "c"]}), path)
    assert refusal(path, ImportOptions(stance_column="stance")) == (
        f"{path}: row 2: the text in column 'text' is empty; fill it in or remove the row"
    )


# --- refusals, each before anything is written --------------------------------------------------------------------


@pytest.mark.parametrize("body, options, message", [
    ("text,stance\nA.,favor,extra\n", ImportOptions(stance_column="stance"),
     "{path}:2: 3 fields, but the header has 2; quote fields that contain ','"),
    ("text,stance,target\nA.,favor,x\nB.,favor\n", ImportOptions(stance_column="stance"),
     "{path}:3: 2 fields, but the header has 3; fill in the missing ones"),
    ("text,stance\nA.,favor\n \t ,against\n", ImportOptions(stance_column="stance"),
     "{path}:3: the text in column 'text' is empty; fill it in or remove the row"),
    ("id,text,stance\nx1,A.,favor\nx2,B.,favor\nx1,C.,favor\n", ImportOptions(stance_column="stance", id_column="id"),
     "{path}:4: duplicate id 'x1' in column 'id' (also at line 2); make the ids unique, "
     "or leave out --id-column to number the rows"),
    ("id,text,stance\nx1,A.,favor\n,B.,favor\n", ImportOptions(stance_column="stance", id_column="id"),
     "{path}:3: the id in column 'id' is empty; fill it in, or leave out --id-column to number the rows"),
    ("text,stance\nA.,favor\nB., \n", ImportOptions(stance_column="stance"),
     "{path}:3: the stance label in column 'stance' is empty; fill it in or remove the row"),
    ("text,stance\nA.,FAVOR\nB.,AGAINST\n",
     ImportOptions(stance_column="stance", stance_labels=("favor", "against"), label_map={"FAVOR": "favor"}),
     "{path}:3: unknown stance label 'AGAINST' in column 'stance'; the declared labels are favor, against; "
     "rename it with --map AGAINST=LABEL or declare it with --stance-labels"),
    ("text,stance\nA.,FAVOR\n",
     ImportOptions(stance_column="stance", stance_labels=("favour",), label_map={"FAVOR": "favor"}),
     "{path}:2: unknown stance label 'favor' (mapped from 'FAVOR') in column 'stance'; the declared labels are "
     "favour; rename it with --map FAVOR=LABEL or declare it with --stance-labels"),
    ("text,frames\nA.,economic;war\n", ImportOptions(frames_column="frames", frame_labels=("economic",)),
     "{path}:2: unknown frame label 'war' in column 'frames'; the declared labels are economic; "
     "rename it with --map war=LABEL or declare it with --frame-labels"),
    ("text,econ\nA.,1\nB.,maybe\n", ImportOptions(frame_columns=("econ",)),
     "{path}:3: invalid value 'maybe' in indicator column 'econ'; use 1/0, true/false or yes/no"),
    ("text,econ\nA.,\n", ImportOptions(frame_columns=("econ",)),
     "{path}:2: invalid value empty in indicator column 'econ'; use 1/0, true/false or yes/no"),
    ("text,stance,split\nA.,favor,train\nB.,favor,validation\n", ImportOptions(stance_column="stance", split_column="split"),
     "{path}:3: the split in column 'split' is 'validation'; use train, dev or test, or rename it with --map validation=dev"),
    ("text,stance,split\nA.,favor,TRAIN\n", ImportOptions(stance_column="stance", split_column="split"),
     "{path}:2: the split in column 'split' is 'TRAIN'; use train, dev or test, or rename it with --map TRAIN=train"),
    ("text,stance,split\nA.,favor,\n", ImportOptions(stance_column="stance", split_column="split"),
     "{path}:2: the split in column 'split' is empty; use train, dev or test"),
    ("text,stance,topic\nA.,favor,\n", ImportOptions(stance_column="stance", target_column="topic"),
     "{path}:2: the target in column 'topic' is empty; fill it in or remove the row"),
    ("text,stance,author\nA.,favor,\n", ImportOptions(stance_column="stance", group_column="author"),
     "{path}:2: the group in column 'author' is empty; fill it in or remove the row"),
    ("text,stance\n", ImportOptions(stance_column="stance"),
     "{path}: the table has no rows"),
    ("", ImportOptions(stance_column="stance"),
     "{path}: the file is empty; expected a header line naming the columns, then one row per text"),
    ("Tweet,Stance,Target\nA.,favor,x\n", ImportOptions(text_column="Tweet", stance_column="Stance", target_column="target"),
     "{path}: --target-column 'target': no such column; the columns are: Tweet, Stance, Target"),
    ("Tweet,Stance\nA.,favor\n", ImportOptions(stance_column="Stance"),
     "{path}: --text-column 'text': no such column; the columns are: Tweet, Stance"),
    ("text,a\nA.,1\n", ImportOptions(frame_columns=("a", "b")),
     "{path}: --frame-columns 'b': no such column; the columns are: text, a"),
    ("text,stance,stance\nA.,favor,against\n", ImportOptions(stance_column="stance"),
     "{path}:1: column 'stance' (--stance-column) appears twice in the header; rename one of them"),
])
def test_a_bad_csv_is_refused_with_the_line_and_nothing_is_written(tmp_path, body, options, message):
    path = write(tmp_path / "table.csv", body)
    assert refusal(path, options) == message.format(path=path)


def test_line_numbers_are_physical_lines_counting_blank_lines_and_quoted_line_breaks(tmp_path):
    path = write(tmp_path / "table.csv", 'text,stance\n\n"A text\nover two lines.",favor\n\nB.,\n')
    assert refusal(path, ImportOptions(stance_column="stance")) == (
        f"{path}:6: the stance label in column 'stance' is empty; fill it in or remove the row"
    )
    ragged = write(tmp_path / "ragged.csv", 'text,stance\n"A text\nover two lines.",favor,extra\n')
    assert refusal(ragged, ImportOptions(stance_column="stance")) == (
        f"{ragged}:2: 3 fields, but the header has 2; quote fields that contain ','"
    )


@pytest.mark.parametrize("lines, options, message", [
    (['{"text": "A.", "stance": "favor"}', "", '{"text": "B.", "stance": "favor",}'], ImportOptions(stance_column="stance"),
     "{path}:3: not valid JSON (Expecting property name enclosed in double quotes); fix or remove that line"),
    (['{"text": "A.", "stance": "favor"}', '["B.", "favor"]'], ImportOptions(stance_column="stance"),
     "{path}:2: expected a JSON object per line"),
    (['{"text": "A.", "stance": "favor"}', "", '{"text": "B."}'], ImportOptions(stance_column="stance"),
     "{path}:3: the stance label in column 'stance' is empty; fill it in or remove the row"),
    (['{"text": "A.", "stance": null}'], ImportOptions(stance_column="stance"),
     "{path}:1: the stance label in column 'stance' is empty; fill it in or remove the row"),
    (['{"text": 5, "stance": "favor"}'], ImportOptions(stance_column="stance"),
     "{path}:1: the text in column 'text' is 5; expected a string"),
    (['{"text": "A.", "stance": 1.5}'], ImportOptions(stance_column="stance"),
     "{path}:1: the stance label in column 'stance' is 1.5; expected text"),
    (['{"text": "A.", "frames": {"economic": 1}}'], ImportOptions(frames_column="frames"),
     "{path}:1: the frames in column 'frames' are {{\"economic\": 1}}; expected a list of labels or labels joined "
     "by ';' (--frames-separator)"),
    (['{"text": "A.", "label": "favor"}'], ImportOptions(stance_column="stance"),
     "{path}: --stance-column 'stance': no such column; the columns are: text, label"),
    ([""], ImportOptions(stance_column="stance"), "{path}: the table has no rows"),
])
def test_a_bad_jsonl_table_is_refused_with_the_line(tmp_path, lines, options, message):
    path = write(tmp_path / "table.jsonl", "\n".join(lines) + "\n")
    assert refusal(path, options) == message.format(path=path)


def test_a_json_array_is_refused_with_a_hint(tmp_path):
    path = write(tmp_path / "table.json", '[{"text": "A.", "stance": "favor"}]')
    assert refusal(path, ImportOptions(stance_column="stance")) == (
        f"{path}: a JSON array; give JSON Lines (one object per line), e.g. convert it with jq -c '.[]'"
    )


def test_json_lines_in_a_json_file_are_imported(tmp_path):
    path = write(tmp_path / "table.json", '{"text": "A.", "stance": "favor"}\n')
    import_table(path, "lines", ImportOptions(stance_column="stance"), root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "lines", "text", "stance") == [("A.", "favor")]


@pytest.mark.parametrize("name, options, message", [
    ("Semeval", ImportOptions(stance_column="s"),
     "--name 'Semeval': use 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit, e.g. semeval2016"),
    ("-x", ImportOptions(stance_column="s"),
     "--name '-x': use 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit, e.g. semeval2016"),
    ("a" * 65, ImportOptions(stance_column="s"),
     f"--name {'a' * 65!r}: use 1-64 lower-case letters, digits, '_' or '-', starting with a letter or digit, "
     "e.g. semeval2016"),
    ("ok", ImportOptions(),
     "nothing to import: name the labels with --stance-column, --frames-column or --frame-columns"),
    ("ok", ImportOptions(frames_column="f", frame_columns=("a",)),
     "give either --frames-column (one column of frame lists) or --frame-columns (one indicator column per frame), "
     "not both"),
    ("ok", ImportOptions(stance_column="s", encoding="klingon"),
     "--encoding 'klingon': unknown encoding; e.g. utf-8, latin-1 or cp1252"),
    ("ok", ImportOptions(stance_column="s", delimiter="::"),
     "--delimiter '::': give one character, e.g. ';' or a tab"),
    ("ok", ImportOptions(frame_columns=("a", "b", "a")), "--frame-columns: 'a' is given twice"),
    ("ok", ImportOptions(frame_columns=("Econ", "econ"), label_map={"Econ": "econ"}),
     "--frame-columns: 'Econ' and 'econ' are both mapped to frame 'econ'"),
    ("ok", ImportOptions(frame_columns=("econ", "war"), frame_labels=("econ",)),
     "--frame-columns: column 'war' is frame 'war', which is not among the declared --frame-labels (econ)"),
    ("ok", ImportOptions(stance_column="s", label_map={"FAVOR": ""}),
     "--map FAVOR=: both sides must be non-empty, e.g. --map FAVOR=favor"),
    ("ok", ImportOptions(stance_column="s", frames_column="f", frames_separator=""),
     "--frames-separator: must not be empty; e.g. ';' or '|'"),
])
def test_bad_options_are_refused_before_the_file_is_read(tmp_path, name, options, message):
    assert refusal(tmp_path / "never-read.csv", options, name=name) == message


def test_files_that_cannot_be_read_are_refused(tmp_path):
    missing = tmp_path / "missing.csv"
    assert refusal(missing, ImportOptions(stance_column="s")) == f"{missing}: file not found"
    xlsx = write(tmp_path / "table.xlsx", b"PK")
    assert refusal(xlsx, ImportOptions(stance_column="s")) == (
        f"{xlsx}: cannot import .xlsx; give a .csv, .tsv, .jsonl (or .json lines) or .parquet table"
    )
    jsonl = write(tmp_path / "t.jsonl", '{"text": "A.", "s": "x"}\n')
    assert refusal(jsonl, ImportOptions(stance_column="s", delimiter=";")) == (
        "--delimiter applies to .csv and .tsv files, not to t.jsonl"
    )
    fake = write(tmp_path / "fake.parquet", b"not parquet at all")
    assert refusal(fake, ImportOptions(stance_column="s")).startswith(f"{fake}: not a readable Parquet file (")


def test_a_semicolon_delimited_csv_is_read_with_the_delimiter_option(tmp_path):
    path = write(tmp_path / "excel.csv", "text;stance\nA, with a comma.;favor\n")
    import_table(path, "semi", ImportOptions(stance_column="stance", delimiter=";"), root=tmp_path / "imported")
    assert rows_of(tmp_path / "imported", "semi", "text", "stance") == [("A, with a comma.", "favor")]


# --- the all-or-nothing write ---------------------------------------------------------------------------------------


def test_an_existing_name_is_refused_and_force_replaces_it(tmp_path):
    root = tmp_path / "imported"
    first = write(tmp_path / "one.csv", "text,stance\nOld text.,favor\n")
    second = write(tmp_path / "two.csv", "text,stance\nNew text.,against\nMore.,favor\n")
    import_table(first, "mine", ImportOptions(stance_column="stance"), root=root)
    assert refusal(second, ImportOptions(stance_column="stance"), name="mine", root=root) == (
        f"{root / 'mine'}: an imported dataset named 'mine' exists; choose another --name or replace it with --force"
    )
    assert rows_of(root, "mine", "text") == [("Old text.",)]
    summary = import_table(second, "mine", ImportOptions(stance_column="stance"), root=root, force=True)
    assert summary.replaced and summary.rows == 2
    assert rows_of(root, "mine", "text", "stance") == [("New text.", "against"), ("More.", "favor")]
    assert info_of(root, "mine")["source"]["file"] == str(second)
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == ["mine"]


def test_a_failed_forced_import_keeps_the_old_dataset(tmp_path):
    root = tmp_path / "imported"
    import_table(write(tmp_path / "one.csv", "text,stance\nOld text.,favor\n"), "mine",
                 ImportOptions(stance_column="stance"), root=root)
    bad = write(tmp_path / "bad.csv", "text,stance\nNew text.,\n")
    assert refusal(bad, ImportOptions(stance_column="stance"), name="mine", root=root, force=True) == (
        f"{bad}:2: the stance label in column 'stance' is empty; fill it in or remove the row"
    )
    assert rows_of(root, "mine", "text") == [("Old text.",)]


def test_a_staging_folder_left_by_a_crash_is_cleared_and_never_listed(tmp_path):
    root = tmp_path / "imported"
    (root / ".mine.partial").mkdir(parents=True)
    (root / ".mine.partial" / "dataset.parquet").write_bytes(b"half")
    assert imported_names(root) == []
    import_table(write(tmp_path / "one.csv", "text,stance\nA.,favor\n"), "mine", ImportOptions(stance_column="stance"),
                 root=root)
    assert not (root / ".mine.partial").exists()
    assert imported_names(root) == ["mine"]


# --- reading back ---------------------------------------------------------------------------------------------------


def test_load_imported_returns_a_dataset_with_typed_columns_and_the_info(tmp_path):
    root = tmp_path / "imported"
    import_table(write(tmp_path / "t.csv", "text,stance\nA.,favor\n"), "stance-only", ImportOptions(stance_column="stance"),
                 root=root)
    dataset, info = load_imported("stance-only", root=root)
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.column_names == COLUMNS
    assert {k: str(v) for k, v in dataset.features.items()} == {
        "id": "Value('string')", "doc_id": "Value('string')", "text": "Value('string')", "hash": "Value('string')",
        "kind": "Value('string')", "stance": "Value('string')", "frames": "List(Value('string'))",
        "target": "Value('string')", "split": "Value('string')",
    }
    assert dataset.to_list() == [{"id": "stance-only-1", "doc_id": "stance-only-1", "text": "A.", "hash": text_hash("A."),
                                  "kind": "body", "stance": "favor", "frames": [], "target": None, "split": None}]
    assert info == info_of(root, "stance-only")


def test_an_unknown_name_lists_the_imported_ones(tmp_path):
    root = tmp_path / "imported"
    with pytest.raises(UserError) as excinfo:
        load_imported("semeval", root=root)
    assert str(excinfo.value) == (
        f"unknown imported dataset 'semeval'; imported in {root}: none yet "
        "(add one with `python -m experiments import FILE --name NAME`)"
    )
    table = write(tmp_path / "t.csv", "text,stance\nA.,favor\n")
    for name in ("zeta", "alpha"):
        import_table(table, name, ImportOptions(stance_column="stance"), root=root)
    (root / "stray-folder").mkdir()
    assert imported_names(root) == ["alpha", "zeta"]
    with pytest.raises(UserError) as excinfo:
        load_imported("semeval", root=root)
    assert str(excinfo.value) == (
        f"unknown imported dataset 'semeval'; imported in {root}: alpha, zeta "
        "(add one with `python -m experiments import FILE --name NAME`)"
    )


# --- speed ------------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_100000_row_csv_imports_completely(tmp_path):
    # Speed is measured by `python -m experiments bench --import-rows 100000`, not here.
    n = 100_000
    lines = ["id,target,text,stance,frames,split"]
    for i in range(n):
        lines.append(f'{i},target {i % 5},"Row {i}: a tweet about topic {i % 97}, with  some words and a comma.",'
                     f"{('FAVOR', 'AGAINST', 'NONE')[i % 3]},econ;war,{('train', 'dev', 'test')[i % 3]}")
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    options = ImportOptions(id_column="id", target_column="target", stance_column="stance", frames_column="frames",
                            split_column="split", label_map={"FAVOR": "favor", "AGAINST": "against", "NONE": "none"})
    summary = import_table(path, "big", options, root=tmp_path / "imported")
    assert summary.rows == n
    assert summary.counts["split"] == {"dev": n // 3, "test": n // 3, "train": n // 3 + 1}
