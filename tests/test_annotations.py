"""Annotation records → gold labels: supersession, agreement, adjudication, stale and bad records."""

from __future__ import annotations

import json

import pytest

from experiments.annotations import derive_gold, label_stats, load_paragraphs, read_annotations
from experiments.corpus import text_hash
from experiments.errors import UserError
from experiments.io import append_jsonl

TEXTS = {
    "a-001": ("a", "headline", "Strikes on Iran Condemned"),
    "a-002": ("a", "body", "The union rejected any foreign war."),
    "b-001": ("b", "body", "Exiles asked the UN to act."),
    "b-002": ("b", "body", "The rally was held in Paris."),
}


@pytest.fixture
def paragraphs():
    return {
        pid: {"id": pid, "doc_id": doc, "kind": kind, "text": text, "hash": text_hash(text)}
        for pid, (doc, kind, text) in TEXTS.items()
    }


def record(pid, annotator="lead", stance="none", frames=(), hash=None, **extra):
    return {
        "paragraph_id": pid,
        "hash": hash or text_hash(TEXTS[pid][2]),
        "annotator": annotator,
        "stance": stance,
        "frames": list(frames),
        "timestamp": "2026-01-01T00:00:00Z",
        **extra,
    }


def adjudication(pid, stance, frames=()):
    return {
        "paragraph_id": pid,
        "hash": text_hash(TEXTS[pid][2]),
        "adjudicator": "chief",
        "stance": stance,
        "frames": list(frames),
        "reason": "the appeal is addressed to states",
        "timestamp": "2026-01-02T00:00:00Z",
    }


@pytest.fixture
def store(tmp_path):
    """Write annotator files (and adjudications) into tmp_path; returns the paths."""
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    adjudications = tmp_path / "adjudications.jsonl"

    def write(files: dict[str, list[dict]], decided: list[dict] | None = None):
        for name, records in files.items():
            (annotations / name).write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        if decided is not None:
            adjudications.write_text("".join(json.dumps(r) + "\n" for r in decided), encoding="utf-8")
        return annotations, adjudications

    return write


def gold_of(report):
    return {g["id"]: (g["stance"], g["frames"], g["annotators"], g["source"]) for g in report.gold}


def test_one_annotator_gives_single_source_gold_with_frames_in_codebook_order(codebook, paragraphs, store):
    ann, adj = store({"lead.jsonl": [record("a-002", stance="against", frames=["sovereignty", "humanitarian"])]})
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert report.gold == [{
        "id": "a-002", "doc_id": "a", "kind": "body", "text": "The union rejected any foreign war.",
        "hash": text_hash("The union rejected any foreign war."), "stance": "against",
        "frames": ["humanitarian", "sovereignty"], "annotators": ["lead"], "source": "single", "rationale": "", "rationales": [],
    }]
    assert report.unlabelled == ["a-001", "b-001", "b-002"]


def test_a_later_record_by_the_same_annotator_supersedes_the_earlier(codebook, paragraphs, store):
    ann, adj = store({"lead.jsonl": [
        record("b-001", stance="neutral"),
        record("b-001", stance="favor", frames=["humanitarian"], note="correction"),
    ]})
    assert gold_of(derive_gold(codebook, paragraphs, ann, adj)) == {
        "b-001": ("favor", ["humanitarian"], ["lead"], "single"),
    }


def test_annotators_who_agree_give_agreed_gold(codebook, paragraphs, store):
    ann, adj = store({
        "ana.jsonl": [record("b-001", "ana", "favor", ["security", "humanitarian"])],
        "ben.jsonl": [record("b-001", "ben", "favor", ["humanitarian", "security"])],
    })
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert gold_of(report) == {"b-001": ("favor", ["humanitarian", "security"], ["ana", "ben"], "agreed")}
    assert report.unresolved == []


def test_a_frame_listed_twice_still_agrees_with_the_same_set(codebook, paragraphs, store):
    ann, adj = store({
        "ana.jsonl": [record("b-001", "ana", "favor", ["security", "security"])],
        "ben.jsonl": [record("b-001", "ben", "favor", ["security"])],
    })
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert gold_of(report) == {"b-001": ("favor", ["security"], ["ana", "ben"], "agreed")}


