"""Bad input, everywhere: a one-line error that names the place and says what to do, and nothing changed.

Each case goes through the function that reads the input and, where it is
cheap, through ``cli.main`` (exit status 2, one line on stderr, nothing on
stdout, no traceback). Files that exist before the command are compared byte for byte
afterwards, so a half-written or rewritten file fails the test.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments import annotations, importer, paths
from experiments.annotations import derive_gold, load_paragraphs, write_gold
from experiments.app import check_port
from experiments.cli import main
from experiments.corpus import build_corpus, load_documents
from experiments.errors import UserError
from experiments.importer import ImportOptions, import_table
from experiments.models.persist import load_model
from experiments.rundir import open_run


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (lock files aside) by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def raises(func, *args, **kwargs) -> str:
    with pytest.raises(UserError) as excinfo:
        func(*args, **kwargs)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# --- 1. corpus with a bad annotation or adjudication file -----------------------------------------------------------

D1 = "First Headline\n\nThe first paragraph says something.\n\nThe second paragraph says more.\n"
D2 = "Second Headline\n\nA new document arrives with one paragraph.\n"


def record(paragraph: dict, annotator: str = "maryam", **labels) -> dict:
    return {"paragraph_id": paragraph["id"], "hash": paragraph["hash"], "annotator": annotator,
            "stance": labels.get("stance", "favor"), "frames": labels.get("frames", []),
            "timestamp": "2024-05-01T10:00:00+00:00"}


def write_lines(path: Path, *lines: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines), encoding="utf-8")
    return path


@pytest.fixture
def project(tmp_path, monkeypatch, codebook):
    """A seeds folder and a data folder in tmp_path, built and with gold, and the CLI pointed at them."""
    seeds, data = tmp_path / "seeds", tmp_path / "data"
    seeds.mkdir()
    (seeds / "d1.txt").write_text(D1, encoding="utf-8")
    records = build_corpus(seeds, data / "paragraphs.jsonl")
    write_lines(data / "annotations" / "maryam.jsonl", record(records[1]))
    write_gold(derive_gold(codebook, load_paragraphs(data / "paragraphs.jsonl"), data / "annotations",
                           data / "adjudications.jsonl"), data / "gold.jsonl")
    for name, value in {"SEEDS": seeds, "MANIFEST": seeds / "manifest.yaml", "DATA": data,
                        "PARAGRAPHS": data / "paragraphs.jsonl", "ANNOTATIONS": data / "annotations",
                        "ADJUDICATIONS": data / "adjudications.jsonl", "GOLD": data / "gold.jsonl"}.items():
        monkeypatch.setattr(paths, name, value)
    return seeds, data, records


def corpus(cli_error=None):
    """``python -m experiments corpus`` in-process on the patched paths: its error message (given the ``cli_error``
    fixture), or its exit status."""
    # `corpus` must read and write the data folder it is pointed at, never the project's own data/.
    for func, parameter in ((annotations.load_paragraphs, "path"), (annotations.derive_gold, "annotations_dir"),
                            (annotations.derive_gold, "adjudications"), (annotations.write_gold, "out")):
        if inspect.signature(func).parameters[parameter].default is not None:
            pytest.fail(f"annotations.{func.__name__}({parameter}=...) is bound to the project's data/ at import; "
                        "running `corpus` here would write there")
    return main(["corpus"]) if cli_error is None else cli_error(["corpus"])


def test_corpus_works_on_the_tmp_project(project, capsys):
    seeds, data, _ = project
    (seeds / "d2.txt").write_text(D2, encoding="utf-8")
    assert corpus() == 0
    assert "5 paragraphs from 2 documents" in capsys.readouterr().out
    assert [r["id"] for r in map(json.loads, (data / "gold.jsonl").read_text(encoding="utf-8").splitlines())] == ["d1-002"]


def test_corpus_with_an_unknown_paragraph_id_names_the_line_and_writes_nothing(project, cli_error):
    seeds, data, records = project
    (seeds / "d2.txt").write_text(D2, encoding="utf-8")  # the corpus would change
    ann = write_lines(data / "annotations" / "maryam.jsonl", record(records[1]), {**record(records[2]), "paragraph_id": "d1-009"})
    before = snapshot(data)
    assert corpus(cli_error) == (
        f"{ann}:2: paragraph id 'd1-009' is not in the corpus built from {seeds}; fix that line")
    assert snapshot(data) == before


def test_build_corpus_checks_the_annotations_before_writing(project):
    seeds, data, records = project
    (seeds / "d2.txt").write_text(D2, encoding="utf-8")
    ann = write_lines(data / "annotations" / "maryam.jsonl", {**record(records[0]), "stance": "FAVOR"})
    before = snapshot(data)
    assert raises(build_corpus, seeds, data / "paragraphs.jsonl") == (
        f"{ann}:1: unknown stance 'FAVOR'; use one of favor, against, neutral, none")
    assert snapshot(data) == before


@pytest.mark.parametrize("line, message", [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes); fix or remove that line"),
    ('{"paragraph_id": "d1-009", "hash": "0", "adjudicator": "sam", "stance": "favor", "frames": [], '
     '"reason": "r", "timestamp": "t"}', "paragraph id 'd1-009' is not in the corpus built from {seeds}; fix that line"),
])
def test_corpus_with_a_bad_adjudication_names_the_line_and_writes_nothing(project, cli_error, line, message):
    seeds, data, _ = project
    (seeds / "d2.txt").write_text(D2, encoding="utf-8")
    adj = write_lines(data / "adjudications.jsonl", line)
    before = snapshot(data)
    assert corpus(cli_error) == f"{adj}:1: " + message.format(seeds=seeds)
    assert snapshot(data) == before


# --- 2. the seeds manifest -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("manifest, message", [
    ("documents:\n  - just-a-file.txt\n",
     "documents.0: expected a mapping with keys id, file, title, author, date, genre, found 'just-a-file.txt'; "
     "fix that entry"),
    ("documents:\n  - id: d1\n    file: d1.txt\n  - [d2, d2.txt]\n",
     "documents.1: expected a mapping with keys id, file, title, author, date, genre, found ['d2', 'd2.txt']; "
     "fix that entry"),
    ("documents:\n  - id: d1\n    file: null\n",
     "documents.0.file: missing; give the name of a document file in {seeds}"),
    ("documents:\n  - id: d1\n", "documents.0.file: missing; give the name of a document file in {seeds}"),
    ("documents:\n  - id: null\n    file: d1.txt\n", "documents.0.id: missing; give the document a unique id, e.g. d1"),
    ("documents:\n  d1: d1.txt\n", "documents: expected a list of entries such as '- id: d1' with 'file: d1.txt'"),
], ids=["string", "list", "file-null", "file-absent", "id-null", "not-a-list"])
def test_a_bad_manifest_entry_is_a_one_line_error_naming_it(project, cli_error, manifest, message):
    seeds, data, _ = project
    (seeds / "manifest.yaml").write_text(manifest, encoding="utf-8")
    expected = f"{seeds / 'manifest.yaml'}: " + message.format(seeds=seeds)
    assert raises(load_documents, seeds) == expected
    before = snapshot(data)
    assert corpus(cli_error) == expected
    assert snapshot(data) == before


# --- 3. damaged run files ------------------------------------------------------------------------------------------

@pytest.fixture
def run_copy(run_dir, tmp_path):
    """A copy of the session's trained run (conftest), for a test to damage."""
    return shutil.copytree(run_dir, tmp_path / run_dir.name)


