"""Labelling new text with a run's saved models: the Python API, files in chunks, resuming, one-line errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
import tempfile
import tracemalloc
import types
from pathlib import Path

import pytest

from experiments import cli, paths
from experiments.codebook import load_codebook
from experiments.errors import UserError
from experiments.inputs import iter_paragraphs, open_inputs
from experiments.plots import slug
from experiments.predict import Predictor, csv_header, predict_files, predict_texts

SAVED = ["majority", "tfidf_logreg"]  # the models of the conftest run_dir, saved by final_fit
ROW_KEYS = ["doc_id", "paragraph_id", "hash", "text", "stance", "stance_probs", "stance_confidence", "frames",
            "frame_probs", "frames_confidence", "confidence", "train_similarity", "unfamiliar",
            "codebook_version", "run", "models"]
TEXTS = [
    "Foreign powers must stay out of Iran and respect its sovereignty.",
    "Air strikes hit a base near Isfahan on Monday.",
    "Sanctions have doubled the price of bread for ordinary families.",
    "Women led the protests in Tehran, demanding an end to the regime.",
    "Exiles call on the world to act.",
]
DOCUMENT = (
    "Strikes Near Isfahan\n"
    "\n"
    "Officials said on Monday that talks would resume in Oman.\n"
    "\n"
    "Critics warned that sanctions hurt ordinary families.\n"
)


def no_models(run: Path, whose: str = "the run", config: Path | None = None) -> str:
    """What predict says of a run (or a config's folder of runs) whose saved models are gone."""
    return (f"{run}: no saved models, although {whose} set final_fit: true (models/ is gone); "
            f"run it again: python -m experiments run {config or run / 'config.yaml'}")


@pytest.fixture(scope="module")
def predictor(run_dir):
    return Predictor.from_run(run_dir)


def write_table(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def ten_rows(tmp_path: Path, name: str = "rows.jsonl") -> Path:
    return write_table(tmp_path / name, [f"{TEXTS[i % len(TEXTS)]} Report {i}." for i in range(10)])


def label(run_dir, names, out=None, **kwargs):
    kwargs.setdefault("progress", False)
    with open_inputs([str(n) for n in names]) as inputs:
        return predict_files(run_dir, inputs, out=out, **kwargs)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


# --- the Python API ----------------------------------------------------------------------------------------------


def test_predict_texts_labels_each_text_with_codebook_labels_and_probabilities(run_dir, codebook):
    rows = predict_texts(TEXTS, run_dir)
    assert len(rows) == len(TEXTS)
    for row in rows:
        assert list(row) == ["stance", "stance_probs", "stance_confidence", "frames", "frame_probs",
                             "frames_confidence", "confidence", "train_similarity", "unfamiliar"]
        assert row["confidence"] == min(row["stance_confidence"], row["frames_confidence"])
        assert row["stance_confidence"] == max(row["stance_probs"].values())
        assert row["stance"] in codebook.stance_labels
        assert list(row["stance_probs"]) == codebook.stance_labels == ["favor", "against", "neutral", "none"]
        assert sum(row["stance_probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert all(0.0 <= p <= 1.0 for p in row["stance_probs"].values())
        assert row["stance"] == max(row["stance_probs"], key=row["stance_probs"].get)
        assert set(row["frames"]) <= set(codebook.frame_labels)
        assert row["frames"] == [f for f in codebook.frame_labels if f in row["frames"]]  # codebook order
        assert list(row["frame_probs"]) == codebook.frame_labels
        assert len(row["frame_probs"]) == 7
        assert all(0.0 <= p <= 1.0 for p in row["frame_probs"].values())


def test_predict_texts_of_nothing_is_an_empty_list(run_dir):
    assert predict_texts([], run_dir) == []


def test_predictions_do_not_depend_on_the_other_texts_in_the_batch(predictor):
    together = predictor.predict(TEXTS)
    assert [predictor.predict([t])[0] for t in TEXTS] == together


def test_a_config_results_folder_means_its_newest_run_with_saved_models(run_dir, tmp_path):
    assert Predictor.from_run(run_dir.parent).run_dir == run_dir  # results/<config>/
    folder = tmp_path / "tiny"
    shutil.copytree(run_dir, folder / "20000101-000000-aaaaaa")
    shutil.copytree(run_dir, folder / "20990101-000000-bbbbbb")
    shutil.copytree(run_dir, folder / "21000101-000000-cccccc", ignore=shutil.ignore_patterns("models"))  # no models
    shutil.copytree(run_dir, folder / ".21010101-000000-dddddd.partial")  # an unfinished run
    assert Predictor.from_run(folder).run_dir == folder / "20990101-000000-bbbbbb"


def test_a_named_model_is_used_for_every_task(run_dir):
    predictor = Predictor.from_run(run_dir, model="majority")
    assert predictor.describe() == {"stance": "majority", "frames": "majority"}
    rows = predictor.predict(TEXTS)
    labels_only = [{k: v for k, v in row.items() if k not in ("train_similarity", "unfamiliar")} for row in rows]
    assert len({json.dumps(row, sort_keys=True) for row in labels_only}) == 1  # a majority model ignores the text


def test_an_unknown_model_name_lists_the_saved_models(run_dir):
    with pytest.raises(UserError) as excinfo:
        Predictor.from_run(run_dir, model="bert")
    assert str(excinfo.value) == f"{run_dir}: no saved model named 'bert'; saved: {', '.join(SAVED)}"


def test_a_run_without_saved_models_says_to_run_with_final_fit(run_dir, tmp_path):
    bare = tmp_path / "tiny" / run_dir.name
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("models"))
    with pytest.raises(UserError) as excinfo:
        Predictor.from_run(bare)
    assert str(excinfo.value) == no_models(bare)
    with pytest.raises(UserError) as excinfo:
        Predictor.from_run(bare.parent)
    assert str(excinfo.value) == no_models(bare.parent, "its runs", bare / "config.yaml")
    with pytest.raises(UserError) as excinfo:
        Predictor.from_run(tmp_path / "nowhere")
    assert str(excinfo.value) == (f"{tmp_path / 'nowhere'}: not a run directory (folder not found); "
                                  "pass a directory printed by `run`")


def best_in_metrics(run_dir: Path, task: str, metric: str) -> set[str]:
    models = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["tasks"][task]["models"]
    scores = {slug(name): result["metrics"][metric]["value"] or 0.0 for name, result in models.items()}
    return {name for name, score in scores.items() if score == max(scores.values())}


def test_the_default_model_of_each_task_is_the_best_of_the_run_by_macro_f1(predictor, run_dir):
    assert predictor.describe()["stance"] in best_in_metrics(run_dir, "stance", "macro_f1")
    assert predictor.describe()["frames"] in best_in_metrics(run_dir, "frames", "macro_f1")


def test_the_run_records_which_model_it_chose_with_the_protocol_and_number(run_dir, predictor):
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    for task in ("stance", "frames"):
        chosen = metrics["tasks"][task]["selection"]
        assert chosen["model"] == predictor.describe()[task]
        assert chosen["metric"] == "macro_f1" and chosen["protocol"] == "kfold" and chosen["transfer"] is False
        assert chosen["value"] == metrics["tasks"][task]["calibration"][chosen["model"]]["calibrated_macro_f1"]["value"]


def test_predict_uses_the_model_the_run_selected_by_leave_one_document_out(run_dir, tmp_path):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    metrics = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    for task in ("stance", "frames"):
        # the k-fold numbers favour tfidf_logreg; the recorded leave-one-document-out choice is majority
        metrics["tasks"][task]["selection"] = {"model": "majority", "metric": "macro_f1", "value": 0.4,
                                               "ci": [0.1, 0.6], "n": 60, "protocol": "lodo", "transfer": True}
        metrics["tasks"][task]["models"]["tfidf_logreg"]["metrics"]["macro_f1"]["value"] = 0.99
    (copy / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    predictor = Predictor.from_run(copy)
    assert predictor.describe() == {"stance": "majority", "frames": "majority"}
    assert predictor.models["stance"].selection["protocol"] == "lodo"


@pytest.mark.parametrize("stance_winner, frames_winner", [("majority", "majority"), ("majority", "tfidf_logreg"),
                                                          ("tfidf_logreg", "majority")])
def test_the_default_model_follows_the_headline_metric_of_each_task(run_dir, tmp_path, stance_winner, frames_winner):
    copy = tmp_path / run_dir.name
    shutil.copytree(run_dir, copy)
    metrics = json.loads((copy / "metrics.json").read_text(encoding="utf-8"))
    for task, metric, winner in (("stance", "macro_f1", stance_winner), ("frames", "macro_f1", frames_winner)):
        del metrics["tasks"][task]["selection"]  # a run saved before runs recorded their choice
        for name, result in metrics["tasks"][task]["models"].items():
            for key, value in result["metrics"].items():
                # the headline metric picks the winner; every other metric says the opposite
                value["value"] = 0.9 if (slug(name) == winner) == (key == metric) else 0.1
    (copy / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    assert Predictor.from_run(copy).describe() == {"stance": stance_winner, "frames": frames_winner}


# --- files -------------------------------------------------------------------------------------------------------


def test_predict_files_writes_one_jsonl_row_per_paragraph(run_dir, predictor, tmp_path, codebook):
    doc = tmp_path / "Op Ed.txt"
    doc.write_text(DOCUMENT, encoding="utf-8")
    table = ten_rows(tmp_path)
    out = tmp_path / "new" / "folder" / "labels.jsonl"
    summary = label(run_dir, [doc, table], out=out, chunk_size=4)
    rows = read_jsonl(out)
    assert summary.paragraphs == len(rows) == 3 + 10
    assert summary.resumed_from == 0 and summary.out == out and summary.run_dir == run_dir
    assert summary.models == predictor.describe()
    assert [(r["doc_id"], r["paragraph_id"]) for r in rows] == [
        ("op_ed", "op_ed-001"), ("op_ed", "op_ed-002"), ("op_ed", "op_ed-003"),
        *((("rows", f"rows:{i}") for i in range(1, 11))),
    ]
    with open_inputs([str(doc), str(table)]) as inputs:
        paragraphs = list(iter_paragraphs(inputs))
    expected = predictor.predict([p["text"] for p in paragraphs])
    for row, paragraph, predicted in zip(rows, paragraphs, expected):
        assert list(row) == ROW_KEYS
        assert (row["text"], row["hash"]) == (paragraph["text"], paragraph["hash"])
        assert {k: row[k] for k in predicted} == predicted
        assert row["codebook_version"] == codebook.version == load_codebook().version
        assert row["run"] == str(run_dir)
        assert row["models"] == predictor.describe()
    assert leftovers(out.parent) == []


def test_predict_files_writes_csv_that_parses_back(run_dir, predictor, tmp_path, monkeypatch):
    table = ten_rows(tmp_path)
    original = Predictor.predict

    def with_two_frames(self, texts):
        rows = original(self, texts)
        rows[0]["frames"] = ["security", "economic"]  # the models rarely pick two; the format must join them
        return rows

    monkeypatch.setattr(Predictor, "predict", with_two_frames)
    label(run_dir, [table], out=tmp_path / "labels.jsonl", chunk_size=3)
    out = tmp_path / "labels.csv"
    summary = label(run_dir, [table], out=out, chunk_size=3)  # the format comes from the suffix
    assert summary.paragraphs == 10
    text = out.read_text(encoding="utf-8")
    table_rows = list(csv.reader(io.StringIO(text)))
    header = csv_header(predictor)
    assert table_rows[0] == header == [
        "doc_id", "paragraph_id", "hash", "text",
        "stance", "p_stance_favor", "p_stance_against", "p_stance_neutral", "p_stance_none",
        "frames", "p_frame_humanitarian", "p_frame_security", "p_frame_sovereignty", "p_frame_regime_legitimacy",
        "p_frame_resistance", "p_frame_gender", "p_frame_economic",
        "stance_confidence", "frames_confidence", "confidence", "train_similarity", "unfamiliar",
        "codebook_version", "run", "stance_model", "frames_model",
    ]
    assert text.count("doc_id,paragraph_id") == 1  # one header, not one per chunk
    records = [dict(zip(header, row)) for row in table_rows[1:]]
    assert all(len(row) == len(header) for row in table_rows)
    jsonl = read_jsonl(tmp_path / "labels.jsonl")
    assert len(records) == len(jsonl) == 10
    for record, row in zip(records, jsonl):
        assert (record["doc_id"], record["paragraph_id"], record["hash"], record["text"]) == (
            row["doc_id"], row["paragraph_id"], row["hash"], row["text"])
        assert record["stance"] == row["stance"]
        assert {k: float(record[f"p_stance_{k}"]) for k in row["stance_probs"]} == row["stance_probs"]
        assert record["frames"] == ";".join(row["frames"])
        assert {k: float(record[f"p_frame_{k}"]) for k in row["frame_probs"]} == row["frame_probs"]
        assert (record["codebook_version"], record["run"]) == (row["codebook_version"], row["run"])
        assert float(record["confidence"]) == row["confidence"] and record["unfamiliar"] == str(row["unfamiliar"])
        assert (record["stance_model"], record["frames_model"]) == (row["models"]["stance"], row["models"]["frames"])
    assert [r["frames"] for r in records[::3]] == ["security;economic"] * 4  # the first row of each chunk of 3


def test_chunking_does_not_change_the_output(run_dir, tmp_path):
    table = ten_rows(tmp_path)
    for fmt in ("jsonl", "csv"):
        one = label(run_dir, [table], out=tmp_path / f"one.{fmt}", chunk_size=1)
        many = label(run_dir, [table], out=tmp_path / f"many.{fmt}", chunk_size=1000)
        assert one.paragraphs == many.paragraphs == 10
        assert (tmp_path / f"one.{fmt}").read_bytes() == (tmp_path / f"many.{fmt}").read_bytes()


def test_without_out_the_rows_go_to_the_stream(run_dir, tmp_path):
    table = ten_rows(tmp_path)
    label(run_dir, [table], out=tmp_path / "labels.jsonl")
    stream = io.StringIO()
    summary = label(run_dir, [table], stream=stream, chunk_size=3)
    assert summary.out is None and summary.paragraphs == 10
    assert stream.getvalue() == (tmp_path / "labels.jsonl").read_text(encoding="utf-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl", "rows.jsonl"]


# --- resuming ----------------------------------------------------------------------------------------------------


class Calls:
    """Wraps ``Predictor.predict``: counts the texts of each call, and can raise on the n-th call."""

    def __init__(self, monkeypatch, fail_on: int | None = None):
        self.sizes: list[int] = []
        original = Predictor.predict

        def predict(predictor, texts):
            self.sizes.append(len(texts))
            if len(self.sizes) == fail_on:
                raise KeyboardInterrupt
            return original(predictor, texts)

        monkeypatch.setattr(Predictor, "predict", predict)


def interrupted(run_dir, table: Path, out: Path, monkeypatch) -> Calls:
    """Label ``table`` to ``out`` in chunks of 2 and stop during the third, as Ctrl-C would: 4 rows are saved."""
    with monkeypatch.context() as patch:
        calls = Calls(patch, fail_on=3)
        with pytest.raises(KeyboardInterrupt):
            label(run_dir, [table], out=out, chunk_size=2)
    return calls


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_an_interrupted_run_resumes_after_the_last_finished_chunk(run_dir, tmp_path, monkeypatch, fmt):
    table = ten_rows(tmp_path)
    reference = tmp_path / f"reference.{fmt}"
    label(run_dir, [table], out=reference, chunk_size=2)
    out = tmp_path / f"labels.{fmt}"
    partial, state = tmp_path / f".labels.{fmt}.partial", tmp_path / f".labels.{fmt}.partial.json"

    assert interrupted(run_dir, table, out, monkeypatch).sizes == [2, 2, 2]
    assert not out.exists()
    assert partial.is_file() and state.is_file()
    assert json.loads(state.read_text(encoding="utf-8"))["rows"] == 4
    reference_lines = reference.read_bytes().splitlines(keepends=True)
    header = 1 if fmt == "csv" else 0
    assert partial.read_bytes() == b"".join(reference_lines[: header + 4])

    calls = Calls(monkeypatch)
    summary = label(run_dir, [table], out=out, chunk_size=2)
    assert summary.resumed_from == 4 and summary.paragraphs == 10
    assert calls.sizes == [2, 2, 2]  # only the chunks that were not finished
    assert out.read_bytes() == reference.read_bytes()
    assert leftovers(tmp_path) == []


def test_a_chunk_written_after_the_last_saved_state_is_dropped_on_resume(run_dir, tmp_path, monkeypatch):
    table = ten_rows(tmp_path)
    reference = tmp_path / "reference.jsonl"
    label(run_dir, [table], out=reference, chunk_size=2)
    out = tmp_path / "labels.jsonl"
    interrupted(run_dir, table, out, monkeypatch)
    with open(tmp_path / ".labels.jsonl.partial", "ab") as handle:
        handle.write(b'{"doc_id": "rows", "paragraph_id": "rows:5", "te')  # cut off mid-row
    summary = label(run_dir, [table], out=out, chunk_size=2)
    assert summary.resumed_from == 4
    assert out.read_bytes() == reference.read_bytes()
    assert leftovers(tmp_path) == []


def test_changed_inputs_start_over(run_dir, tmp_path, monkeypatch):
    table = ten_rows(tmp_path)
    out = tmp_path / "labels.jsonl"
    interrupted(run_dir, table, out, monkeypatch)
    assert leftovers(tmp_path) == [".labels.jsonl.partial", ".labels.jsonl.partial.json"]
    write_table(table, [f"Changed paragraph number {i}." for i in range(7)])
    reference = tmp_path / "reference.jsonl"
    label(run_dir, [table], out=reference, chunk_size=2)
    calls = Calls(monkeypatch)
    summary = label(run_dir, [table], out=out, chunk_size=2)
    assert summary.resumed_from == 0 and summary.paragraphs == 7
    assert calls.sizes == [2, 2, 2, 1]
    assert out.read_bytes() == reference.read_bytes()
    assert [r["text"] for r in read_jsonl(out)] == [f"Changed paragraph number {i}." for i in range(7)]
    assert leftovers(tmp_path) == []


def test_the_cli_reports_an_interruption_and_then_the_resume(run_dir, tmp_path, monkeypatch, capsys):
    table = ten_rows(tmp_path)
    out = tmp_path / "labels.jsonl"
    argv = ["predict", str(run_dir), str(table), "--out", str(out), "--chunk-size", "2", "--no-progress"]
    with monkeypatch.context() as patch:
        Calls(patch, fail_on=3)
        assert cli.main(argv) == 130
    assert capsys.readouterr().err == f"interrupted; the finished chunks are kept, run the same command again to resume {out}\n"
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    models = "stance: {stance}, frames: {frames}".format(**Predictor.from_run(run_dir).describe())
    assert captured.err.splitlines()[0] == f"10 paragraphs (resumed after 4) labelled by {run_dir} [{models}] -> {out}"
    assert len(read_jsonl(out)) == 10
    assert leftovers(tmp_path) == []


# --- bad input writes nothing ------------------------------------------------------------------------------------


def bad_inputs(tmp_path: Path, run_dir: Path):
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("id,body\n1,Some text.\n", encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Caf\u00e9 au lait.\n".encode("latin-1"))
    empty_doc = tmp_path / "empty.txt"
    empty_doc.write_text("\n\n", encoding="utf-8")
    empty_table = tmp_path / "empty.jsonl"
    empty_table.write_text("", encoding="utf-8")
    good = tmp_path / "good.jsonl"
    write_table(good, TEXTS)
    bare_run = tmp_path / "bare_run"
    shutil.copytree(run_dir, bare_run, ignore=shutil.ignore_patterns("models"))
    return {
        "csv without the text column": (
            [str(run_dir), str(no_text)],
            f"{no_text}: no column 'text' (columns: id, body); name the text column with --text-column"),
        "non-UTF-8 document": (
            [str(run_dir), str(good), str(latin1)],
            f"{latin1}: not UTF-8 text (byte 0xe9 at offset 3); convert it to UTF-8, e.g. with iconv"),
        "empty document": (
            [str(run_dir), str(empty_doc)], f"{empty_doc}: the document is empty; add its text or remove the file"),
        "empty table": ([str(run_dir), str(empty_table)], f"{empty_table}: the table has no rows"),
        "run without models": ([str(bare_run), str(good)], no_models(bare_run)),
        "unknown model": (
            [str(run_dir), str(good), "--model", "bert"],
            f"{run_dir}: no saved model named 'bert'; saved: {', '.join(SAVED)}"),
        "chunk size 0": ([str(run_dir), str(good), "--chunk-size", "0"], "--chunk-size must be at least 1"),
    }


CASES = ["csv without the text column", "non-UTF-8 document", "empty document", "empty table", "run without models",
         "unknown model", "chunk size 0"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("to_file", [True, False], ids=["out", "stdout"])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_dir, tmp_path, capsys, case, to_file):
    args, message = bad_inputs(tmp_path, run_dir)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    extra = ["--out", str(out_dir / "labels.jsonl")] if to_file else []
    assert cli.main(["predict", *args, *extra, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n"
    assert captured.out == ""
    assert list(out_dir.iterdir()) == []


def test_bad_input_does_not_touch_an_unfinished_output(run_dir, tmp_path, monkeypatch, capsys):
    table = ten_rows(tmp_path)
    out = tmp_path / "labels.jsonl"
    interrupted(run_dir, table, out, monkeypatch)
    before = {name: (tmp_path / name).read_bytes() for name in leftovers(tmp_path)}
    missing = tmp_path / "missing.txt"
    assert cli.main(["predict", str(run_dir), str(table), str(missing), "--out", str(out), "--no-progress"]) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such file or folder\n"
    assert {name: (tmp_path / name).read_bytes() for name in leftovers(tmp_path)} == before
    assert not out.exists()


# --- the command line --------------------------------------------------------------------------------------------


def test_the_cli_prints_jsonl_rows_on_stdout(run_dir, predictor, tmp_path, capsys):
    doc = tmp_path / "Op Ed.txt"
    doc.write_text(DOCUMENT, encoding="utf-8")
    assert cli.main(["predict", str(run_dir), str(doc), "--no-progress"]) == 0
    captured = capsys.readouterr()
    # Standard output carries only the rows; standard error says which models labelled them and why.
    chosen = Predictor.from_run(run_dir).models
    assert captured.err.splitlines()[:4] == [
        f"stance: {chosen['stance'].name} (macro-F1 of calibrated decisions {chosen['stance'].selection['value']:.2f} "
        f"[{chosen['stance'].selection['ci'][0]:.2f}, {chosen['stance'].selection['ci'][1]:.2f}], n=60, k-fold)",
        "note: the stance model was chosen by a kfold score, which does not test new documents; "
        "a leave-one-document-out run (configs/default.yaml) chooses for transfer",
        f"frames: {chosen['frames'].name} (macro-F1 of calibrated decisions {chosen['frames'].selection['value']:.2f} "
        f"[{chosen['frames'].selection['ci'][0]:.2f}, {chosen['frames'].selection['ci'][1]:.2f}], n=60, k-fold)",
        "note: the frames model was chosen by a kfold score, which does not test new documents; "
        "a leave-one-document-out run (configs/default.yaml) chooses for transfer",
    ]
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["paragraph_id"] for r in rows] == ["op_ed-001", "op_ed-002", "op_ed-003"]
    assert all(list(r) == ROW_KEYS for r in rows)
    expected = predictor.predict([r["text"] for r in rows])
    assert [{k: r[k] for k in expected[0]} for r in rows] == expected
    assert list(tmp_path.iterdir()) == [doc]


def test_the_cli_writes_csv_with_the_options_it_was_given(run_dir, tmp_path, capsys):
    table = tmp_path / "table.csv"
    table.write_text("pid,body,article\nx1,Strikes hit the port.,a-1\nx2,Talks resume.,a-2\n", encoding="utf-8")
    out = tmp_path / "labels.txt"
    argv = ["predict", str(run_dir), str(table), "--out", str(out), "--format", "csv", "--model", "majority",
            "--text-column", "body", "--id-column", "pid", "--doc-column", "article", "--no-progress"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"2 paragraphs labelled by {run_dir} [stance: majority, frames: majority] -> {out}"
    assert err[1].startswith("warning: 2 of 2 paragraphs (100%) are less similar to the training data than 90% of ")
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert [(r["doc_id"], r["paragraph_id"], r["text"], r["stance_model"], r["frames_model"]) for r in rows] == [
        ("a-1", "x1", "Strikes hit the port.", "majority", "majority"),
        ("a-2", "x2", "Talks resume.", "majority", "majority"),
    ]


def test_the_cli_labels_standard_input(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=io.BytesIO(DOCUMENT.encode("utf-8"))))
    assert cli.main(["predict", str(run_dir), "-", "--no-progress"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["doc_id"], r["paragraph_id"]) for r in rows] == [("stdin", "stdin-001"), ("stdin", "stdin-002"),
                                                                ("stdin", "stdin-003")]
    assert list(tmp_path.iterdir()) == []  # the spooled copy is gone


# --- memory ------------------------------------------------------------------------------------------------------


# 4 chunks against 40: holding every row would make the large run's peak about ten times the small one's.
SMALL, LARGE, CHUNK = 1_000, 10_000, 250


@pytest.fixture(scope="module")
def peaks(run_dir, tmp_path_factory):
    """Peak traced memory of predict_files on SMALL and on LARGE short rows (in CHUNK-row chunks), and what stays after."""
    tmp = tmp_path_factory.mktemp("memory")
    warm = write_table(tmp / "warm.jsonl", TEXTS)
    label(run_dir, [warm], out=tmp / "warm.out.jsonl")  # imports and first-call caches outside the measurement
    measured = {}
    for n in (SMALL, LARGE):
        table = tmp / f"rows{n}.jsonl"
        with open(table, "w", encoding="utf-8") as handle:
            for i in range(n):
                handle.write(json.dumps({"id": f"r{i}", "text": f"Strikes near Tehran, report {i}."}) + "\n")
        out = tmp / f"labels{n}.jsonl"
        tracemalloc.start()
        try:
            summary = label(run_dir, [table], out=out, chunk_size=CHUNK)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert summary.paragraphs == n
        with open(out, "rb") as handle:
            assert sum(1 for _ in handle) == n
        measured[n] = {"peak": peak, "retained": current}
    return measured


def test_memory_stays_bounded_on_large_input(peaks):
    small, large = peaks[SMALL]["peak"], peaks[LARGE]["peak"]
    assert large < 30e6, f"peak {large / 1e6:.1f} MB"
    assert large < 3 * small, f"peak {large / 1e6:.1f} MB on {LARGE} rows vs {small / 1e6:.1f} MB on {SMALL}"


def test_memory_is_flat_in_the_number_of_rows(peaks):
    small, large = peaks[SMALL], peaks[LARGE]
    assert large["peak"] < 1.25 * small["peak"], f"{large['peak'] / 1e6:.1f} MB vs {small['peak'] / 1e6:.1f} MB"
    assert large["retained"] < 1e6, f"{large['retained'] / 1e6:.1f} MB still allocated after predict_files returned"


# --- confidence and review ---------------------------------------------------------------------------------------


def test_min_confidence_marks_rows_and_writes_a_queue_that_annotate_takes(run_dir, tmp_path):
    from experiments.annotate import start_session
    from experiments.paths import DataDir

    out = tmp_path / "labels.jsonl"
    queue = tmp_path / "queue.jsonl"
    summary = label(run_dir, [ten_rows(tmp_path)], out=out, min_confidence=0.99, review_queue=queue, chunk_size=3)
    rows = read_jsonl(out)
    flagged = [r for r in rows if r["needs_review"]]
    assert all(r["needs_review"] == (r["confidence"] < 0.99) for r in rows)
    assert summary.needs_review == len(flagged) > 0
    queued = read_jsonl(queue)
    assert [q["id"] for q in queued] == [r["paragraph_id"] for r in flagged]
    assert leftovers(tmp_path) == []
    data = DataDir(tmp_path / "data")
    (tmp_path / "data").mkdir()
    shutil.copy(paths.PARAGRAPHS, data.paragraphs)
    session = start_session("maryam", load_codebook(), data, source=[str(queue)], progress=False)
    corpus = {p["id"]: p for p in map(json.loads, data.paragraphs.read_text(encoding="utf-8").splitlines())}
    assert [corpus[pid]["text"] for pid in session.queue] == [q["text"] for q in queued]


def test_a_review_queue_without_min_confidence_is_refused(run_dir, tmp_path):
    with pytest.raises(UserError) as excinfo:
        label(run_dir, [ten_rows(tmp_path)], review_queue=tmp_path / "q.jsonl")
    assert str(excinfo.value) == "--review-queue needs --min-confidence P: it collects the rows below P"


def test_each_row_carries_its_similarity_to_the_training_paragraphs(run_dir, tmp_path):
    corpus_text = next(iter(json.loads(line) for line in paths.PARAGRAPHS.read_text(encoding="utf-8").splitlines()))["text"]
    out = tmp_path / "labels.jsonl"
    label(run_dir, [write_table(tmp_path / "t.jsonl", [corpus_text, "Zebras graze quietly on the savanna at dawn."])], out=out)
    same, unrelated = read_jsonl(out)
    assert same["train_similarity"] == pytest.approx(1.0, abs=1e-3) and same["unfamiliar"] is False
    assert unrelated["train_similarity"] < 0.3 and unrelated["unfamiliar"] is True


# --- Parquet, in and out -----------------------------------------------------------------------------------------


def flat_from_jsonl(row: dict) -> dict:
    """A JSON Lines row in the Parquet (and CSV) column layout."""
    flat = {k: row[k] for k in ("doc_id", "paragraph_id", "hash", "text", "stance")}
    flat.update({f"p_stance_{k}": v for k, v in row["stance_probs"].items()})
    flat["frames"] = row["frames"]
    flat.update({f"p_frame_{k}": v for k, v in row["frame_probs"].items()})
    for key in ("stance_confidence", "frames_confidence", "confidence", "train_similarity", "unfamiliar",
                "needs_review", "codebook_version", "run"):
        if key in row:
            flat[key] = row[key]
    flat.update({f"{task}_model": name for task, name in row["models"].items()})
    return flat


def test_parquet_output_has_the_csv_columns_typed_and_the_jsonl_values(run_dir, predictor, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = ten_rows(tmp_path)
    label(run_dir, [table], out=tmp_path / "labels.jsonl", chunk_size=3)
    out = tmp_path / "labels.parquet"
    summary = label(run_dir, [table], out=out, chunk_size=3)  # the format comes from the suffix
    assert summary.paragraphs == 10
    written = pq.read_table(out)
    assert written.schema.names == csv_header(predictor)
    types = dict(zip(written.schema.names, written.schema.types))
    assert types["frames"] == pa.list_(pa.string()) and types["unfamiliar"] == pa.bool_()
    assert types["p_stance_favor"] == types["confidence"] == types["train_similarity"] == pa.float64()
    assert types["text"] == types["stance"] == types["run"] == types["frames_model"] == pa.string()
    assert written.to_pylist() == [flat_from_jsonl(row) for row in read_jsonl(tmp_path / "labels.jsonl")]
    assert leftovers(tmp_path) == []
    other = tmp_path / "labels.bin"
    label(run_dir, [table], out=other, fmt="parquet")
    assert pq.read_table(other).equals(written)


def test_parquet_output_with_min_confidence_has_needs_review(run_dir, tmp_path):
    import pyarrow.parquet as pq

    table = ten_rows(tmp_path)
    label(run_dir, [table], out=tmp_path / "labels.jsonl", min_confidence=0.99)
    label(run_dir, [table], out=tmp_path / "labels.parquet", min_confidence=0.99)
    written = pq.read_table(tmp_path / "labels.parquet")
    assert written.schema.names[-5:] == ["needs_review", "codebook_version", "run", "stance_model", "frames_model"]
    assert written.to_pylist() == [flat_from_jsonl(row) for row in read_jsonl(tmp_path / "labels.jsonl")]


def test_the_parquet_file_does_not_depend_on_the_chunk_size(run_dir, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from experiments import predict

    monkeypatch.setattr(predict, "ROW_GROUP_ROWS", 4)
    table = ten_rows(tmp_path)
    label(run_dir, [table], out=tmp_path / "one.parquet", chunk_size=1)
    label(run_dir, [table], out=tmp_path / "many.parquet", chunk_size=1000)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "many.parquet").read_bytes()
    meta = pq.ParquetFile(tmp_path / "one.parquet").metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [4, 4, 2]


def test_an_interrupted_parquet_run_resumes_after_the_last_finished_chunk(run_dir, tmp_path, monkeypatch):
    table = ten_rows(tmp_path)
    reference = tmp_path / "reference.parquet"
    label(run_dir, [table], out=reference, chunk_size=2)
    out = tmp_path / "labels.parquet"
    interrupted(run_dir, table, out, monkeypatch)
    assert not out.exists()
    assert leftovers(tmp_path) == [".labels.parquet.partial", ".labels.parquet.partial.json"]
    assert json.loads((tmp_path / ".labels.parquet.partial.json").read_text(encoding="utf-8"))["rows"] == 4
    with open(tmp_path / ".labels.parquet.partial", "ab") as handle:
        handle.write(b"\xff\xff\xff\xff\x10\x00")  # a record batch cut off after the last saved state
    calls = Calls(monkeypatch)
    summary = label(run_dir, [table], out=out, chunk_size=2)
    assert summary.resumed_from == 4 and summary.paragraphs == 10
    assert calls.sizes == [2, 2, 2]
    assert out.read_bytes() == reference.read_bytes()
    assert leftovers(tmp_path) == []


def test_a_run_killed_while_writing_the_parquet_file_finishes_without_labelling_again(run_dir, tmp_path, monkeypatch):
    from experiments import predict

    table = ten_rows(tmp_path)
    reference = tmp_path / "reference.parquet"
    label(run_dir, [table], out=reference)
    out = tmp_path / "labels.parquet"
    with monkeypatch.context() as patch:
        patch.setattr(predict, "_stream_to_parquet", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            label(run_dir, [table], out=out)
    calls = Calls(monkeypatch)
    summary = label(run_dir, [table], out=out)
    assert summary.resumed_from == 10 and calls.sizes == []
    assert out.read_bytes() == reference.read_bytes()
    assert leftovers(tmp_path) == []


def test_parquet_input_is_labelled_like_the_same_rows_in_jsonl(run_dir, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = [f"{TEXTS[i % len(TEXTS)]} Report {i}." for i in range(10)]
    pq.write_table(pa.table({"text": texts, "id": [f"rows:{i + 1}" for i in range(10)]}), tmp_path / "rows.parquet")
    from_parquet = label(run_dir, [tmp_path / "rows.parquet"], out=tmp_path / "a.jsonl")
    from_jsonl = label(run_dir, [ten_rows(tmp_path)], out=tmp_path / "b.jsonl")
    assert from_parquet.paragraphs == from_jsonl.paragraphs == 10
    assert read_jsonl(tmp_path / "a.jsonl") == read_jsonl(tmp_path / "b.jsonl")


@pytest.mark.parametrize("case", ["parquet to stdout", "out is an input", "out inside an input folder",
                                  "out is a folder", "queue is an input", "ray option with local"])
def test_bad_outputs_exit_2_with_one_line_and_write_nothing(run_dir, tmp_path, capsys, case):
    folder = tmp_path / "in"
    folder.mkdir()
    table = ten_rows(folder)
    before = sorted(tmp_path.rglob("*"))
    args, message = {
        "parquet to stdout": ([str(table), "--format", "parquet"],
                              "--format parquet needs --out FILE.parquet: Parquet is not written to standard output"),
        "out is an input": ([str(table), "--out", str(table)],
                            f"--out {table}: is one of the inputs; write the output somewhere else"),
        "out inside an input folder": ([str(folder), "--out", str(folder / "labels.jsonl")],
                                       f"--out {folder / 'labels.jsonl'}: is inside the input folder {folder}; "
                                       "write the output outside it"),
        "out is a folder": ([str(table), "--out", str(tmp_path)],
                            f"--out {tmp_path}: is a folder; name a file (--engine ray writes a folder of shards)"),
        "queue is an input": ([str(table), "--out", str(tmp_path / "labels.jsonl"), "--min-confidence", "0.5",
                               "--review-queue", str(table)],
                              f"--review-queue {table}: is one of the inputs; write the output somewhere else"),
        "ray option with local": ([str(table), "--num-workers", "2"],
                                  "--num-workers works with --engine ray; the local engine takes --chunk-size"),
    }[case]
    assert cli.main(["predict", str(run_dir), *args, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {message}\n" and captured.out == ""
    assert sorted(tmp_path.rglob("*")) == before


def test_labelling_new_text_reads_the_embedding_cache_but_adds_nothing_to_it(run_dir, tmp_path, monkeypatch, codebook):
    """An archive is seen once: caching its vectors would grow the file and memory with every paragraph."""
    from experiments.models import build_model, encoders
    from experiments.predict import TaskModel

    monkeypatch.setenv("EXPERIMENTS_CACHE", str(tmp_path))
    monkeypatch.setattr(encoders, "_CACHES", {})
    labels = [label.name for label in codebook.stance.labels]
    frame_labels = [label.name for label in codebook.frames.labels]
    zeroshot = build_model("zeroshot_codebook", task="stance", seed=0, labels=labels, device="cpu").fit(TEXTS)
    frames = build_model("zeroshot_codebook", task="frames", seed=0, labels=frame_labels, device="cpu").fit(TEXTS)
    [cache_file] = (tmp_path / "embeddings").glob("*.npz")  # the codebook's prototypes, cached by fit
    before = cache_file.read_bytes()
    predictor = Predictor(run_dir, {"stance": TaskModel("stance", "zeroshot_codebook", labels, zeroshot, {}),
                                    "frames": TaskModel("frames", "zeroshot_codebook", frame_labels, frames, {})})
    encoded: list[str] = []
    encode = encoders.SentenceEmbedder.encode
    monkeypatch.setattr(encoders.SentenceEmbedder, "encode", lambda self, texts: encoded.extend(texts) or encode(self, texts))
    new = [f"{t} Archive row {i}." for i, t in enumerate(TEXTS)]
    rows = predictor.predict(new)
    assert [row["stance"] in labels for row in rows] == [True] * len(TEXTS)
    assert cache_file.read_bytes() == before
    assert sorted(encoded) == sorted(new)  # both tasks' models, and novelty off: each text embedded once
    zeroshot.predict_proba(TEXTS)  # outside predict, what a model embeds is cached as before
    assert cache_file.read_bytes() != before


def test_the_stance_and_frames_tfidf_models_compute_the_features_of_a_chunk_once(run_dir, monkeypatch):
    from experiments.models.features import TfidfFeatures

    predictor = Predictor.from_run(run_dir, model="tfidf_logreg", similarity=False)
    alone = {task: Predictor(run_dir, {task: m}).predict(TEXTS) for task, m in predictor.models.items()}
    calls = []
    transform = TfidfFeatures.transform
    monkeypatch.setattr(TfidfFeatures, "transform", lambda self, X: calls.append(len(X)) or transform(self, X))
    rows = predictor.predict(TEXTS)
    assert calls == [len(TEXTS)]
    assert [r["stance_probs"] for r in rows] == [r["stance_probs"] for r in alone["stance"]]
    assert [r["frame_probs"] for r in rows] == [r["frame_probs"] for r in alone["frames"]]
