"""``predict --engine ray``: the local engine's labels from a pool of Ray actors, resumable, behind the same checks.

Ray runs in local mode with 2 CPUs: one session for the module (started by
the ``ray_session`` fixture and shut down after the last test), plus one
that a killed ``predict`` command starts in a child process of its own.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from experiments import cli, distributed
from experiments.distributed import MANIFEST, RAY_LOG, plan_shards, predict_ray
from experiments.errors import UserError
from experiments.inputs import open_inputs
from experiments.predict import Predictor, csv_header, predict_files
from test_predict import DOCUMENT, TEXTS, no_models

ROWS = 3_000
SHARD_ROWS, BATCH = 500, 100  # 6 shards of 5 model calls each


@pytest.fixture(scope="module")
def ray_session():
    """Ray in local mode with 2 CPUs for the module; ``predict_ray`` uses it and leaves it running."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """A JSON Lines table of ROWS paragraphs."""
    path = tmp_path_factory.mktemp("ray_input") / "rows.jsonl"
    places = ["Tehran", "Isfahan", "Oman", "Geneva", "Vienna"]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(ROWS):
            text = f"{TEXTS[i % len(TEXTS)]} Report {i} from {places[i % len(places)]}."
            handle.write(json.dumps({"id": f"r{i}", "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def reference(run_dir, table, tmp_path_factory) -> pa.Table:
    """The local engine's Parquet output for ``table`` (TF-IDF models, no similarity)."""
    out = tmp_path_factory.mktemp("ray_reference") / "labels.parquet"
    with open_inputs([str(table)]) as inputs:
        predict_files(run_dir, inputs, out=out, progress=False, similarity=False)
    return pq.read_table(out)


def ray_label(run_dir, names, out: Path, **kwargs):
    kwargs = {"num_workers": 2, "batch_size": BATCH, "shard_rows": SHARD_ROWS, "progress": False,
              "similarity": False, **kwargs}
    with open_inputs([str(n) for n in names]) as inputs:
        return predict_ray(run_dir, inputs, out, **kwargs)


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text(encoding="utf-8"))


def parts(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("part-"))


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


# --- the same labels as the local engine -------------------------------------------------------------------------


def test_ray_gives_exactly_the_local_engines_rows_on_3000_paragraphs(ray_session, run_dir, table, reference, tmp_path,
                                                                     monkeypatch):
    out = tmp_path / "shards"
    summary = ray_label(run_dir, [table], out)
    assert summary.paragraphs == ROWS and summary.resumed_from == 0 and summary.out == out
    assert summary.models == Predictor.from_run(run_dir).describe()
    written = pq.read_table(out)  # the folder reads as one table: the manifest and the log are skipped
    assert written.num_rows == ROWS
    assert written.schema == reference.schema
    assert written.equals(reference)
    assert parts(out) == [f"part-{i:05d}.parquet" for i in range(6)]
    assert [pq.read_table(out / name).num_rows for name in parts(out)] == [SHARD_ROWS] * 6
    saved = manifest(out)
    assert saved["complete"] is True and saved["engine"] == "ray" and saved["rows"] == ROWS
    assert saved["columns"] == reference.schema.names and saved["run"] == str(run_dir)
    assert saved["settings"] == {"address": None, "num_workers": 2, "batch_size": BATCH}
    assert saved["job"]["models"] == summary.models and saved["job"]["shard_rows"] == SHARD_ROWS
    assert saved["job"]["inputs"] == [{"file": str(table.resolve()), "kind": "jsonl", "bytes": table.stat().st_size,
                                       "mtime": table.stat().st_mtime_ns}]
    assert [(s["file"], s["start"], s["rows"], s["status"]) for s in saved["shards"]] == [
        (f"part-{i:05d}.parquet", i * SHARD_ROWS, SHARD_ROWS, "done") for i in range(6)]
    assert sorted(p.name for p in out.iterdir()) == [RAY_LOG, MANIFEST, *parts(out)]

    # the same command again finds every shard done and starts nothing
    monkeypatch.setattr(distributed, "_ray_session", lambda *args: pytest.fail("Ray was started for a finished job"))
    again = ray_label(run_dir, [table], out, num_workers=1)  # engine settings do not make another job
    assert again.resumed_from == ROWS and again.paragraphs == ROWS
    assert pq.read_table(out).equals(reference)


