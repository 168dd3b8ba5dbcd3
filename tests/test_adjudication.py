"""Adjudication records, the interactive walk, and ``adjudicate`` on the command line."""

from __future__ import annotations

import json

import pytest

# The corpus and annotation-file fixtures are the agreement tests' own.
from test_agreement import TEXTS, paragraphs, rec, store  # noqa: F401

from experiments.adjudication import adjudicate_interactive, record_adjudication, resolve_choice
from experiments.agreement import compute_agreement, format_agreement, pending_disagreements
from experiments.annotations import Adjudication, derive_gold
from experiments.corpus import text_hash
from experiments.errors import UserError


@pytest.fixture
def disagreeing(store):
    """ana and ben disagree on p-01 and p-02 and agree on p-03."""
    return store([
        rec("p-01", "ana", "favor", ["humanitarian"]), rec("p-01", "ben", "against", []),
        rec("p-02", "ana", "neutral", ["security"]), rec("p-02", "ben", "neutral", ["security", "economic"]),
        rec("p-03", "ana", "none"), rec("p-03", "ben", "none"),
    ])


def snapshot(ann):
    return {p.name: p.read_bytes() for p in sorted(ann.iterdir())}


def test_record_adjudication_appends_one_record_and_gold_takes_it(codebook, paragraphs, disagreeing):
    ann, adj = disagreeing
    before = snapshot(ann)
    assert derive_gold(codebook, paragraphs, ann, adj).unresolved == ["p-01", "p-02"]
    record = record_adjudication(codebook, paragraphs, "p-01", "favor", ["security", "humanitarian"],
                                 "  the appeal asks states to act ", "chief", adj)
    lines = adj.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == record
    Adjudication.model_validate(record)
    assert {k: record[k] for k in ("paragraph_id", "hash", "adjudicator", "stance", "frames", "reason")} == {
        "paragraph_id": "p-01", "hash": text_hash(TEXTS["p-01"][1]), "adjudicator": "chief",
        "stance": "favor", "frames": ["humanitarian", "security"], "reason": "the appeal asks states to act",
    }
    assert snapshot(ann) == before

    gold = derive_gold(codebook, paragraphs, ann, adj)
    assert gold.unresolved == ["p-02"]
    [entry] = [g for g in gold.gold if g["id"] == "p-01"]
    assert (entry["stance"], entry["frames"], entry["source"]) == ("favor", ["humanitarian", "security"], "adjudicated")

    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.disagreements[0].adjudication == record
    assert [d.paragraph_id for d in pending_disagreements(report)] == ["p-02"]
    assert "p-01 (doc d1) [adjudicated by chief]" in format_agreement(report, codebook).splitlines()


def test_an_adjudication_for_an_older_text_does_not_count(codebook, paragraphs, disagreeing):
    ann, adj = disagreeing
    old = {**paragraphs, "p-01": {**paragraphs["p-01"], "hash": "ffffffffffffffff"}}
    record_adjudication(codebook, old, "p-01", "favor", [], "decided before the text changed", "chief", adj)
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.disagreements[0].paragraph_id == "p-01"
    assert report.disagreements[0].adjudication is None


@pytest.mark.parametrize(
    "args, message",
    [
        (("p-99", "favor", [], "why", "chief"),
         "paragraph id 'p-99' does not exist in paragraphs.jsonl; copy the id from the agreement report"),
        (("p-01", "pro", [], "why", "chief"),
         "p-01: unknown stance 'pro'; use one of favor, against, neutral, none"),
        (("p-01", "favor", ["religion"], "why", "chief"),
         "p-01: unknown frame 'religion'; use any of humanitarian, security, sovereignty, regime_legitimacy, "
         "resistance, gender, economic"),
        (("p-01", "favor", [], "  ", "chief"), "p-01: an adjudication needs --reason"),
        (("p-01", "favor", [], "why", "../x"),
         "annotator name '../x' is not allowed; use 1-40 letters, digits, '_' or '-', starting with a letter "
         "or digit (e.g. --annotator maryam)"),
    ],
    ids=["paragraph", "stance", "frame", "reason", "name"],
)
def test_record_adjudication_refuses_bad_input_and_writes_nothing(codebook, paragraphs, disagreeing, args, message):
    ann, adj = disagreeing
    with pytest.raises(UserError) as excinfo:
        record_adjudication(codebook, paragraphs, *args, adjudications=adj)
    assert str(excinfo.value) == message
    assert not adj.exists()


