"""The annotation session without the web server: queue orders, label/skip/undo records,
resuming after a restart, durability of the append-only files, wrong input, and adding
new documents to the corpus. Everything runs on a tiny corpus in tmp_path."""

from __future__ import annotations

import json
import math
import multiprocessing
import threading
from pathlib import Path

import pytest

from experiments.annotate import Session, order_queue, read_corpus, start_session, uncertainty
from experiments.annotations import Annotation, check_annotator_name, derive_gold, latest_labels
from experiments.corpus import build_corpus, text_hash
from experiments.errors import UserError
from experiments.io import append_jsonl
from experiments.paths import DataDir

STANCES = ["favor", "against", "neutral", "none"]
FRAMES = ["humanitarian", "security", "sovereignty", "regime_legitimacy", "resistance", "gender", "economic"]

# (id, doc_id, position, kind, text): two short documents, in reading order.
ROWS = [
    ("d1-001", "d1", 1, "headline", "Strikes on Iran Condemned"),
    ("d1-002", "d1", 2, "body", "The union rejected any foreign war on Iran."),
    ("d1-003", "d1", 3, "body", "Sanctions hurt ordinary families more than the state."),
    ("d2-001", "d2", 1, "headline", "Exiles Ask the UN to Act"),
    ("d2-002", "d2", 2, "body", "The rally in Paris called for international pressure."),
]
IDS = [row[0] for row in ROWS]
HASH = {pid: text_hash(text) for pid, _, _, _, text in ROWS}

NAME_MESSAGE = ("annotator name {!r} is not allowed; use 1-40 letters, digits, '_' or '-', "
                "starting with a letter or digit (e.g. --annotator maryam)")


def paragraph(pid, doc, position, kind, text):
    return {"id": pid, "doc_id": doc, "position": position, "kind": kind, "text": text,
            "hash": text_hash(text), "n_words": len(text.split())}


def make_data(root: Path, rows=ROWS) -> DataDir:
    root.mkdir(parents=True, exist_ok=True)
    (root / "paragraphs.jsonl").write_text("".join(json.dumps(paragraph(*row)) + "\n" for row in rows),
                                           encoding="utf-8")
    return DataDir(root)


@pytest.fixture
def data(tmp_path) -> DataDir:
    return make_data(tmp_path / "data")