def test_documents_tables_and_parquet_split_across_shards_match_the_local_engine(ray_session, run_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"Op Ed {i}.txt").write_text(DOCUMENT.replace("Monday", f"day {i}"), encoding="utf-8")
    (folder / "notes.md").write_text("# Notes\n\nExiles call on the world to act.\n\nTalks resume in Oman.\n",
                                     encoding="utf-8")
    (folder / "rows.csv").write_text("id,text\n" + "".join(f"c{i},\"{t}\"\n" for i, t in enumerate(TEXTS)),
                                     encoding="utf-8")
    pq.write_table(pa.table({"text": [f"{t} (parquet {i})" for i, t in enumerate(TEXTS * 3)]}), folder / "rows.parquet",
                   row_group_size=4)
    local = tmp_path / "local.parquet"
    with open_inputs([str(folder)]) as inputs:
        predict_files(run_dir, inputs, out=local, progress=False, similarity=False, min_confidence=0.6)
    out = tmp_path / "shards"
    # shards of 4 paragraphs start inside documents and inside the Parquet file's row groups
    summary = ray_label(run_dir, [folder], out, shard_rows=4, batch_size=3, min_confidence=0.6)
    expected = pq.read_table(local)
    assert pq.read_table(out).equals(expected)
    assert expected.num_rows == summary.paragraphs == 3 * 3 + 3 + 5 + 15
    assert len(parts(out)) == 8
    assert summary.needs_review == sum(expected.column("needs_review").to_pylist()) > 0


def test_similarity_to_the_training_paragraphs_matches_the_local_engine(ray_session, run_dir, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS + ["Zebras graze quietly at dawn."]),
                    encoding="utf-8")
    local = tmp_path / "local.parquet"
    with open_inputs([str(rows)]) as inputs:
        expected = predict_files(run_dir, inputs, out=local, progress=False)
    out = tmp_path / "shards"
    summary = ray_label(run_dir, [rows], out, similarity=True, num_workers=1, batch_size=256, shard_rows=256)
    assert pq.read_table(out).equals(pq.read_table(local))
    assert "train_similarity" in pq.read_table(out).column_names
    assert summary.unfamiliar == expected.unfamiliar > 0
    assert summary.novelty_warning == expected.novelty_warning


# --- a killed worker, a killed command ---------------------------------------------------------------------------


def test_a_worker_killed_mid_shard_loses_and_repeats_no_row(ray_session, run_dir, table, reference, tmp_path,
                                                            monkeypatch):
    marker = tmp_path / "killed"
    # the first actor to reach its 3rd model call (in the middle of a 5-call shard) exits abruptly, once
    monkeypatch.setattr(distributed, "_CRASH_ONCE", (str(marker), 3))
    out = tmp_path / "shards"
    summary = ray_label(run_dir, [table], out)
    assert marker.exists(), "no worker was killed"
    assert summary.paragraphs == ROWS
    written = pq.read_table(out)
    assert written.num_rows == ROWS
    assert len(set(written.column("paragraph_id").to_pylist())) == ROWS
    assert written.equals(reference)
    assert all(s["status"] == "done" for s in manifest(out)["shards"]) and leftovers(out) == []