def rerun(run_dir: Path) -> str:
    return f"re-run the config to make the run again: python -m experiments run {run_dir / 'config.yaml'}"


def json_error(path: Path) -> str:
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return f"{path}:{exc.lineno}: not valid JSON ({exc.msg}); the file is damaged or cut off"
    raise AssertionError(f"{path} is valid JSON")


def test_a_truncated_metrics_json_names_the_file_for_report_table_and_reproduce(run_copy, cli_error):
    metrics = run_copy / "metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:120])
    expected = f"{json_error(metrics)}; {rerun(run_copy)}"
    before = snapshot(run_copy)
    assert raises(open_run, run_copy) == expected
    assert cli_error(["table", str(run_copy)]) == expected
    assert cli_error(["reproduce", str(run_copy)]) == expected
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("content, problem", [
    (b'{"config": "x", "tasks": {}}\xff\n', "{path}:1: not UTF-8 text; the file is damaged"),
    (b'[1, 2]\n', "{path}: expected a JSON object, found a list; the file is damaged"),
    (b'', "{path}:1: not valid JSON (Expecting value); the file is damaged or cut off"),
], ids=["not-utf8", "not-an-object", "empty"])
def test_a_damaged_meta_json_names_the_file(run_copy, cli_error, content, problem):
    meta = run_copy / "meta.json"
    meta.write_bytes(content)
    expected = f"{problem.format(path=meta)}; {rerun(run_copy)}"
    assert raises(lambda run_dir: open_run(run_dir).meta, run_copy) == expected
    assert cli_error(["reproduce", str(run_copy)]) == expected