def lines(path: Path) -> list[dict]:
    """Every line of a JSON Lines file, parsed strictly (a bad line fails the test)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def suggestion(stance: str, frames: list[str], p: float = 0.7) -> dict:
    return {
        "stance": stance,
        "stance_probs": {s: (p if s == stance else round((1 - p) / 3, 6)) for s in STANCES},
        "frames": list(frames),
        "frame_probs": {f: (0.8 if f in frames else 0.1) for f in FRAMES},
    }


def session(data: DataDir, codebook, name="maryam", queue=None, suggestions=None, info=None) -> Session:
    return Session(name, codebook, data, list(IDS if queue is None else queue), suggestions, info)


def label_current(s: Session, stance="none", frames=(), note="") -> dict:
    p = s.state()["paragraph"]
    return s.label(p["id"], p["hash"], stance, list(frames), note)


# --- queue orders -------------------------------------------------------------------------


def test_document_order_keeps_corpus_order(data, codebook):
    assert order_queue(IDS, "document") == IDS
    s = start_session("maryam", codebook, data, progress=False)
    assert s.queue == IDS
    assert s.state()["paragraph"]["id"] == "d1-001"


def test_random_order_is_a_permutation_fixed_by_the_seed():
    ids = [f"p{i:02d}" for i in range(20)]
    first = order_queue(ids, "random", seed=3)
    assert sorted(first) == sorted(ids) and len(first) == len(ids)
    assert first != ids
    assert order_queue(ids, "random", seed=3) == first
    assert order_queue(ids, "random", seed=4) != first


def test_random_order_through_start_session(data, codebook):
    a = start_session("maryam", codebook, data, order="random", seed=1, progress=False)
    b = start_session("maryam", codebook, data, order="random", seed=1, progress=False)
    assert a.queue == b.queue == order_queue(IDS, "random", seed=1)
    assert sorted(a.queue) == sorted(IDS)


def test_uncertainty_is_one_for_uniform_and_zero_for_one_hot():
    uniform = {"stance_probs": {s: 0.25 for s in STANCES}, "frame_probs": {f: 0.5 for f in FRAMES}}
    one_hot = {"stance_probs": {s: float(s == "against") for s in STANCES},
               "frame_probs": {f: float(f == "security") for f in FRAMES}}
    assert uncertainty(uniform) == pytest.approx(1.0)
    assert uncertainty(one_hot) == pytest.approx(0.0, abs=1e-9)


def test_uncertainty_middle_case_is_the_documented_formula():
    # Mean of (stance entropy / log 4) and (mean binary frame entropy / log 2).
    prediction = {"stance_probs": {"favor": 0.7, "against": 0.1, "neutral": 0.1, "none": 0.1},
                  "frame_probs": {"humanitarian": 0.5, "security": 0.2, "sovereignty": 0.0, "regime_legitimacy": 1.0,
                                  "resistance": 0.0, "gender": 0.0, "economic": 0.0}}
    stance = -(0.7 * math.log(0.7) + 3 * 0.1 * math.log(0.1)) / math.log(4)
    binary = lambda p: -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)
    frames = (binary(0.5) + binary(0.2) + 0 + 0 + 0 + 0 + 0) / 7
    expected = (stance + frames) / 2
    assert expected == pytest.approx(0.4622, abs=1e-4)  # (0.6784 + (1 + 0.7219) / 7) / 2
    assert uncertainty(prediction) == pytest.approx(expected, abs=1e-9)


def test_uncertain_order_serves_the_least_certain_first(data, codebook):
    suggestions = {
        "d1-001": suggestion("none", [], p=0.97),
        "d1-002": {"stance": "favor", "stance_probs": {s: 0.25 for s in STANCES},
                   "frames": [], "frame_probs": {f: 0.5 for f in FRAMES}},  # uncertainty 1.0
        "d1-003": suggestion("against", ["economic"], p=0.6),
        "d2-001": suggestion("neutral", [], p=0.9),
        "d2-002": suggestion("favor", ["security"], p=0.4),
    }
    scores = {pid: uncertainty(s) for pid, s in suggestions.items()}
    expected = sorted(IDS, key=lambda pid: -scores[pid])
    assert expected[0] == "d1-002" and expected[-1] == "d1-001"
    assert order_queue(IDS, "uncertain", suggestions=suggestions) == expected
    s = session(data, codebook, queue=expected, suggestions=suggestions)
    assert s.state()["paragraph"]["id"] == "d1-002"
    assert s.state()["paragraph"]["suggestion"] == suggestions["d1-002"]


def test_uncertain_order_needs_a_model_and_keeps_document_order_until_one_suggests(data, codebook):
    with pytest.raises(UserError) as exc:
        start_session("maryam", codebook, data, order="uncertain", progress=False)
    assert str(exc.value) == "--order uncertain needs a model: add --suggest RUN_DIR or --learn MODEL"
    for missing in (None, {}):
        assert order_queue(IDS, "uncertain", suggestions=missing) == IDS


def test_unknown_order_is_refused(data, codebook):
    with pytest.raises(UserError) as exc:
        order_queue(IDS, "alphabetical")
    assert str(exc.value) == "--order 'alphabetical': use one of document, random, uncertain"
    with pytest.raises(UserError) as exc:
        start_session("maryam", codebook, data, order="alphabetical", progress=False)
    assert str(exc.value) == "--order 'alphabetical': use one of document, random, uncertain"
    assert not data.annotations.exists()


# --- label, skip, undo --------------------------------------------------------------------


def test_label_appends_one_record_and_moves_on(data, codebook):
    s = session(data, codebook)
    first = s.state()
    assert first["paragraph"]["id"] == "d1-001"
    assert first["progress"] == {"done": 0, "skipped": 0, "left": 5, "total": 5}
    assert first["can_undo"] is False and first["paragraph"]["previous"] is None

    after = s.label("d1-001", HASH["d1-001"], "against", ["economic", "security", "humanitarian", "security"],
                    "  foreign strikes  ")
    records = lines(s.file)
    assert len(records) == 1
    record = records[0]
    assert set(record) == {"paragraph_id", "hash", "annotator", "action", "stance", "frames", "rationale", "note",
                           "timestamp", "seconds"}
    assert record["paragraph_id"] == "d1-001" and record["hash"] == HASH["d1-001"]
    assert record["annotator"] == "maryam" and record["action"] == "label"
    assert record["stance"] == "against"
    assert record["frames"] == ["humanitarian", "security", "economic"]  # codebook order, no duplicates
    assert record["note"] == "foreign strikes"
    assert isinstance(record["seconds"], float) and 0 <= record["seconds"] < 60
    assert "suggestion" not in record and "accepted_suggestion" not in record  # no model, nothing to accept
    Annotation.model_validate(record)

    assert after["paragraph"]["id"] == "d1-002"
    assert after["progress"] == {"done": 1, "skipped": 0, "left": 4, "total": 5}
    assert after["can_undo"] is True
    assert s.file == data.annotations / "maryam.jsonl"


def test_state_shows_the_paragraph_in_its_document(data, codebook):
    s = session(data, codebook)
    label_current(s)
    p = s.state()["paragraph"]
    assert p["id"] == "d1-002" and p["doc_id"] == "d1" and p["kind"] == "body"
    assert p["text"] == ROWS[1][4] and p["hash"] == HASH["d1-002"]
    assert p["position"] == 2 and p["doc_size"] == 3
    assert p["title"] == "Strikes on Iran Condemned"  # the document's first headline
    assert p["before"] == {"id": "d1-001", "doc_id": "d1", "text": ROWS[0][4], "kind": "headline"}
    assert p["after"] == {"id": "d1-003", "doc_id": "d1", "text": ROWS[2][4], "kind": "body"}
    assert p["revisit"] is False and p["suggestion"] is None


@pytest.mark.parametrize(
    ("stance", "frames", "accepted"),
    [
        ("against", ["security", "humanitarian"], True),  # same labels, other order
        ("against", ["humanitarian"], False),  # a frame dropped
        ("against", ["humanitarian", "security", "gender"], False),  # a frame added
        ("favor", ["humanitarian", "security"], False),  # stance changed
    ],
)
def test_label_records_whether_the_suggestion_was_accepted(data, codebook, stance, frames, accepted):
    proposal = suggestion("against", ["humanitarian", "security"])
    info = {"run": "results/run-1", "models": {"stance": "tfidf_lr", "frames": "tfidf_lr"}, "codebook_version": "1.0.0"}
    s = session(data, codebook, suggestions={"d1-001": proposal}, info=info)
    assert s.state()["paragraph"]["suggestion"] == proposal
    assert s.state()["suggest"] == info
    s.label("d1-001", HASH["d1-001"], stance, frames)
    [record] = lines(s.file)
    assert record["accepted_suggestion"] is accepted
    assert record["suggestion"] == {**info, **proposal}
    assert record["suggestion"]["stance_probs"] == proposal["stance_probs"]
    assert record["suggestion"]["frame_probs"] == proposal["frame_probs"]
    assert "seconds" in record
    Annotation.model_validate(record)


def test_skip_appends_one_record_and_counts_as_skipped(data, codebook):
    s = session(data, codebook)
    s.state()
    after = s.skip("d1-001", HASH["d1-001"], " unclear ")
    [record] = lines(s.file)
    assert record["action"] == "skip" and record["paragraph_id"] == "d1-001" and record["hash"] == HASH["d1-001"]
    assert record["note"] == "unclear"
    assert "stance" not in record and record["frames"] == []
    assert "seconds" in record
    Annotation.model_validate(record)
    assert after["paragraph"]["id"] == "d1-002"
    assert after["progress"] == {"done": 0, "skipped": 1, "left": 4, "total": 5}
    assert after["can_undo"] is True


def test_undo_withdraws_the_latest_decision_and_serves_it_again(data, codebook):
    s = session(data, codebook)
    label_current(s, "against", ["security"], "n1")
    label_current(s, "favor", [])
    assert s.state()["paragraph"]["id"] == "d1-003"

    after = s.undo()
    records = lines(s.file)
    assert len(records) == 3
    undo = records[-1]
    assert undo["action"] == "undo" and undo["paragraph_id"] == "d1-002" and undo["hash"] == HASH["d1-002"]
    assert undo["annotator"] == "maryam" and "stance" not in undo and undo["frames"] == []
    Annotation.model_validate(undo)
    assert after["paragraph"]["id"] == "d1-002"
    assert after["paragraph"]["previous"] == {"stance": "favor", "frames": [], "note": "", "rationales": []}
    assert after["progress"] == {"done": 1, "skipped": 0, "left": 4, "total": 5}
    assert after["can_undo"] is True

    # The withdrawn label no longer counts for gold.
    standing = latest_labels(codebook, read_corpus(data), data.annotations)
    assert set(standing) == {"d1-001"}


def test_undo_twice_goes_two_steps_back(data, codebook):
    s = session(data, codebook)
    label_current(s, "against", ["security"], "n1")
    label_current(s, "favor", [])
    s.undo()
    after = s.undo()
    assert after["paragraph"]["id"] == "d1-001"
    assert after["paragraph"]["previous"] == {"stance": "against", "frames": ["security"], "note": "n1", "rationales": []}
    assert after["progress"] == {"done": 0, "skipped": 0, "left": 5, "total": 5}
    assert after["can_undo"] is False
    assert [r["action"] for r in lines(s.file)] == ["label", "label", "undo", "undo"]
    # Relabelling the first brings back the second, before the rest of the queue.
    assert label_current(s, "neutral")["paragraph"]["id"] == "d1-002"
    assert label_current(s, "none")["paragraph"]["id"] == "d1-003"
    assert latest_labels(codebook, read_corpus(data), data.annotations)["d1-001"]["maryam"].stance == "neutral"


def test_undo_of_a_skip(data, codebook):
    s = session(data, codebook)
    s.skip("d1-001", HASH["d1-001"])
    after = s.undo()
    assert after["paragraph"]["id"] == "d1-001" and after["paragraph"]["previous"] is None
    assert after["progress"] == {"done": 0, "skipped": 0, "left": 5, "total": 5}


def test_undo_with_nothing_to_undo_is_refused(data, codebook):
    s = session(data, codebook)
    with pytest.raises(UserError) as exc:
        s.undo()
    assert str(exc.value) == "nothing to undo"
    assert not s.file.exists()
    label_current(s)
    s.undo()
    with pytest.raises(UserError) as exc:
        s.undo()
    assert str(exc.value) == "nothing to undo"
    assert len(lines(s.file)) == 2


def test_skipped_paragraph_comes_back_after_all_others(data, codebook):
    s = session(data, codebook, queue=["d1-001", "d1-002", "d1-003"])
    s.skip("d1-001", HASH["d1-001"])
    s.skip("d1-002", HASH["d1-002"])
    state = label_current(s, "none")
    assert state["paragraph"]["id"] == "d1-001" and state["paragraph"]["revisit"] is True
    assert state["progress"] == {"done": 1, "skipped": 2, "left": 0, "total": 3}
    # Skipping it again sends it behind the other skipped one.
    state = s.skip("d1-001", HASH["d1-001"])
    assert state["paragraph"]["id"] == "d1-002" and state["paragraph"]["revisit"] is True
    state = label_current(s, "favor")
    assert state["paragraph"]["id"] == "d1-001" and state["paragraph"]["revisit"] is True
    state = label_current(s, "against")
    assert state["paragraph"] is None
    assert state["progress"] == {"done": 3, "skipped": 0, "left": 0, "total": 3}


def test_paragraph_is_none_when_everything_is_labelled(data, codebook):
    s = session(data, codebook)
    for _ in IDS:
        state = label_current(s, "none")
    assert state["paragraph"] is None
    assert state["progress"] == {"done": 5, "skipped": 0, "left": 0, "total": 5}
    assert state["can_undo"] is True
    assert len(lines(s.file)) == 5
    assert s.current() == (None, False)


# --- resuming after a restart ---------------------------------------------------------------


def test_restarted_session_has_identical_state_and_continues(data, codebook):
    suggestions = {pid: suggestion("neutral", ["security"]) for pid in IDS}
    info = {"run": "results/run-1"}
    s = session(data, codebook, suggestions=suggestions, info=info)
    label_current(s, "neutral", ["security"])
    s.skip("d1-002", HASH["d1-002"], "later")
    label_current(s, "against", ["economic"], "costs")
    before = s.state()

    restarted = session(data, codebook, suggestions=suggestions, info=info)
    assert restarted.state() == before
    assert restarted.state()["paragraph"]["id"] == "d2-001"
    assert restarted.progress() == {"done": 2, "skipped": 1, "left": 2, "total": 5}
    assert restarted.state()["can_undo"] is True

    label_current(restarted, "none")
    label_current(restarted, "favor")
    state = restarted.state()
    assert state["paragraph"]["id"] == "d1-002" and state["paragraph"]["revisit"] is True
    assert len(lines(restarted.file)) == 5
    # Undo after the restart withdraws the latest decision made before it too.
    restarted.undo()
    assert restarted.state()["paragraph"]["id"] == "d2-002"


def test_restart_after_undo_still_serves_the_undone_paragraph_first(data, codebook):
    s = session(data, codebook)
    label_current(s, "against", ["security"], "n1")
    label_current(s, "favor")
    label_current(s, "none")
    s.undo()
    before = s.state()
    assert before["paragraph"]["id"] == "d1-003"
    restarted = session(data, codebook)
    assert restarted.state() == before

    restarted.undo()
    before = restarted.state()
    assert before["paragraph"]["id"] == "d1-002"
    again = session(data, codebook)
    assert again.state() == before
    assert again.state()["paragraph"]["previous"] == {"stance": "favor", "frames": [], "note": "", "rationales": []}
    assert label_current(again, "favor")["paragraph"]["id"] == "d1-003"


# --- durability ------------------------------------------------------------------------------


def tear(path: Path) -> None:
    """What a kill in the middle of a write leaves: half a JSON line, no newline."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"paragraph_id": "d1-002", "hash": "' + HASH["d1-002"][:7])