KILLABLE = """\
import sys, time
from experiments import cli, distributed

write = distributed.write_text_atomic

def write_then_hang(path, text):
    write(path, text)
    if path.name == distributed.MANIFEST and '"done"' in text:
        time.sleep(3600)  # a shard is recorded: wait here to be killed

distributed.write_text_atomic = write_then_hang
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.slow  # a second Ray in a child process: about a minute on 2 busy cores
def test_a_killed_command_resumes_skipping_the_finished_shards(ray_session, run_dir, table, reference, tmp_path,
                                                               capfd):
    out = tmp_path / "shards"
    argv = ["predict", str(run_dir), str(table), "--engine", "ray", "--out", str(out), "--num-workers", "2",
            "--shard-rows", str(SHARD_ROWS), "--batch-size", str(BATCH), "--no-similarity", "--no-progress"]
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE, encoding="utf-8")
    log = open(tmp_path / "killed.log", "wb")
    child = subprocess.Popen([sys.executable, str(script), *argv], cwd=Path(__file__).parents[1], stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)  # its own Ray, in its own session
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and child.poll() is None:
            if (out / MANIFEST).exists() and any(s["status"] == "done" for s in manifest(out)["shards"]):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"no shard finished (exit {child.poll()}): {(tmp_path / 'killed.log').read_text()[-2000:]}")
    finally:
        os.killpg(child.pid, signal.SIGKILL)  # the command and the Ray processes it started
        child.wait()
        log.close()
    saved = manifest(out)
    finished = [s for s in saved["shards"] if s["status"] == "done"]
    assert saved["complete"] is False and 1 <= len(finished) < 6
    kept = {s["file"]: (out / s["file"]).stat() for s in finished}
    capfd.readouterr()

    assert cli.main(argv) == 0
    captured = capfd.readouterr()
    done_rows = sum(s["rows"] for s in finished)
    models = "stance: {stance}, frames: {frames}".format(**Predictor.from_run(run_dir).describe())
    assert captured.out == ""  # Ray's own messages went to the log in the output folder
    assert captured.err.splitlines()[0] == (f"{ROWS} paragraphs (resumed after {done_rows}) labelled by {run_dir} "
                                            f"[{models}] -> {out} (Parquet shards and _manifest.json)")
    assert pq.read_table(out).equals(reference)
    for name, stat in kept.items():  # the shards finished before the kill were not labelled again
        assert (out / name).stat().st_ino == stat.st_ino and (out / name).stat().st_mtime_ns == stat.st_mtime_ns
    assert manifest(out)["complete"] is True and leftovers(out) == []


def test_a_shard_written_but_not_recorded_and_a_half_written_one_are_redone(ray_session, run_dir, table, reference,
                                                                            tmp_path):
    out = tmp_path / "shards"
    ray_label(run_dir, [table], out)
    saved = manifest(out)
    for entry in saved["shards"][2:]:
        entry["status"] = "pending"  # killed after part-00002 was renamed, before the manifest recorded it
    (out / MANIFEST).write_text(json.dumps(saved), encoding="utf-8")
    (out / "part-00004.parquet").unlink()
    (out / ".part-00004.parquet.tmp").write_bytes(b"PAR1 half")  # killed while writing
    (out / "part-00005.parquet").write_bytes(b"PAR1 torn")
    summary = ray_label(run_dir, [table], out)
    assert summary.resumed_from == 2 * SHARD_ROWS
    assert pq.read_table(out).equals(reference)
    assert leftovers(out) == []


def test_a_file_changed_after_the_check_is_refused_by_the_worker(ray_session, run_dir, tmp_path, monkeypatch):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    run = distributed._run

    def change_then_run(*args):
        with open(rows, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"text": "Added after the check."}) + "\n")
        return run(*args)

    monkeypatch.setattr(distributed, "_run", change_then_run)
    with pytest.raises(UserError) as excinfo:
        ray_label(run_dir, [rows], tmp_path / "shards")
    assert str(excinfo.value) == f"{rows}: changed or gone since the inputs were checked; run the command again"


def test_a_node_without_the_run_directory_is_named_in_one_line(ray_session, run_dir, tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    run = distributed._run

    def move_then_run(*args):
        copy.rename(tmp_path / "elsewhere")  # the driver has loaded the models; the workers will not find them
        return run(*args)

    monkeypatch.setattr(distributed, "_run", move_then_run)
    with pytest.raises(UserError) as excinfo:
        ray_label(run_dir=copy, names=[rows], out=tmp_path / "shards", num_workers=1)
    message = str(excinfo.value)
    assert message.startswith(f"{copy}: not a run directory (folder not found); pass a directory printed by `run` "
                              "(on Ray node ") and "\n" not in message
    assert message.endswith(": every node needs the run directory at the same path)")


# --- the front door: checked before Ray starts, one line, nothing written ----------------------------------------


def front_door_cases(tmp_path: Path, run_dir: Path) -> dict:
    folder = tmp_path / "in"
    folder.mkdir()
    good = folder / "good.jsonl"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    no_text = tmp_path / "no_text.csv"
    no_text.write_text("id,body\n1,Some text.\n", encoding="utf-8")
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine\n", encoding="utf-8")
    other = tmp_path / "other_job"
    other.mkdir()
    (other / MANIFEST).write_text(json.dumps({"job": {"inputs": []}}), encoding="utf-8")
    a_file = tmp_path / "a_file"
    a_file.write_text("x", encoding="utf-8")
    out = str(tmp_path / "shards")
    ray = ["--engine", "ray"]
    return {
        "csv without the text column": (
            [str(no_text), *ray, "--out", out],
            f"{no_text}: no column 'text' (columns: id, body); name the text column with --text-column"),
        "missing input": ([str(good), str(tmp_path / "gone.txt"), *ray, "--out", out],
                          f"{tmp_path / 'gone.txt'}: no such file or folder"),
        "run without models": ([str(good), *ray, "--out", out], None),
        "unknown model": ([str(good), *ray, "--out", out, "--model", "bert"],
                          f"{run_dir}: no saved model named 'bert'; saved: majority, tfidf_logreg"),
        "no --out": ([str(good), *ray], "--engine ray needs --out FOLDER: it writes Parquet shards and a manifest there"),
        "out is an input": ([str(good), *ray, "--out", str(good)],
                            f"--out {good}: is one of the inputs; write the output somewhere else"),
        "out inside an input folder": ([str(folder), *ray, "--out", str(folder / "shards")],
                                       f"--out {folder / 'shards'}: is inside the input folder {folder}; "
                                       "write the output outside it"),
        "out holds an input": ([str(good), *ray, "--out", str(tmp_path)],
                               f"--out {tmp_path}: holds the input {good}; write the output somewhere else"),
        "out is a file": ([str(good), *ray, "--out", str(a_file)],
                          f"--out {a_file}: is a file; --engine ray writes a folder of Parquet shards, "
                          "name a new or empty folder"),
        "out is another folder": ([str(good), *ray, "--out", str(full)],
                                  f"--out {full}: is not empty and holds no {MANIFEST} of this job; "
                                  "choose another folder or delete it"),
        "out is another job": ([str(good), *ray, "--out", str(other)],
                               f"--out {other}: holds the output of another job (different inputs); "
                               "choose another folder or delete it, or rerun that job's command to resume it"),
        "csv format": ([str(good), *ray, "--out", out, "--format", "csv"],
                       "--format csv: --engine ray writes Parquet shards; leave out --format"),
        "chunk size": ([str(good), *ray, "--out", out, "--chunk-size", "10"],
                       "--chunk-size works with --engine local; with --engine ray, use --batch-size"),
        "review queue": ([str(good), *ray, "--out", out, "--min-confidence", "0.5", "--review-queue",
                          str(tmp_path / "q.jsonl")],
                         "--review-queue works with --engine local; with --engine ray, "
                         "select the needs_review rows from the shards"),
        "batch size 0": ([str(good), *ray, "--out", out, "--batch-size", "0"], "--batch-size must be at least 1"),
        "no workers": ([str(good), *ray, "--out", out, "--num-workers", "0"], "--num-workers must be at least 1"),
        "shard rows 0": ([str(good), *ray, "--out", out, "--shard-rows", "0"], "--shard-rows must be at least 1"),
        "nothing at the address": ([str(good), *ray, "--out", out, "--address", "127.0.0.1:9"], None),
    }


CASES = ["csv without the text column", "missing input", "run without models", "unknown model", "no --out",
         "out is an input", "out inside an input folder", "out holds an input", "out is a file",
         "out is another folder", "out is another job", "csv format", "chunk size", "review queue", "batch size 0",
         "no workers", "shard rows 0", "nothing at the address"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_or_output_exits_2_with_one_line_before_ray_starts(run_dir, tmp_path, capsys, monkeypatch, case):
    def no_ray(*_args):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(distributed, "_ray_session", no_ray)
    args, message = front_door_cases(tmp_path, run_dir)[case]
    if case == "run without models":
        import shutil

        bare = tmp_path / "bare_run"
        shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("models"))
        run, message = bare, no_models(bare)
    else:
        run = run_dir
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert cli.main(["predict", str(run), *args, "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("error: ")
    if message is None:  # nothing listens at 127.0.0.1:9
        assert captured.err.startswith("error: --address 127.0.0.1:9: no Ray cluster answers there (")
        assert captured.err.endswith("start one with `ray start --head`, which prints its address, "
                                     "or leave out --address to run on this machine\n")
    else:
        assert captured.err == f"error: {message}\n"
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


def test_an_unfinished_job_is_not_touched_by_a_bad_rerun(run_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(distributed, "_ray_session", lambda *args: pytest.fail("Ray was started"))
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    out = tmp_path / "shards"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"job": {}, "shards": []}), encoding="utf-8")
    (out / "part-00000.parquet").write_bytes(b"PAR1")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    missing = tmp_path / "missing.txt"
    assert cli.main(["predict", str(run_dir), str(good), str(missing), "--engine", "ray", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {missing}: no such file or folder\n"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --- shards ------------------------------------------------------------------------------------------------------


def test_shards_are_fixed_blocks_of_rows_in_input_order_across_files():
    files = [(Path(f"{name}"), kind, name) for name, kind in
             [("a.txt", "document"), ("b.csv", "csv"), ("c.parquet", "parquet"), ("d.txt", "document")]]
    shards = plan_shards(files, [3, 10, 1, 2], 4)
    assert [(s.index, s.start, s.rows, s.name) for s in shards] == [
        (0, 0, 4, "part-00000.parquet"), (1, 4, 4, "part-00001.parquet"), (2, 8, 4, "part-00002.parquet"),
        (3, 12, 4, "part-00003.parquet")]
    assert [[(Path(seg[0]).name, seg[3], seg[4]) for seg in s.segments] for s in shards] == [
        [("a.txt", 0, 3), ("b.csv", 0, 1)], [("b.csv", 1, 5)], [("b.csv", 5, 9)],
        [("b.csv", 9, 10), ("c.parquet", 0, 1), ("d.txt", 0, 2)]]
    assert plan_shards(files, [3, 10, 1, 2], 100)[0].rows == 16


def test_the_parquet_columns_are_the_csv_header(run_dir):
    predictor = Predictor.from_run(run_dir)
    assert distributed.arrow_schema(predictor).names == csv_header(predictor)