def test_resolve_choice_takes_an_annotators_labels(codebook, paragraphs, disagreeing):
    ann, _ = disagreeing
    assert resolve_choice(codebook, paragraphs, "p-02", take="ben", annotations_dir=ann) == (
        "neutral", ["security", "economic"])
    assert resolve_choice(codebook, paragraphs, "p-02", stance="favor", frames=["gender"], annotations_dir=ann) == (
        "favor", ["gender"])


@pytest.mark.parametrize(
    "pid, kwargs, message",
    [
        ("p-01", {"take": "cy"}, "p-01: annotator 'cy' has no standing label here; take one of ana, ben"),
        ("p-04", {"take": "ana"}, "p-04: no annotator has a standing label here; give --stance and --frames instead"),
        ("p-01", {"take": "ana", "stance": "favor"},
         "p-01: give either --take ANNOTATOR or --stance/--frames, not both"),
        ("p-01", {}, "p-01: an adjudication needs --stance (and --frames) or --take ANNOTATOR"),
    ],
    ids=["not-that-annotator", "nobody", "both", "neither"],
)
def test_resolve_choice_errors_name_the_paragraph_and_the_way_out(codebook, paragraphs, disagreeing, pid, kwargs, message):
    ann, _ = disagreeing
    with pytest.raises(UserError) as excinfo:
        resolve_choice(codebook, paragraphs, pid, annotations_dir=ann, **kwargs)
    assert str(excinfo.value) == message


def script(*answers):
    """A ``read`` that plays back answers, then behaves like end of input; records the prompts."""
    prompts: list[str] = []
    queue = list(answers)

    def read(prompt):
        prompts.append(prompt)
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read, prompts


def decisions(adj):
    return [
        (r["paragraph_id"], r["adjudicator"], r["stance"], r["frames"], r["reason"])
        for r in map(json.loads, adj.read_text(encoding="utf-8").splitlines())
    ] if adj.exists() else []


def run(codebook, paragraphs, disagreeing, *answers):
    ann, adj = disagreeing
    before = snapshot(ann)
    read, prompts = script(*answers)
    out: list[str] = []
    count = adjudicate_interactive(codebook, paragraphs, "chief", read, out.append, ann, adj)
    assert snapshot(ann) == before
    return count, decisions(adj), out, prompts


def test_interactive_take_an_annotator_by_number_and_by_name(codebook, paragraphs, disagreeing):
    count, recorded, out, _ = run(codebook, paragraphs, disagreeing, "2", "", "ben is right", "ana", "the frames fit")
    assert count == 2
    assert recorded == [
        ("p-01", "chief", "against", [], "ben is right"),
        ("p-02", "chief", "neutral", ["security"], "the frames fit"),
    ]
    assert "[1/2] p-01 (doc d1)" in out
    assert "  1  ana  favor | humanitarian" in out and "  2  ben  against | (no frames)" in out
    assert "a reason is required: say why this decision (one line)" in out
    assert out[-1] == "2 adjudication(s) recorded; 0 disagreement(s) still pending"
    # Nothing left: a second run says so.
    assert run(codebook, paragraphs, disagreeing)[2] == ["no pending disagreements; nothing to adjudicate"]


def test_interactive_enter_labels_by_keys_and_names(codebook, paragraphs, disagreeing):
    count, recorded, out, prompts = run(
        codebook, paragraphs, disagreeing,
        "e", "9", "2", "s, x", "s e,humanitarian", "checked the source",
        "e", "neutral", "", "none apply",
    )
    assert count == 2
    assert recorded == [
        ("p-01", "chief", "against", ["humanitarian", "security", "economic"], "checked the source"),
        ("p-02", "chief", "neutral", [], "none apply"),
    ]
    assert "p-01: unknown stance '9'; type a key or name: 1 favor, 2 against, 3 neutral, 4 none" in out
    assert ("p-01: unknown frame 'x'; use letters or names: h humanitarian, s security, o sovereignty, "
            "l regime_legitimacy, r resistance, g gender, e economic") in out
    assert prompts[1].startswith("stance (1 favor, 2 against, 3 neutral, 4 none")


def test_interactive_skip_invalid_choice_and_quit(codebook, paragraphs, disagreeing):
    count, recorded, out, _ = run(codebook, paragraphs, disagreeing, "s", "7", "zed", "q")
    assert (count, recorded) == (0, [])
    hint = "type 1-2 or a name (ana, ben) to take those labels, e to enter labels, s to skip, q to quit"
    assert out.count(hint) == 2
    assert "skipped p-01" in out
    assert out[-1] == "0 adjudication(s) recorded; 2 disagreement(s) still pending"