def test_torn_last_line_is_ignored_and_replaced_by_the_next_append(data, codebook):
    s = session(data, codebook)
    label_current(s, "against")
    tear(s.file)

    resumed = session(data, codebook)
    state = resumed.state()
    assert state["paragraph"]["id"] == "d1-002"  # the torn label did not count
    assert state["progress"]["done"] == 1
    after = resumed.label("d1-002", HASH["d1-002"], "favor", ["gender"])
    assert after["paragraph"]["id"] == "d1-003"

    raw = s.file.read_text(encoding="utf-8").split("\n")
    assert raw[-1] == ""  # the file ends with a newline
    assert len(raw) == 3  # the unconfirmed half line is gone, the first label kept
    assert Annotation.model_validate(json.loads(raw[0])).stance == "against"
    new = Annotation.model_validate(json.loads(raw[1]))  # the new record is a whole line of its own
    assert (new.paragraph_id, new.stance, new.frames) == ("d1-002", "favor", ["gender"])


def test_a_whole_last_record_without_newline_is_kept(tmp_path):
    path = tmp_path / "hand.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}', encoding="utf-8")  # e.g. saved by an editor without a final newline
    append_jsonl(path, {"c": 3})
    assert path.read_text(encoding="utf-8") == '{"a": 1}\n{"b": 2}\n{"c": 3}\n'