def model_dir(run_dir: Path) -> Path:
    return run_dir / "models" / "stance" / "tfidf_logreg"


def test_a_corrupt_model_json_names_the_file(run_copy, cli_error, tmp_path):
    card = model_dir(run_copy) / "model.json"
    card.write_text(card.read_text(encoding="utf-8")[:-40], encoding="utf-8")
    expected = f"{json_error(card)}; {rerun(run_copy)}"
    assert raises(load_model, model_dir(run_copy)) == expected
    text = tmp_path / "new.txt"
    text.write_text("Air strikes hit a base near Isfahan.\n", encoding="utf-8")
    before = snapshot(run_copy)
    assert cli_error(["predict", str(run_copy), str(text), "--no-similarity"]) == expected
    assert snapshot(run_copy) == before


@pytest.mark.parametrize("keep", [0.0, 0.1, 0.5, 0.9, 0.999], ids=lambda k: f"keep{k}")
def test_a_truncated_estimator_names_the_file_and_says_to_rerun(run_copy, keep):
    estimator = model_dir(run_copy) / "estimator.joblib"
    data = estimator.read_bytes()
    estimator.write_bytes(data[:int(len(data) * keep)])
    assert raises(load_model, model_dir(run_copy)) == (
        f"{estimator}: cannot load the saved model (the file is damaged or cut off); {rerun(run_copy)}")


def test_a_missing_estimator_names_the_file_and_says_to_rerun(run_copy):
    estimator = model_dir(run_copy) / "estimator.joblib"
    estimator.unlink()
    assert raises(load_model, model_dir(run_copy)) == f"{estimator}: file not found; {rerun(run_copy)}"


def test_the_undamaged_run_still_loads(run_dir):
    estimator, card = load_model(model_dir(run_dir))
    assert card["task"] == "stance" and hasattr(estimator, "predict_proba")


# --- 4. annotate --port ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", [99999, 65536, 0, -1])
def test_a_port_out_of_range_is_refused_before_anything_starts(port, tmp_path, cli_error):
    assert raises(check_port, "127.0.0.1", port) == f"--port {port}: use a port from 1 to 65535"
    data = tmp_path / "data"
    data.mkdir()
    assert cli_error(["annotate", "--annotator", "x", "--port", str(port), "--data", str(data)]) == (
        f"--port {port}: use a port from 1 to 65535")
    assert list(data.iterdir()) == []


# --- 5. import: labels outside the codebook ---------------------------------------------------------------------------

def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text, encoding="utf-8", newline="")
    return path


MIXED = "text,stance\nA.,favor\nB.,against\nC.,FAVOR\nD.,MAYBE\nE.,FAVOR\n"


def test_labels_outside_the_codebook_next_to_codebook_labels_are_refused(tmp_path, imported_root, cli_error):
    path = write(tmp_path / "mixed.csv", MIXED)
    expected = (f"{path}: stance labels outside the codebook in column 'stance': 'FAVOR' (line 4), 'MAYBE' (line 5); "
                "rename them with --map FAVOR=favor --map MAYBE=LABEL (the codebook's labels: favor, against, neutral, "
                "none), or declare the label set with --stance-labels favor,against,FAVOR,MAYBE")
    assert raises(import_table, path, "mixed", ImportOptions(stance_column="stance"), root=imported_root) == expected
    assert cli_error(["import", str(path), "--name", "mixed", "--stance-column", "stance"]) == expected
    assert not imported_root.exists()


def test_a_partial_map_leaves_labels_outside_the_codebook_and_is_refused(tmp_path, imported_root, cli_error):
    path = write(tmp_path / "partial.tsv", "Tweet\tStance\nA.\tFAVOR\nB.\tAGAINST\nC.\tMAYBE\n")
    expected = (f"{path}: stance labels outside the codebook in column 'Stance': 'FAVOR' (line 2), 'MAYBE' (line 4); "
                "rename them with --map FAVOR=favor --map MAYBE=LABEL (the codebook's labels: favor, against, neutral, "
                "none), or declare the label set with --stance-labels FAVOR,against,MAYBE")
    assert cli_error(["import", str(path), "--name", "partial", "--text-column", "Tweet",
                             "--stance-column", "Stance", "--map", "AGAINST=against"]) == expected
    assert not imported_root.exists()


def test_a_label_mapped_outside_the_codebook_names_its_source(tmp_path, imported_root):
    path = write(tmp_path / "typo.csv", "text,stance\nA.,FAVOR\nB.,AGAINST\n")
    options = ImportOptions(stance_column="stance", label_map={"FAVOR": "favour", "AGAINST": "against"})
    assert raises(import_table, path, "typo", options, root=imported_root) == (
        f"{path}: stance labels outside the codebook in column 'stance': 'favour' (line 2, mapped from 'FAVOR'); "
        "rename them with --map FAVOR=favor (the codebook's labels: favor, against, neutral, none), "
        "or declare the label set with --stance-labels favour,against")


