"""The gold export: DatasetDict, Parquet, dataset card and codebook copy, written all at once or not at all."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml

from experiments import paths
from experiments.data import fingerprint
from experiments.errors import UserError
from experiments.export import export_gold


def row(id: str, doc: str, stance: str, frames: list[str], source: str = "single", kind: str = "body",
        annotators: tuple[str, ...] = ("ann",)) -> dict:
    text = f"Paragraph {id} about Iran."
    return {"id": id, "doc_id": doc, "kind": kind, "text": text, "hash": f"h-{id}", "stance": stance,
            "frames": frames, "annotators": list(annotators), "source": source, "rationale": f"quote {id}",
            "rationales": [{"start": 0, "end": 9, "text": text[:9], "label": "stance"}]}


GOLD = [
    row("b-001", "b", "favor", ["humanitarian", "security"], kind="headline"),
    row("b-002", "b", "favor", ["humanitarian"], source="agreed", annotators=("ann", "kim")),
    row("b-003", "b", "none", []),
    row("a-001", "a", "against", ["sovereignty"], source="adjudicated", annotators=("ann", "kim")),
    row("a-002", "a", "against", ["security", "sovereignty", "economic"]),
    row("c-001", "c", "neutral", ["regime_legitimacy"]),
    row("c-002", "c", "none", ["resistance", "gender"]),
]


def write_gold(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def gold(tmp_path) -> Path:
    return write_gold(tmp_path / "gold.jsonl", GOLD)


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".out."))


def test_the_dataset_round_trips_with_the_codebook_labels(tmp_path, gold, codebook):
    summary = export_gold(tmp_path / "out", codebook, gold_path=gold)
    ds = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))
    assert list(ds) == ["train"] and summary.rows == {"train": len(GOLD)}
    train = ds["train"]
    assert train.features["stance"].names == codebook.stance_labels
    assert train.features["frames"].feature.names == codebook.frame_labels
    stance, frames = train.features["stance"], train.features["frames"].feature
    for got, want in zip(train, GOLD):
        assert stance.int2str(got["stance"]) == want["stance"]
        assert [frames.int2str(f) for f in got["frames"]] == want["frames"]
        assert got["frame_vector"] == [int(f in want["frames"]) for f in codebook.frame_labels]
        for key in ("id", "doc_id", "kind", "text", "hash", "annotators", "source", "rationale", "rationales"):
            assert got[key] == want[key], key
    # split="document": one fold per document, numbered in sorted doc_id order.
    assert dict(zip(train["id"], train["fold"])) == {"a-001": 0, "a-002": 0, "b-001": 1, "b-002": 1, "b-003": 1,
                                                     "c-001": 2, "c-002": 2}
    description = train.info.description
    assert f"Codebook version {codebook.version}" in description
    assert ", ".join(codebook.stance_labels) in description and ", ".join(codebook.frame_labels) in description
    assert summary.fingerprint == fingerprint(GOLD, codebook.version)
    assert (tmp_path / "out" / "codebook.yaml").read_bytes() == paths.CODEBOOK.read_bytes()
    assert leftovers(tmp_path) == []


def test_split_none_has_no_fold_column(tmp_path, gold, codebook):
    export_gold(tmp_path / "out", codebook, gold_path=gold, split="none")
    train = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))["train"]
    assert "fold" not in train.column_names and len(train) == len(GOLD)
    assert "fold" not in (tmp_path / "out" / "README.md").read_text(encoding="utf-8").split("## Columns")[1]
    with pytest.raises(UserError, match="split: 'random' is not one of document, none"):
        export_gold(tmp_path / "other", codebook, gold_path=gold, split="random")


def test_the_parquet_file_holds_the_same_rows(tmp_path, gold, codebook):
    summary = export_gold(tmp_path / "out", codebook, gold_path=gold)
    assert summary.parquet == {"train": tmp_path / "out" / "parquet" / "train.parquet"}
    table = pq.read_table(summary.parquet["train"])
    train = datasets.load_from_disk(str(tmp_path / "out" / "dataset"))["train"]
    assert table.column_names == train.column_names
    assert table.to_pylist() == train.to_list()


def test_the_card_gives_the_codebook_version_and_counts_from_the_data(tmp_path, gold, codebook):
    export_gold(tmp_path / "out", codebook, gold_path=gold)
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["task_categories"] == ["text-classification"] and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"] and meta["license_name"] == "see source documents"
    assert meta["configs"][0]["data_files"][0]["path"] == "parquet/train.parquet"
    assert f"codebook version **{codebook.version}**" in body
    assert f"{len(GOLD)} English paragraphs from 3 documents" in body
    assert f"The corpus is small: {len(GOLD)} paragraphs from 3 documents" in body

    def counts(section: str) -> dict[str, int]:
        table = body.split(f"## {section}")[1].split("\n## ")[0]
        return {m[1]: int(m[2]) for m in re.finditer(r"^\| \d+ \| (\w+) \| (\d+) \|", table, re.M)}

    stance = Counter(r["stance"] for r in GOLD)
    frames = Counter(f for r in GOLD for f in r["frames"])
    assert counts("Stance labels") == {s: stance[s] for s in codebook.stance_labels}
    assert counts("Frame labels") == {f: frames[f] for f in codebook.frame_labels}
    for label in [*codebook.stance.labels, *codebook.frames.labels]:
        assert " ".join(label.definition.split()) in body
    assert "| 1 | b | 3 | 2 | 0 | 0 | 1 |" in body  # fold, doc, n, favor, against, neutral, none
    for source, n in Counter(r["source"] for r in GOLD).items():
        assert f"| {source} | {n} |" in body
    assert "1 of 7 carry none" in body


def test_a_non_empty_out_folder_is_refused_without_force(tmp_path, gold, codebook):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    for overwrite in (False, True):  # --force replaces only an earlier export
        with pytest.raises(UserError, match=rf"^{re.escape(str(out))}: folder is not empty and holds no earlier "
                                            r"export \(no export.json\); choose a new or empty folder$"):
            export_gold(out, codebook, gold_path=gold, overwrite=overwrite)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    export_gold(empty, codebook, gold_path=gold)
    assert (empty / "dataset").is_dir()


def test_force_replaces_an_earlier_export(tmp_path, gold, codebook):
    out = tmp_path / "out"
    export_gold(out, codebook, gold_path=gold)
    with pytest.raises(UserError, match=rf"^{re.escape(str(out))}: an earlier export is there; .*pass --force"):
        export_gold(out, codebook, gold_path=gold)
    write_gold(gold, GOLD[:4])
    summary = export_gold(out, codebook, gold_path=gold, overwrite=True)
    assert summary.rows == {"train": 4}
    assert len(datasets.load_from_disk(str(out / "dataset"))["train"]) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gold.jsonl", "out"]


def test_a_missing_gold_file_says_to_run_corpus(tmp_path, codebook):
    with pytest.raises(UserError, match=r"gold\.jsonl: gold labels not found; run `python -m experiments corpus`"):
        export_gold(tmp_path / "out", codebook, gold_path=tmp_path / "gold.jsonl")
    assert not (tmp_path / "out").exists()


def test_an_unknown_label_names_the_line_and_writes_nothing(tmp_path, codebook):
    gold = write_gold(tmp_path / "gold.jsonl", [*GOLD[:2], {**GOLD[2], "stance": "pro"}, *GOLD[3:]])
    with pytest.raises(UserError, match=rf"^{re.escape(str(gold))}:3: stance 'pro' is not a codebook stance label"):
        export_gold(tmp_path / "out", codebook, gold_path=gold)
    write_gold(gold, [{**GOLD[0], "frames": ["war"]}])
    with pytest.raises(UserError, match=r"gold\.jsonl:1: frame 'war' is not a codebook frame label"):
        export_gold(tmp_path / "out", codebook, gold_path=gold)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


def test_a_failure_while_writing_leaves_nothing_behind(tmp_path, gold, codebook, monkeypatch):
    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(datasets.Dataset, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        export_gold(tmp_path / "out", codebook, gold_path=gold)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    monkeypatch.undo()
    export_gold(tmp_path / "out", codebook, gold_path=gold)
    monkeypatch.setattr(datasets.Dataset, "to_parquet", broken)
    with pytest.raises(OSError):
        export_gold(tmp_path / "out", codebook, gold_path=write_gold(gold, GOLD[:2]), overwrite=True)
    assert len(datasets.load_from_disk(str(tmp_path / "out" / "dataset"))["train"]) == len(GOLD)  # the old export stays
    assert leftovers(tmp_path) == []


def test_the_codebook_file_must_match_the_codebook_used(tmp_path, gold, codebook):
    other = tmp_path / "codebook.yaml"
    other.write_text(paths.CODEBOOK.read_text(encoding="utf-8").replace(f'version: "{codebook.version}"',
                                                                        'version: "0.0.1"', 1), encoding="utf-8")
    with pytest.raises(UserError, match=r"codebook\.yaml: differs from the codebook .*version 0\.0\.1 vs"):
        export_gold(tmp_path / "out", codebook, gold_path=gold, codebook_path=other)
    assert not (tmp_path / "out").exists()


def test_the_summary_lines_name_the_rows_and_paths(tmp_path, gold, codebook):
    summary = export_gold(tmp_path / "out", codebook, gold_path=gold)
    lines = summary.lines()
    assert lines[0].startswith(f"7 gold paragraphs from 3 documents (train: 7), codebook {codebook.version}")
    assert any(str(tmp_path / "out" / "README.md") in line for line in lines)