def test_file_with_a_torn_line_stays_readable_after_the_next_append(data, codebook):
    s = session(data, codebook)
    label_current(s, "against")
    tear(s.file)
    resumed = session(data, codebook)
    resumed.label("d1-002", HASH["d1-002"], "favor", [])

    restarted = session(data, codebook)  # raises UserError: maryam.jsonl:2: not valid JSON
    assert restarted.state()["paragraph"]["id"] == "d1-003"
    assert set(latest_labels(codebook, read_corpus(data), data.annotations)) == {"d1-001", "d1-002"}


def test_every_record_written_validates_as_annotation(data, codebook):
    suggestions = {"d1-001": suggestion("against", ["security"]), "d1-003": suggestion("favor", [])}
    s = session(data, codebook, suggestions=suggestions, info={"run": "r"})
    s.state()
    s.label("d1-001", HASH["d1-001"], "against", ["security"], "ok")
    s.skip("d1-002", HASH["d1-002"], "hard")
    s.label("d1-003", HASH["d1-003"], "neutral", ["economic", "humanitarian"])
    s.undo()
    s.label("d1-003", HASH["d1-003"], "favor", [])
    label_current(s, "none")
    records = lines(s.file)
    assert [r["action"] for r in records] == ["label", "skip", "label", "undo", "label", "label"]
    for record in records:
        Annotation.model_validate(record)
    assert [r.get("accepted_suggestion") for r in records] == [True, None, False, None, True, None]
    # derive_gold reads the same file without complaint.
    report = derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications)
    assert {g["id"]: g["stance"] for g in report.gold} == {"d1-001": "against", "d1-003": "favor",
                                                          "d2-001": "none"}