def test_declared_labels_or_a_table_with_its_own_label_set_are_imported(tmp_path, imported_root):
    mixed = write(tmp_path / "mixed.csv", MIXED)
    import_table(mixed, "declared", ImportOptions(stance_column="stance",
                                                  stance_labels=("favor", "against", "FAVOR", "MAYBE")),
                 root=imported_root)
    # Raw SemEval labels, none of them the codebook's: the dataset's own label set (data.auxiliary.label_map maps them).
    own = write(tmp_path / "own.csv", "text,stance\nA.,FAVOR\nB.,AGAINST\nC.,NONE\n")
    summary = import_table(own, "own", ImportOptions(stance_column="stance"), root=imported_root)
    assert list(summary.counts["stance"]) == ["AGAINST", "FAVOR", "NONE"]
    mapped = import_table(own, "mapped", ImportOptions(stance_column="stance", label_map={
        "FAVOR": "favor", "AGAINST": "against", "NONE": "none"}), root=imported_root)
    assert list(mapped.counts["stance"]) == ["against", "favor", "none"]


# --- 6. NUL bytes ----------------------------------------------------------------------------------------------------

def test_a_seed_document_with_a_nul_byte_names_the_line_and_writes_nothing(project, cli_error):
    seeds, data, _ = project
    doc = seeds / "d2.txt"
    doc.write_bytes(b"Second Headline\n\nA paragraph\x00 with a NUL byte.\n")
    expected = (f"{doc}:3: NUL byte at offset 28; remove the NUL bytes "
                "(if the file is UTF-16 text, convert it to UTF-8, e.g. with iconv -f UTF-16 -t UTF-8)")
    before = snapshot(data)
    assert raises(build_corpus, seeds, data / "paragraphs.jsonl") == expected
    assert corpus(cli_error) == expected
    assert snapshot(data) == before


def test_a_utf16_seed_document_is_named_as_such(project):
    seeds, data, _ = project
    doc = seeds / "d2.txt"
    doc.write_bytes(D2.encode("utf-16"))
    assert raises(build_corpus, seeds, data / "paragraphs.jsonl") == (
        f"{doc}: UTF-16 text; convert it to UTF-8, e.g. with iconv -f UTF-16 -t UTF-8")


@pytest.mark.parametrize("suffix, body, line", [
    (".csv", b"text,stance\nA.,favor\nB\x00.,against\n", 3),
    (".tsv", b"text\tstance\nA.\tfavor\n\nB.\tagainst\x00\n", 4),
    (".jsonl", b'{"text": "A.", "stance": "favor"}\n{"text": "B\x00.", "stance": "against"}\n', 2),
], ids=["csv", "tsv", "jsonl"])
def test_a_table_with_a_nul_byte_names_the_line_and_writes_nothing(tmp_path, imported_root, cli_error, suffix, body, line):
    path = write(tmp_path / f"nul{suffix}", body)
    expected = (f"{path}:{line}: NUL byte in the file; remove the NUL bytes "
                "(if the file is UTF-16 text, give --encoding utf-16)")
    assert raises(import_table, path, "nul", ImportOptions(stance_column="stance"), root=imported_root) == expected
    assert cli_error(["import", str(path), "--name", "nul", "--stance-column", "stance"]) == expected
    assert not imported_root.exists()


def test_a_nul_character_in_a_json_or_parquet_cell_names_the_row(tmp_path, imported_root):
    jsonl = write(tmp_path / "escaped.jsonl", '{"text": "A.", "stance": "favor"}\n{"text": "B\\u0000.", "stance": "favor"}\n')
    assert raises(import_table, jsonl, "esc", ImportOptions(stance_column="stance"), root=imported_root) == (
        f"{jsonl}:2: the text in column 'text' contains a NUL character; remove it")
    label = write(tmp_path / "label.jsonl", '{"text": "A.", "stance": "fav\\u0000or"}\n')
    assert raises(import_table, label, "lab", ImportOptions(stance_column="stance"), root=imported_root) == (
        f"{label}:1: the stance label in column 'stance' contains a NUL character; remove it")
    parquet = tmp_path / "cells.parquet"
    pq.write_table(pa.table({"text": ["A.", "B\x00."], "stance": ["favor", "against"]}), parquet)
    assert raises(import_table, parquet, "pq", ImportOptions(stance_column="stance"), root=imported_root) == (
        f"{parquet}: row 2: the text in column 'text' contains a NUL character; remove it")
    assert not imported_root.exists()