@pytest.mark.parametrize(
    "ben",
    [{"stance": "neutral", "frames": ["humanitarian"]}, {"stance": "favor", "frames": []}],
    ids=["stance-differs", "frames-differ"],
)
def test_annotators_who_disagree_are_unresolved_and_left_out(codebook, paragraphs, store, ben):
    ann, adj = store({
        "ana.jsonl": [record("b-001", "ana", "favor", ["humanitarian"])],
        "ben.jsonl": [record("b-001", "ben", ben["stance"], ben["frames"])],
    })
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert report.gold == []
    assert report.unresolved == ["b-001"]
    assert report.lines()[-1] == "1 disagreement(s) without adjudication left out of gold: b-001"


def test_an_adjudication_decides_a_disagreement(codebook, paragraphs, store):
    ann, adj = store(
        {
            "ana.jsonl": [record("b-001", "ana", "favor", ["humanitarian"])],
            "ben.jsonl": [record("b-001", "ben", "neutral", [])],
        },
        decided=[adjudication("b-001", "favor", ["security"])],
    )
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert gold_of(report) == {"b-001": ("favor", ["security"], ["ana", "ben"], "adjudicated")}
    assert report.unresolved == []


def test_a_stale_record_is_reported_and_not_used(codebook, paragraphs, store):
    ann, adj = store({"lead.jsonl": [
        record("a-001", stance="against"),
        record("a-002", stance="favor", hash="0000000000000000"),
    ]})
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert gold_of(report) == {"a-001": ("against", [], ["lead"], "single")}
    assert report.stale == [f"{ann / 'lead.jsonl'}:2 (a-002)"]
    assert "a-002" in report.unlabelled


def test_a_stale_correction_leaves_the_other_annotator_single(codebook, paragraphs, store):
    ann, adj = store({
        "ana.jsonl": [record("b-001", "ana", "favor")],
        "ben.jsonl": [record("b-001", "ben", "neutral", hash="ffffffffffffffff")],
    })
    report = derive_gold(codebook, paragraphs, ann, adj)
    assert gold_of(report) == {"b-001": ("favor", [], ["ana"], "single")}
    assert report.stale == [f"{ann / 'ben.jsonl'}:1 (b-001)"]


def _bad(codebook, paragraphs, store, records) -> str:
    ann, adj = store({"lead.jsonl": records})
    with pytest.raises(UserError) as excinfo:
        derive_gold(codebook, paragraphs, ann, adj)
    return str(excinfo.value)


def test_an_unknown_stance_names_file_line_and_valid_labels(codebook, paragraphs, store, tmp_path):
    message = _bad(codebook, paragraphs, store, [record("a-001"), record("a-002", stance="pro")])
    assert message == f"{tmp_path}/annotations/lead.jsonl:2: unknown stance 'pro'; use one of favor, against, neutral, none"


def test_an_unknown_frame_names_file_line_and_valid_frames(codebook, paragraphs, store, tmp_path):
    message = _bad(codebook, paragraphs, store, [record("a-001", frames=["security", "religion"])])
    assert message == (
        f"{tmp_path}/annotations/lead.jsonl:1: unknown frame 'religion'; use any of humanitarian, security, "
        "sovereignty, regime_legitimacy, resistance, gender, economic"
    )


def test_an_unknown_paragraph_id_names_file_line(codebook, paragraphs, store, tmp_path):
    message = _bad(codebook, paragraphs, store, [record("a-001"), {**record("a-001"), "paragraph_id": "c-009"}])
    assert message.startswith(f"{tmp_path}/annotations/lead.jsonl:2: paragraph id 'c-009' does not exist in paragraphs.jsonl")


def test_a_record_with_an_unknown_key_names_file_line_and_key(codebook, paragraphs, store, tmp_path):
    message = _bad(codebook, paragraphs, store, [record("a-001", comment="hm")])
    assert message == f"{tmp_path}/annotations/lead.jsonl:1: comment: unknown key"