# --- two annotators, concurrent appends --------------------------------------------------------


def test_two_annotators_at_once_write_their_own_files(data, codebook):
    a = session(data, codebook, name="maryam")
    b = session(data, codebook, name="reza")
    for stance_a, stance_b in [("against", "against"), ("favor", "neutral"), ("none", "none")]:
        label_current(a, stance_a)
        label_current(b, stance_b)
    assert [r["annotator"] for r in lines(a.file)] == ["maryam"] * 3
    assert [r["annotator"] for r in lines(b.file)] == ["reza"] * 3
    assert a.file != b.file and a.file.parent == b.file.parent == data.annotations
    assert a.state()["paragraph"]["id"] == b.state()["paragraph"]["id"] == "d2-001"
    b.undo()
    assert a.state()["paragraph"]["id"] == "d2-001" and b.state()["paragraph"]["id"] == "d1-003"

    standing = latest_labels(codebook, read_corpus(data), data.annotations)
    assert {pid: sorted(by) for pid, by in standing.items()} == {"d1-001": ["maryam", "reza"],
                                                                 "d1-002": ["maryam", "reza"],
                                                                 "d1-003": ["maryam"]}
    report = derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications)
    assert {g["id"]: g["source"] for g in report.gold} == {"d1-001": "agreed", "d1-003": "single"}
    assert report.unresolved == ["d1-002"]