def test_interactive_end_of_input_keeps_what_was_recorded(codebook, paragraphs, disagreeing):
    # Decide p-01, then input ends in the middle of p-02: p-01 is on disk, p-02 untouched.
    count, recorded, out, _ = run(codebook, paragraphs, disagreeing, "1", "ana is right", "e", "3")
    assert count == 1
    assert recorded == [("p-01", "chief", "favor", ["humanitarian"], "ana is right")]
    assert out[-1] == "1 adjudication(s) recorded; 1 disagreement(s) still pending"
    # The next session starts with what is still pending, and gold has the decided paragraph.
    ann, adj = disagreeing
    assert derive_gold(codebook, paragraphs, ann, adj).unresolved == ["p-02"]
    assert "[1/1] p-02 (doc d1)" in run(codebook, paragraphs, disagreeing, "q")[2]


def test_interactive_refuses_a_bad_adjudicator_name_before_asking(codebook, paragraphs, disagreeing):
    ann, adj = disagreeing
    read, prompts = script()
    with pytest.raises(UserError):
        adjudicate_interactive(codebook, paragraphs, "", read, print, ann, adj)
    assert prompts == []


# ----------------------------------------------------------------- adjudicate on the command line


def adjudication_line(pid, stance="favor", frames=(), **change):
    record = {"paragraph_id": pid, "hash": text_hash(TEXTS[pid][1]), "adjudicator": "chief", "stance": stance,
              "frames": list(frames), "reason": "checked", "timestamp": "2026-01-02T00:00:00+00:00", **change}
    return json.dumps({k: v for k, v in record.items() if v is not None}, ensure_ascii=False).encode() + b"\n"


@pytest.fixture
def data_dir(tmp_path, paragraphs, disagreeing):
    """A data folder for ``--data``: the paragraphs, ana's and ben's files, and ``adjudications.jsonl``."""
    (tmp_path / "paragraphs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in paragraphs.values()),
                                               encoding="utf-8")
    return tmp_path


def adjudicate(data_dir, capsys, *extra) -> tuple[int, str]:
    from experiments.cli import main

    status = main(["adjudicate", "--adjudicator", "chief", "--paragraph", "p-01", "--take", "ana",
                   "--reason", "ana is right", "--data", str(data_dir), *extra])
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "content, line, problem",
    [
        (adjudication_line("p-03") + b"{oops\n" + adjudication_line("p-02"), 2,
         "not valid JSON (Expecting property name enclosed in double quotes); fix or remove that line"),
        (adjudication_line("p-03", reason=None), 1, "reason: Field required"),
        (adjudication_line("p-03") + adjudication_line("p-02", stance="maybe"), 2,
         "unknown stance 'maybe'; use one of favor, against, neutral, none"),
        (adjudication_line("p-03", reason="décidé").replace("é".encode(), b"\xe9") + adjudication_line("p-02"),
         1, "not UTF-8 text; convert it to UTF-8, e.g. with iconv"),
        (b"[1, 2]\n", 1, "expected a JSON object per line"),
    ],
    ids=["not-json", "no-reason", "unknown-stance", "latin-1", "not-an-object"],
)
def test_adjudicate_refuses_a_corrupt_adjudication_file_and_writes_nothing(data_dir, capsys, content, line, problem):
    adj = data_dir / "adjudications.jsonl"
    adj.write_bytes(content)
    status, err = adjudicate(data_dir, capsys)
    assert status == 2
    assert err == f"error: {adj}:{line}: {problem}; nothing was recorded: fix that line, then adjudicate again\n"
    assert adj.read_bytes() == content


def test_adjudicate_drops_a_torn_last_line_and_appends(codebook, paragraphs, data_dir, capsys):
    adj = data_dir / "adjudications.jsonl"
    whole = adjudication_line("p-02", "neutral")
    torn = adjudication_line("p-03", reason="یادداشت")
    adj.write_bytes(whole + torn[:torn.rindex("ت".encode()) + 1])  # cut inside the last Persian letter
    status, err = adjudicate(data_dir, capsys)
    assert (status, err) == (0, "")
    assert adj.read_bytes().startswith(whole)
    assert decisions(adj) == [("p-02", "chief", "neutral", [], "checked"),
                              ("p-01", "chief", "favor", ["humanitarian"], "ana is right")]
    assert derive_gold(codebook, paragraphs, data_dir / "annotations", adj).unresolved == []