# --- 7. config errors name the config file ----------------------------------------------------------------------------

def run_error(cli_error, tmp_path, config: Path) -> str:
    results = tmp_path / "results"
    # `run` prints its notes and data line before it checks the protocol against the data.
    data_lines = re.compile(rf"(note: .*\n)*({re.escape(config.stem)}: \d+ paragraphs, data fingerprint [0-9a-f]{{16}}, "
                            r"protocol \w+\n)?")
    message = cli_error(["run", str(config), "--results", str(results), "--no-progress"], stdout=data_lines)
    assert not results.exists() or snapshot(results) == {}
    return message


def test_an_unknown_data_source_names_the_config_file(write_config, tmp_path, imported_root, cli_error):
    config = write_config("nowhere", "data: {source: nowhere}\n")
    assert run_error(cli_error, tmp_path, config) == (
        f"{config}: data.source: unknown data source 'nowhere'; available: gold "
        "(add one with `python -m experiments import`)")


def test_more_folds_than_paragraphs_names_the_config_file(write_config, tmp_path, codebook, cli_error):
    headlines = sum(g["kind"] == "headline" for g in derive_gold(codebook, load_paragraphs(paths.PARAGRAPHS)).gold)
    folds = headlines + 1
    config = write_config("folds", f"data: {{kinds: [headline]}}\nprotocol: {{name: kfold, folds: {folds}}}\n")
    assert run_error(cli_error, tmp_path, config) == (
        f"{config}: protocol.folds: {folds} folds need at least {folds} paragraphs, the data has {headlines}; "
        f"set protocol.folds to at most {headlines}")


def test_more_folds_than_documents_names_the_config_file(write_config, tmp_path, cli_error):
    documents = len({p["doc_id"] for p in load_paragraphs(paths.PARAGRAPHS).values() if "source" not in p})
    folds = documents + 1
    config = write_config("groups", f"protocol: {{name: group_kfold, folds: {folds}}}\n")
    assert run_error(cli_error, tmp_path, config) == (
        f"{config}: protocol.folds: {folds} folds need at least {folds} groups (values of doc_id), the data has "
        f"{documents}; set protocol.folds to at most {documents}, or use protocol.name: lodo")


def test_a_split_column_the_data_lacks_names_the_config_file(write_config, tmp_path, cli_error):
    config = write_config("nosplit", "protocol: {name: split, split_column: part}\n")
    assert run_error(cli_error, tmp_path, config) == (
        f"{config}: protocol.split_column: 'part' is not a column of the data (columns: annotators, doc_id, frames, "
        "hash, id, kind, rationale, rationales, source, stance, text); name the column that holds train, dev and "
        "test, or use another protocol.name")


def test_a_split_column_with_no_values_names_the_config_file(write_config, tmp_path, imported_root, cli_error):
    table = write(tmp_path / "t.csv", "text,stance\nA.,favor\nB.,against\nC.,favor\nD.,against\n")
    import_table(table, "nosplit", ImportOptions(stance_column="stance"), root=imported_root)
    config = write_config("emptysplit", "tasks: [stance]\ndata: {source: nosplit}\nprotocol: {name: split}\n")
    assert run_error(cli_error, tmp_path, config) == (
        f"{config}: protocol.split_column: 'split' is empty in every row; "
        "import the table again with --split-column COLUMN, or use another protocol.name")


@pytest.mark.parametrize("damage", ["info.json", "dataset.parquet"])
def test_a_damaged_imported_dataset_names_the_file_and_says_to_import_again(tmp_path, imported_root, write_config,
                                                                            cli_error, damage):
    table = write(tmp_path / "t.csv", "text,stance\nA.,favor\nB.,against\nC.,favor\nD.,against\n")
    import_table(table, "mine", ImportOptions(stance_column="stance"), root=imported_root)
    path = imported_root / "mine" / damage
    path.write_bytes(path.read_bytes()[:30])
    fix = "import the table again: python -m experiments import FILE --name mine --force"
    with pytest.raises(UserError) as excinfo:
        importer.load_imported("mine", root=imported_root)
    message = str(excinfo.value)
    if damage == "info.json":
        assert message == f"{json_error(path)}; {fix}"
    else:
        assert message.startswith(f"{path}: not a readable Parquet file (") and message.endswith(f"); {fix}")
    config = write_config("damaged", "tasks: [stance]\ndata: {source: mine}\n")
    assert run_error(cli_error, tmp_path, config) == message