def test_a_record_in_the_wrong_annotator_file_is_refused(data, codebook):
    s = session(data, codebook, name="maryam")
    label_current(s, "against")
    data.annotations.joinpath("reza.jsonl").write_bytes(s.file.read_bytes())
    with pytest.raises(UserError) as exc:
        latest_labels(codebook, read_corpus(data), data.annotations)
    assert str(exc.value) == (f"{data.annotations / 'reza.jsonl'}:1: annotator 'maryam' in reza.jsonl; "
                              "each annotator's records belong in their own file (maryam.jsonl)")


WORKERS, CALLS, PADDING = 6, 40, "x" * 5000


def _append_many(path: str, worker: int) -> None:
    for i in range(CALLS):
        append_jsonl(Path(path), {"worker": worker, "i": i, "part": 0, "pad": PADDING},
                     {"worker": worker, "i": i, "part": 1, "pad": PADDING})


def _check_appended(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    records = [json.loads(line) for line in text.split("\n")[:-1]]  # every line is whole JSON
    assert len(records) == WORKERS * CALLS * 2
    for worker in range(WORKERS):
        mine = [(r["i"], r["part"]) for r in records if r["worker"] == worker]
        assert mine == [(i, part) for i in range(CALLS) for part in (0, 1)]
    # The two records of one call stay together.
    for first, second in zip(records[::2], records[1::2]):
        assert (first["worker"], first["i"], first["part"]) == (second["worker"], second["i"], 0)
        assert second["part"] == 1


def test_concurrent_appends_from_threads_never_interleave(tmp_path):
    path = tmp_path / "shared.jsonl"
    threads = [threading.Thread(target=_append_many, args=(str(path), w)) for w in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check_appended(path)


def test_concurrent_appends_from_processes_never_interleave(tmp_path):
    path = tmp_path / "shared.jsonl"
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_append_many, args=(str(path), w)) for w in range(WORKERS)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(30)
    assert [p.exitcode for p in processes] == [0] * WORKERS
    _check_appended(path)


# --- wrong input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.label("d1-001", "0" * 16, "none", []),
         "paragraph 'd1-001' changed since the page loaded it; reload the page"),
        (lambda s: s.skip("d1-001", "0" * 16),
         "paragraph 'd1-001' changed since the page loaded it; reload the page"),
        (lambda s: s.label("d2-001", HASH["d2-001"], "none", []), "paragraph 'd2-001' is not in this session's queue"),
        (lambda s: s.skip("d2-002", HASH["d2-002"]), "paragraph 'd2-002' is not in this session's queue"),
        (lambda s: s.label("zz-001", HASH["d1-001"], "none", []), "paragraph 'zz-001' is not in this session's queue"),
        (lambda s: s.label("d1-001", HASH["d1-001"], "maybe", []),
         "unknown stance 'maybe'; use one of favor, against, neutral, none"),
        (lambda s: s.label("d1-001", HASH["d1-001"], "Favor", []),
         "unknown stance 'Favor'; use one of favor, against, neutral, none"),
        (lambda s: s.label("d1-001", HASH["d1-001"], "none", ["security", "weather"]),
         "unknown frame 'weather'; use any of humanitarian, security, sovereignty, regime_legitimacy, "
         "resistance, gender, economic"),
    ],
)
def test_wrong_input_is_refused_and_writes_nothing(data, codebook, call, message):
    s = session(data, codebook, queue=["d1-001", "d1-002", "d1-003"])
    before = s.state()
    with pytest.raises(UserError) as exc:
        call(s)
    assert str(exc.value) == message
    assert not s.file.exists()
    assert s.state() == before


