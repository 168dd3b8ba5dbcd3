"""Seed documents → paragraphs: segmentation rules, determinism, bad files, the shipped corpus."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from experiments import paths
from experiments.corpus import add_to_corpus, build_corpus, load_documents, segment_text, text_hash
from experiments.errors import UserError

NBSP = "\u00a0"

# A scraped web page with every kind of furniture the segmenter must drop.
TRICKY_PAGE = f"""\
Home News Middle East Workers Reject Foreign Strikes on Iran
Wednesday, April 17, 2024

Workers Reject Foreign Strikes on Iran

A statement from exiled labour groups

Workers Reject Foreign Strikes on Iran

The union said on Tuesday that bombing would not bring freedom and
that change must come from below.
Its statement was signed by{NBSP}40{NBSP}{NBSP}groups in exile.

What Comes Next

Organisers plan strikes in the oil sector.

More From Author

Oil Prices Climb After Tanker Seizure

Tehran Court Sentences Journalist

Leave a Reply

Your email address will not be published. Required fields are marked *

No comments yet

Exit mobile version
"""


def test_tricky_page_keeps_only_headlines_and_body_text():
    kept = [(p["kind"], p["text"]) for p in segment_text(TRICKY_PAGE, "page")]
    assert kept == [
        ("headline", "Workers Reject Foreign Strikes on Iran"),
        ("headline", "A statement from exiled labour groups"),
        # Hard-wrapped: the second line starts in lower case, so it continues the first.
        ("body", "The union said on Tuesday that bombing would not bring freedom and that change must come from below."),
        # No-break spaces are whitespace like any other.
        ("body", "Its statement was signed by 40 groups in exile."),
        # A title-like line after the first body paragraph is a subheading, kind body.
        ("body", "What Comes Next"),
        ("body", "Organisers plan strikes in the oil sector."),
    ]


def test_records_carry_id_position_line_hash_and_word_count():
    records = segment_text(TRICKY_PAGE, "page")
    assert records[2] == {
        "id": "page-003",
        "doc_id": "page",
        "position": 3,
        "line": 10,  # where the hard-wrapped paragraph starts in the file
        "kind": "body",
        "text": "The union said on Tuesday that bombing would not bring freedom and that change must come from below.",
        "hash": "4d72ec8a09581961",  # sha256(text)[:16]
        "n_words": 18,
    }
    assert [r["id"] for r in records] == [f"page-{i:03d}" for i in range(1, 7)]
    assert [r["position"] for r in records] == [1, 2, 3, 4, 5, 6]


def test_lines_in_one_block_are_separate_paragraphs_unless_hard_wrapped():
    raw = "First sentence ends here.\nSecond one too.\nA line without an end\nand its continuation."
    assert [p["text"] for p in segment_text(raw, "d")] == [
        "First sentence ends here.",
        "Second one too.",
        "A line without an end and its continuation.",
    ]


def test_a_lowercase_line_after_a_finished_sentence_is_its_own_paragraph():
    raw = "The talks ended.\nnobody expected that outcome."
    assert [p["text"] for p in segment_text(raw, "d")] == ["The talks ended.", "nobody expected that outcome."]


def test_text_hash_is_the_16_digit_sha256_prefix():
    assert text_hash("abc") == "ba7816bf8f01cfea"


def test_segmenting_twice_gives_identical_records():
    assert segment_text(TRICKY_PAGE, "page") == segment_text(TRICKY_PAGE, "page")


def test_segmenting_the_kept_paragraphs_again_changes_nothing():
    first = segment_text(TRICKY_PAGE, "page")
    again = segment_text("\n\n".join(p["text"] for p in first), "page")
    assert [(p["kind"], p["text"]) for p in again] == [(p["kind"], p["text"]) for p in first]


def _seeds(tmp_path: Path, files: dict[str, bytes | str], manifest: str | None = None) -> Path:
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    for name, content in files.items():
        target = seeds / name
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content, encoding="utf-8")
    if manifest is not None:
        (seeds / "manifest.yaml").write_text(manifest, encoding="utf-8")
    return seeds


def test_build_corpus_twice_writes_byte_identical_files(tmp_path):
    seeds = _seeds(tmp_path, {"a.txt": TRICKY_PAGE, "b.md": "Second Title\n\nA body sentence."})
    build_corpus(seeds, tmp_path / "one.jsonl")
    build_corpus(seeds, tmp_path / "two.jsonl")
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


def test_a_document_missing_from_the_manifest_gets_an_id_from_its_file_name(tmp_path):
    manifest = "documents:\n  - id: listed_doc\n    file: 001_listed.txt\n    genre: statement\n"
    seeds = _seeds(tmp_path, {"001_listed.txt": "A listed sentence.", "New Report (Draft).txt": "A new sentence."}, manifest)
    docs = load_documents(seeds)
    assert [(d.id, d.file, d.genre) for d in docs] == [
        ("listed_doc", "001_listed.txt", "statement"),
        ("new_report_draft", "New Report (Draft).txt", None),
    ]
    records = build_corpus(seeds, tmp_path / "paragraphs.jsonl")
    assert [(r["id"], r["text"]) for r in records] == [
        ("listed_doc-001", "A listed sentence."),
        ("new_report_draft-001", "A new sentence."),
    ]


def test_a_seeds_folder_without_manifest_still_builds(tmp_path):
    seeds = _seeds(tmp_path, {"Op-Ed.txt": "Sanctions hurt workers."})
    assert [r["id"] for r in build_corpus(seeds, tmp_path / "p.jsonl")] == ["op_ed-001"]


def test_a_manifest_entry_for_a_missing_file_is_an_error(tmp_path):
    seeds = _seeds(tmp_path, {"a.txt": "Text."}, "documents:\n  - id: gone\n    file: gone.txt\n")
    with pytest.raises(UserError) as excinfo:
        load_documents(seeds)
    assert str(excinfo.value) == f"{seeds / 'manifest.yaml'}: documents.0: file 'gone.txt' is not in {seeds}"


@pytest.mark.parametrize(
    "content, message",
    [
        ("Café in Tehran.".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 3); convert it to UTF-8, e.g. with iconv"),
        (b"", "the document is empty; add its text or remove the file"),
        (b"  \n\n \t\n", "the document is empty; add its text or remove the file"),
    ],
    ids=["latin-1", "empty", "only-whitespace"],
)
def test_an_unreadable_document_is_reported_and_nothing_is_written(tmp_path, content, message):
    seeds = _seeds(tmp_path, {"a_good.txt": TRICKY_PAGE})
    out = tmp_path / "paragraphs.jsonl"
    build_corpus(seeds, out)
    before = out.read_bytes()
    (seeds / "b_bad.txt").write_bytes(content)
    with pytest.raises(UserError) as excinfo:
        build_corpus(seeds, out)
    assert str(excinfo.value) == f"{seeds / 'b_bad.txt'}: {message}"
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == ["paragraphs.jsonl", "seeds"]  # no temp file left


def test_a_broken_manifest_is_a_one_line_error_naming_the_file(tmp_path):
    seeds = _seeds(tmp_path, {"a.txt": "Text."}, "documents:\n  - id: a\n    file: [a.txt\n")
    with pytest.raises(UserError) as excinfo:
        load_documents(seeds)
    assert re.fullmatch(rf"{re.escape(str(seeds / 'manifest.yaml'))}:\d+: not valid YAML \(.+\); fix the syntax",
                        str(excinfo.value))


# The shipped corpus ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped():
    return [json.loads(line) for line in paths.PARAGRAPHS.read_text(encoding="utf-8").splitlines()]


def test_shipped_paragraph_ids_are_doc_id_and_three_digit_position(shipped):
    doc_ids = {d.id for d in load_documents()}
    for record in shipped:
        assert record["doc_id"] in doc_ids
        assert record["id"] == f"{record['doc_id']}-{record['position']:03d}"
        assert re.fullmatch(r".+-\d{3}", record["id"])
    for doc_id in doc_ids:
        positions = [r["position"] for r in shipped if r["doc_id"] == doc_id]
        assert positions == list(range(1, len(positions) + 1))


def test_shipped_hashes_pin_the_paragraph_text(shipped):
    assert all(r["hash"] == text_hash(r["text"]) for r in shipped)


@pytest.mark.parametrize(
    "boilerplate",
    ["Leave a Reply", "Exit mobile version", "More From Author", "No comments yet",
     "Your email address will not be published", "Wednesday, April 17, 2024", "Home News"],
)
def test_no_boilerplate_survives_in_the_shipped_corpus(shipped, boilerplate):
    assert [r["id"] for r in shipped if boilerplate.lower() in r["text"].lower()] == []


def test_shipped_paragraphs_file_is_what_the_seeds_segment_into(tmp_path):
    build_corpus(paths.SEEDS, tmp_path / "paragraphs.jsonl")
    assert (tmp_path / "paragraphs.jsonl").read_bytes() == paths.PARAGRAPHS.read_bytes()


def test_seed_files_are_byte_identical_to_the_shared_originals():
    shared = Path("/work/shared/seeds")
    if not shared.is_dir():
        pytest.skip("/work/shared/seeds is only present on the development machine")
    originals = sorted(p.name for p in shared.iterdir() if p.is_file())
    assert originals, "the shared seeds folder is empty"
    assert sorted(p.name for p in paths.SEEDS.glob("*.txt")) == originals
    for name in originals:
        assert (paths.SEEDS / name).read_bytes() == (shared / name).read_bytes(), name


# --- adding documents to the corpus (annotate --source) ----------------------------------------------------------


def incoming(doc_id: str, *texts: str, source: str = "new.txt") -> list[dict]:
    return [{"id": f"{doc_id}-{i:03d}", "doc_id": doc_id, "position": i, "kind": "body", "text": text,
             "hash": text_hash(text), "source": source} for i, text in enumerate(texts, start=1)]


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    out = tmp_path / "paragraphs.jsonl"
    out.write_text(json.dumps({"id": "d1-001", "doc_id": "d1", "kind": "body", "text": "It rained.",
                               "hash": text_hash("It rained.")}) + "\n", encoding="utf-8")
    return out


def test_add_to_corpus_appends_new_paragraphs_with_their_source(corpus_file):
    before = corpus_file.read_bytes()
    ids = add_to_corpus(incoming("new", "It rained.", "The sun came out."), corpus_file)
    assert ids == ["d1-001", "new-002"]  # a known text keeps its corpus id
    assert corpus_file.read_bytes().startswith(before)
    [added] = [json.loads(line) for line in corpus_file.read_text(encoding="utf-8").splitlines()[1:]]
    assert {k: added[k] for k in ("id", "doc_id", "position", "text", "n_words", "source")} == {
        "id": "new-002", "doc_id": "new", "position": 2, "text": "The sun came out.", "n_words": 4, "source": "new.txt"}
    assert added["added"].endswith("+00:00")
    assert add_to_corpus(incoming("new", "It rained.", "The sun came out."), corpus_file) == ["d1-001", "new-002"]
    assert len(corpus_file.read_text(encoding="utf-8").splitlines()) == 2  # the same source twice adds nothing


def test_add_to_corpus_refuses_a_known_id_with_other_text_and_writes_nothing(corpus_file):
    before = corpus_file.read_bytes()
    with pytest.raises(UserError) as exc:
        add_to_corpus(incoming("new", "Fresh text.") + incoming("d1", "Other text.", source="d1.txt"), corpus_file)
    assert str(exc.value) == (f"d1.txt: paragraph id 'd1-001' already exists in {corpus_file} with different text; "
                              "rename the file so its document id is new")
    assert corpus_file.read_bytes() == before


def test_add_to_corpus_waits_for_the_corpus_lock(corpus_file):
    import threading

    from experiments.io import locked

    done = threading.Event()
    with locked(corpus_file):
        worker = threading.Thread(target=lambda: (add_to_corpus(incoming("new", "Later."), corpus_file), done.set()))
        worker.start()
        assert not done.wait(0.3)  # blocked while another writer holds the lock
    worker.join(5)
    assert done.is_set()
    assert [json.loads(line)["id"] for line in corpus_file.read_text(encoding="utf-8").splitlines()] == ["d1-001", "new-001"]
