"""Labelled data for a task: label encoding, paragraph kinds and the data fingerprint."""

from __future__ import annotations

import datasets
from pathlib import Path

import pytest

from experiments import paths
from experiments.annotations import derive_gold, load_paragraphs
from experiments.config import Config, load_config
from experiments.data import DATA_SOURCES, fingerprint, load_dataset, task_data
from experiments.errors import UserError

RECORDS = [
    {"id": "a-001", "doc_id": "a", "kind": "headline", "text": "Strikes Condemned", "hash": "h1",
     "stance": "against", "frames": ["security"]},
    {"id": "a-002", "doc_id": "a", "kind": "body", "text": "Sanctions hurt workers.", "hash": "h2",
     "stance": "none", "frames": ["economic", "humanitarian"]},
    {"id": "b-001", "doc_id": "b", "kind": "body", "text": "Exiles ask the UN to act.", "hash": "h3",
     "stance": "favor", "frames": []},
]


def config(**fields) -> Config:
    return Config(name="t", tasks=["stance", "frames"], models=[{"name": "majority"}], **fields)


def test_stance_is_encoded_as_indices_into_the_codebook_labels(codebook):
    data = task_data(datasets.Dataset.from_list(RECORDS), "stance", config(), codebook, "fp")
    assert data.labels == ["favor", "against", "neutral", "none"]
    assert data.y.tolist() == [1, 3, 0]
    assert not data.multilabel
    assert [data.decode(v) for v in data.y] == ["against", "none", "favor"]
    assert (data.ids, data.doc_ids.tolist(), data.hashes) == (["a-001", "a-002", "b-001"], ["a", "a", "b"], ["h1", "h2", "h3"])


def test_frames_are_a_zero_one_matrix_over_the_project_frames(codebook):
    data = task_data(datasets.Dataset.from_list(RECORDS), "frames", config(), codebook, "fp")
    assert data.labels == codebook.frame_labels
    assert data.multilabel
    assert data.y.shape == (3, 7)
    assert [data.decode(row) for row in data.y] == [["security"], ["humanitarian", "economic"], []]


def test_generic_frame_level_maps_frames_to_the_policy_frames_codebook(codebook):
    data = task_data(datasets.Dataset.from_list(RECORDS), "frames", config(frame_level="generic"), codebook, "fp")
    assert data.labels == codebook.generic_labels
    assert [data.decode(row) for row in data.y] == [["security_defense"], ["economic", "health_safety"], []]


def test_the_fingerprint_ignores_order_and_follows_texts_labels_and_codebook_version():
    base = fingerprint(RECORDS, "1.0.0")
    assert fingerprint(list(reversed(RECORDS)), "1.0.0") == base
    assert fingerprint(RECORDS, "1.0.1") != base
    relabelled = [{**RECORDS[0], "stance": "favor"}, *RECORDS[1:]]
    edited = [{**RECORDS[0], "hash": "h9"}, *RECORDS[1:]]
    assert fingerprint(relabelled, "1.0.0") != base
    assert fingerprint(edited, "1.0.0") != base
    assert fingerprint(RECORDS[:2], "1.0.0") != base


def test_data_kinds_selects_headlines_or_body_paragraphs(codebook):
    headlines, _, fp_headlines, _ = load_dataset(load_config(paths.CONFIGS / "smoke.yaml", ["data.kinds=[headline]"]), codebook)
    everything, _, fp_all, _ = load_dataset(load_config(paths.CONFIGS / "smoke.yaml"), codebook)
    gold = derive_gold(codebook, load_paragraphs()).gold
    assert set(headlines["kind"]) == {"headline"}
    assert len(headlines) == sum(g["kind"] == "headline" for g in gold) > 0
    assert len(everything) == len(gold)
    assert fp_headlines != fp_all


def test_an_unknown_data_source_lists_the_registered_ones(codebook, monkeypatch):
    monkeypatch.setattr("experiments.paths.IMPORTED", Path("/nonexistent"))
    with pytest.raises(UserError) as excinfo:
        load_dataset(config(data={"source": "nowhere"}), codebook)
    assert str(excinfo.value) == (f"data.source: unknown data source 'nowhere'; available: {', '.join(sorted(DATA_SOURCES))} "
                                  "(add one with `python -m experiments import`)")
    assert "gold" in DATA_SOURCES