def test_queue_with_a_paragraph_not_in_the_corpus_is_refused(data, codebook):
    with pytest.raises(UserError) as exc:
        session(data, codebook, queue=["d1-001", "zz-001"])
    assert str(exc.value) == f"{data.paragraphs}: paragraph 'zz-001' is not in the corpus"


@pytest.mark.parametrize("name", ["../x", "a b", "", "x" * 41, "<script>", "-lead", ".hidden", "a/b", "maryam.jsonl"])
def test_odd_annotator_names_are_refused_and_write_nothing(data, codebook, tmp_path, name):
    corpus_before = data.paragraphs.read_bytes()
    source = tmp_path / "New Doc.txt"
    source.write_text("A Title\n\nIt rained on Monday.\n", encoding="utf-8")
    with pytest.raises(UserError) as exc:
        check_annotator_name(name)
    assert str(exc.value) == NAME_MESSAGE.format(name)
    with pytest.raises(UserError) as exc:
        session(data, codebook, name=name)
    assert str(exc.value) == NAME_MESSAGE.format(name)
    with pytest.raises(UserError) as exc:
        start_session(name, codebook, data, source=[str(source)], progress=False)
    assert str(exc.value) == NAME_MESSAGE.format(name)
    assert not data.annotations.exists()
    assert data.paragraphs.read_bytes() == corpus_before
    assert sorted(p.name for p in data.root.iterdir()) == ["paragraphs.jsonl"]


@pytest.mark.parametrize("name", ["x" * 40, "maryam", "Reza_2", "a-b", "7"])
def test_ordinary_annotator_names_are_accepted(name):
    assert check_annotator_name(name) == name


def test_annotator_name_with_a_trailing_newline_is_refused():
    with pytest.raises(UserError):
        check_annotator_name("maryam\n")


# --- start_session with new documents --------------------------------------------------------

SOURCE_TEXT = "A Title\n\nIt rained on Monday in Tehran.\n\nThe embassy was closed for a week.\n"
SOURCE_PARAGRAPHS = [("op_ed-001", "headline", "A Title"),
                     ("op_ed-002", "body", "It rained on Monday in Tehran."),
                     ("op_ed-003", "body", "The embassy was closed for a week.")]


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "incoming" / "Op Ed.txt"
    path.parent.mkdir()
    path.write_text(SOURCE_TEXT, encoding="utf-8")
    return path


def test_source_paragraphs_are_added_to_the_corpus_and_make_the_queue(data, codebook, source):
    corpus_before = data.paragraphs.read_bytes()
    s = start_session("maryam", codebook, data, source=[str(source)], progress=False)
    assert s.queue == [pid for pid, _, _ in SOURCE_PARAGRAPHS]

    after = data.paragraphs.read_bytes()
    assert after.startswith(corpus_before)  # appended, the old lines untouched
    records = lines(data.paragraphs)
    assert [r["id"] for r in records] == IDS + s.queue
    for record, (pid, kind, text) in zip(records[len(IDS):], SOURCE_PARAGRAPHS):
        assert record["id"] == pid and record["doc_id"] == "op_ed" and record["kind"] == kind
        assert record["text"] == text and record["hash"] == text_hash(text)
        assert record["n_words"] == len(text.split())
        assert record["source"] == str(source) and record["added"]

    state = s.state()
    assert state["paragraph"]["id"] == "op_ed-001" and state["paragraph"]["title"] == "A Title"
    assert state["progress"] == {"done": 0, "skipped": 0, "left": 3, "total": 3}


def test_added_paragraphs_keep_their_position_in_the_document(data, codebook, source):
    start_session("maryam", codebook, data, source=[str(source)], progress=False)
    assert [r["position"] for r in lines(data.paragraphs)[len(IDS):]] == [1, 2, 3]


def test_same_source_twice_adds_nothing(data, codebook, source):
    first = start_session("maryam", codebook, data, source=[str(source)], progress=False)
    corpus = data.paragraphs.read_bytes()
    second = start_session("maryam", codebook, data, source=[str(source)], progress=False)
    assert data.paragraphs.read_bytes() == corpus
    assert second.queue == first.queue