def test_a_line_that_is_not_json_names_file_line(codebook, paragraphs, store, tmp_path):
    ann, adj = store({})
    (ann / "lead.jsonl").write_text(json.dumps(record("a-001")) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(UserError) as excinfo:
        derive_gold(codebook, paragraphs, ann, adj)
    assert str(excinfo.value).startswith(f"{ann / 'lead.jsonl'}:2: not valid JSON (")


def test_a_bad_adjudication_names_its_file_line(codebook, paragraphs, store, tmp_path):
    ann, adj = store({}, decided=[adjudication("b-001", "maybe")])
    with pytest.raises(UserError) as excinfo:
        derive_gold(codebook, paragraphs, ann, adj)
    assert str(excinfo.value) == f"{adj}:1: unknown stance 'maybe'; use one of favor, against, neutral, none"


NOTE = "یادداشت"  # Persian "note"; two bytes a letter in UTF-8


def cut_inside_last_character(record: dict) -> bytes:
    """What a kill during the write of ``record`` leaves: its line up to one byte into the note's last letter."""
    line = json.dumps(record, ensure_ascii=False).encode("utf-8")
    return line[:line.rindex(NOTE.encode("utf-8")) + len(NOTE.encode("utf-8")) - 1]


def test_a_paragraph_cut_inside_a_persian_character_is_ignored_until_the_next_append_drops_it(paragraphs, tmp_path):
    path = tmp_path / "paragraphs.jsonl"
    whole = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in paragraphs.values()).encode("utf-8")
    new = {"id": "c-001", "doc_id": "c", "kind": "body", "text": NOTE, "hash": text_hash(NOTE)}
    path.write_bytes(whole + cut_inside_last_character(new))
    assert load_paragraphs(path) == paragraphs

    append_jsonl(path, new)
    assert path.read_bytes() == whole + json.dumps(new, ensure_ascii=False).encode("utf-8") + b"\n"
    assert load_paragraphs(path) == {**paragraphs, "c-001": new}


def test_an_annotation_cut_inside_a_persian_note_is_ignored_until_the_next_append_drops_it(codebook, paragraphs, store):
    ann, adj = store({"lead.jsonl": [record("a-001", stance="against")]})
    path = ann / "lead.jsonl"
    whole = path.read_bytes()
    with open(path, "ab") as handle:
        handle.write(cut_inside_last_character(record("a-002", stance="favor", note=NOTE)))
    assert [(where, r.paragraph_id) for where, r in read_annotations(path, paragraphs, codebook)] == [
        (f"{path}:1", "a-001")]

    append_jsonl(path, record("a-002", stance="favor", note=NOTE))
    assert path.read_bytes() == whole + json.dumps(record("a-002", stance="favor", note=NOTE),
                                                   ensure_ascii=False).encode("utf-8") + b"\n"
    [(_, second)] = read_annotations(path, paragraphs, codebook)[1:]
    assert (second.paragraph_id, second.stance, second.note) == ("a-002", "favor", NOTE)
    assert {g["id"]: g["stance"] for g in derive_gold(codebook, paragraphs, ann, adj).gold} == {
        "a-001": "against", "a-002": "favor"}


def test_bytes_that_are_not_utf8_before_the_last_line_name_the_file_and_line(paragraphs, tmp_path):
    path = tmp_path / "paragraphs.jsonl"
    lines = [json.dumps(p).encode() for p in paragraphs.values()]
    lines[1] = lines[1].replace(b"union", b"uni\xf3n")  # a Latin-1 accent
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(UserError) as excinfo:
        load_paragraphs(path)
    assert str(excinfo.value) == f"{path}:2: not UTF-8 text; convert it to UTF-8, e.g. with iconv"


def test_label_stats_has_a_row_per_document_and_an_all_row(codebook, paragraphs, store):
    ann, adj = store({"lead.jsonl": [
        record("a-001", stance="against", frames=["security"]),
        record("a-002", stance="against", frames=["security", "sovereignty"]),
        record("b-001", stance="favor", frames=["humanitarian"]),
    ]})
    table = label_stats(derive_gold(codebook, paragraphs, ann, adj).gold, codebook).splitlines()
    columns = ["n", "favor", "against", "neutral", "none", *codebook.frame_labels]
    assert table[0] == (
        "stance: favor, against, neutral, none | frames: humanitarian, security, sovereignty, "
        "regime_legitimacy, resistance, gender, economic"
    )
    assert table[1].split() == ["document", *columns]
    rows = {line.split()[0]: dict(zip(columns, map(int, line.split()[1:]))) for line in table[3:] if not line.startswith("-")}
    assert list(rows) == ["a", "b", "ALL"]
    assert rows["a"] == {**dict.fromkeys(columns, 0), "n": 2, "against": 2, "security": 2, "sovereignty": 1}
    assert rows["b"] == {**dict.fromkeys(columns, 0), "n": 1, "favor": 1, "humanitarian": 1}
    assert rows["ALL"] == {**dict.fromkeys(columns, 0), "n": 3, "favor": 1, "against": 2,
                           "humanitarian": 1, "security": 2, "sovereignty": 1}


def test_the_shipped_annotations_are_neither_stale_nor_unresolved(codebook):
    paragraphs = load_paragraphs()
    report = derive_gold(codebook, paragraphs)
    assert report.stale == [] and report.unresolved == []
    assert len(report.gold) + len(report.unlabelled) == len(paragraphs)