def test_source_paragraph_already_in_the_corpus_keeps_its_id(data, codebook, tmp_path):
    path = tmp_path / "echo.txt"
    path.write_text("Strikes on Iran Condemned\n\nA sentence nobody wrote before.\n", encoding="utf-8")
    s = start_session("maryam", codebook, data, source=[str(path)], progress=False)
    assert s.queue == ["d1-001", "echo-002"]
    assert [r["id"] for r in lines(data.paragraphs)] == IDS + ["echo-002"]


def test_source_id_colliding_with_different_text_is_refused_and_writes_nothing(data, codebook, tmp_path):
    path = tmp_path / "d1.txt"
    path.write_text("Strikes on Iran Condemned\n\nA different second paragraph.\n", encoding="utf-8")
    corpus_before = data.paragraphs.read_bytes()
    with pytest.raises(UserError) as exc:
        start_session("maryam", codebook, data, source=[str(path)], progress=False)
    assert str(exc.value) == (f"{path}: paragraph id 'd1-002' already exists in {data.paragraphs} with different "
                              "text; rename the file so its document id is new")
    assert data.paragraphs.read_bytes() == corpus_before
    assert not data.annotations.exists()


def test_labelled_source_paragraphs_reach_gold_and_change_the_fingerprint(data, codebook, source):
    from experiments.data import fingerprint

    s = session(data, codebook)
    label_current(s, "against", ["security"])
    before = derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications)
    assert [g["id"] for g in before.gold] == ["d1-001"]

    added = start_session("maryam", codebook, data, source=[str(source)], progress=False)
    assert added.state()["progress"]["done"] == 0  # the earlier label is outside this queue
    label_current(added, "none")
    label_current(added, "neutral", ["humanitarian"])
    assert label_current(added, "favor", ["sovereignty", "security"])["paragraph"] is None

    after = derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications)
    gold = {g["id"]: g for g in after.gold}
    assert list(gold) == ["d1-001", "op_ed-001", "op_ed-002", "op_ed-003"]
    assert gold["op_ed-003"] == {"id": "op_ed-003", "doc_id": "op_ed", "kind": "body",
                                 "text": "The embassy was closed for a week.",
                                 "hash": text_hash("The embassy was closed for a week."),
                                 "stance": "favor", "frames": ["security", "sovereignty"],
                                 "annotators": ["maryam"], "source": "single", "rationale": "", "rationales": []}
    assert fingerprint(after.gold, codebook.version) != fingerprint(before.gold, codebook.version)
    assert fingerprint(before.gold, codebook.version) == fingerprint(list(before.gold), codebook.version)


def test_build_corpus_keeps_paragraphs_added_by_the_app(data, codebook, source, tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for doc in ("d1", "d2"):
        (seeds / f"{doc}.txt").write_text("\n\n".join(r[4] for r in ROWS if r[1] == doc) + "\n", encoding="utf-8")
    d3 = tmp_path / "incoming" / "d3.txt"
    d3.write_text("Another Headline\n\nA paragraph the app added first.\n", encoding="utf-8")
    start_session("maryam", codebook, data, source=[str(source), str(d3)], progress=False)
    added = {r["id"]: r for r in lines(data.paragraphs) if "source" in r}
    assert sorted(added) == ["d3-001", "d3-002", "op_ed-001", "op_ed-002", "op_ed-003"]

    built = build_corpus(seeds, data.paragraphs)
    records = lines(data.paragraphs)
    assert records == built
    assert [r["id"] for r in records] == IDS + ["op_ed-001", "op_ed-002", "op_ed-003", "d3-001", "d3-002"]
    assert all("source" not in r for r in records[:5])
    assert records[5:] == [added[pid] for pid in ["op_ed-001", "op_ed-002", "op_ed-003", "d3-001", "d3-002"]]

    # Once the document is a seed itself, the seed's paragraphs replace the app's copy.
    d3.rename(seeds / "d3.txt")
    records = build_corpus(seeds, data.paragraphs)
    assert [r["id"] for r in records] == IDS + ["d3-001", "d3-002", "op_ed-001", "op_ed-002", "op_ed-003"]
    assert [("source" in r) for r in records] == [False] * 7 + [True] * 3
    assert lines(data.paragraphs) == records
