"""Evaluation protocols: coverage, grouping, determinism and no duplicate text on both sides of a fold."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.config import ProtocolConfig
from experiments.corpus import text_hash
from experiments.data import TaskData
from experiments.errors import UserError
from experiments.protocols import make_folds

# 6 documents x 4 paragraphs. Some texts occur twice: a statement quoted by two
# documents (d1-1 = d4-2, d2-0 = d5-3) and a line repeated inside a document (d3-0 = d3-3).
DOCS = [f"d{i}" for i in range(6) for _ in range(4)]
TEXTS = [f"paragraph {j} of document {i}" for i in range(6) for j in range(4)]
TEXTS[4 * 4 + 2] = TEXTS[1 * 4 + 1]
TEXTS[5 * 4 + 3] = TEXTS[2 * 4 + 0]
TEXTS[3 * 4 + 3] = TEXTS[3 * 4 + 0]
STANCE = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
FRAMES = [[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]] * 4
SPLIT = ["train"] * 14 + ["dev"] * 4 + ["test"] * 6


def task_data(task: str) -> TaskData:
    stance = task == "stance"
    return TaskData(
        task=task,
        labels=["a", "b", "c"],
        ids=[f"p{i:02d}" for i in range(len(TEXTS))],
        texts=TEXTS,
        doc_ids=np.array(DOCS),
        hashes=[text_hash(t) for t in TEXTS],
        y=np.array(STANCE if stance else FRAMES),
        columns={"split": SPLIT, "outlet": [d[:2] if d < "d3" else "x" for d in DOCS]},
    )


def folds(name: str, task: str = "stance", seed: int = 0, **spec):
    return make_folds(task_data(task), ProtocolConfig(name=name, **spec), seed)


CASES = [
    ("kfold", "stance", {"folds": 3, "repeats": 2}),
    ("kfold", "frames", {"folds": 3, "repeats": 2}),
    ("lodo", "stance", {}),
    ("lodo", "frames", {}),
    ("group_kfold", "stance", {"folds": 3, "repeats": 2}),
    ("group_kfold", "frames", {"folds": 3, "repeats": 2}),
    ("split", "stance", {}),
]


@pytest.mark.parametrize("name, task, spec", CASES, ids=[f"{n}-{t}" for n, t, _ in CASES])
def test_no_test_text_or_duplicate_of_it_is_in_training(name, task, spec):
    hashes = np.array(task_data(task).hashes)
    for fold in folds(name, task, **spec):
        assert set(hashes[fold.test]).isdisjoint(hashes[fold.train]), (fold.repeat, fold.fold)
        assert set(fold.test).isdisjoint(fold.train)


def test_duplicates_of_the_test_document_are_dropped_from_training():
    by_doc = {DOCS[f.test[0]]: f for f in folds("lodo")}
    # d1's paragraph 1 is quoted in d4 (index 18): with d1 held out, that copy may not be trained on.
    assert 18 not in by_doc["d1"].train
    assert len(by_doc["d1"].train) == 24 - 4 - 1
    # d0 shares no text with other documents: every other paragraph is used.
    assert by_doc["d0"].train.tolist() == list(range(4, 24))


@pytest.mark.parametrize("name, task, spec", CASES[:6], ids=[f"{n}-{t}" for n, t, _ in CASES[:6]])
def test_every_paragraph_is_tested_exactly_once_per_repeat(name, task, spec):
    result = folds(name, task, **spec)
    repeats = sorted({f.repeat for f in result})
    assert repeats == list(range(spec.get("repeats", 1)))
    for repeat in repeats:
        tested = np.concatenate([f.test for f in result if f.repeat == repeat])
        assert sorted(tested.tolist()) == list(range(24))


def test_kfold_makes_the_configured_number_of_folds_per_repeat():
    assert [(f.repeat, f.fold) for f in folds("kfold", folds=3, repeats=2)] == [(r, k) for r in range(2) for k in range(3)]


@pytest.mark.parametrize("task", ["stance", "frames"])
def test_lodo_holds_out_exactly_one_whole_document_per_fold(task):
    result = folds("lodo", task, repeats=3)  # repeats do not apply: each document is held out once
    held_out = [sorted(set(np.array(DOCS)[f.test])) for f in result]
    assert held_out == [[d] for d in ["d0", "d1", "d2", "d3", "d4", "d5"]]
    for fold in result:
        assert fold.test.tolist() == [i for i, d in enumerate(DOCS) if d == held_out[fold.fold][0]]
        assert held_out[fold.fold][0] not in set(np.array(DOCS)[fold.train])


def test_lodo_can_group_by_another_column():
    result = folds("lodo", group_column="outlet")
    outlets = np.array(task_data("stance").columns["outlet"])
    assert [sorted(set(outlets[f.test])) for f in result] == [["d0"], ["d1"], ["d2"], ["x"]]


@pytest.mark.parametrize("task", ["stance", "frames"])
def test_group_kfold_never_splits_a_document(task):
    docs = np.array(DOCS)
    for fold in folds("group_kfold", task, folds=3, repeats=2):
        assert set(docs[fold.test]).isdisjoint(docs[fold.train])


def test_split_trains_on_train_rows_and_tests_on_test_rows_only():
    (fold,) = folds("split")
    assert fold.test.tolist() == list(range(18, 24))
    # Train rows are 0-13 (14-17 are dev); 5 and 8 are left out because their texts
    # reappear in the test rows 18 and 23.
    assert fold.train.tolist() == [0, 1, 2, 3, 4, 6, 7, 9, 10, 11, 12, 13]


def test_split_drops_training_copies_of_test_texts():
    data = task_data("stance")
    data.columns["split"] = ["test" if d == "d1" else "train" for d in DOCS]
    (fold,) = make_folds(data, ProtocolConfig(name="split"), 0)
    assert fold.test.tolist() == [4, 5, 6, 7]
    assert 18 not in fold.train  # d4's copy of d1's paragraph


@pytest.mark.parametrize(
    "name, task, spec",
    [("kfold", "stance", {"folds": 3}), ("kfold", "frames", {"folds": 3}),
     ("group_kfold", "stance", {"folds": 3}), ("group_kfold", "frames", {"folds": 3})],
)
def test_the_seed_decides_the_folds(name, task, spec):
    def exact(seed):
        return [(f.fold, f.test.tolist(), f.train.tolist()) for f in folds(name, task, seed, **spec)]

    def partition(seed):  # which paragraphs are tested together, whatever the fold order
        return {frozenset(f.test.tolist()) for f in folds(name, task, seed, **spec)}

    assert exact(0) == exact(0)
    assert partition(0) != partition(1)


def test_repeats_reshuffle_the_folds():
    result = folds("kfold", folds=3, repeats=2)
    first = {tuple(f.test) for f in result if f.repeat == 0}
    second = {tuple(f.test) for f in result if f.repeat == 1}
    assert first != second


def test_folds_are_sorted_index_arrays():
    for fold in folds("kfold", folds=3, repeats=1):
        assert fold.train.tolist() == sorted(fold.train.tolist())
        assert fold.test.tolist() == sorted(fold.test.tolist())


@pytest.mark.parametrize(
    "name, spec, message",
    [
        ("kfold", {"folds": 30}, "protocol.folds: 30 folds need at least 30 paragraphs, the data has 24; "
                                 "set protocol.folds to at most 24"),
        ("group_kfold", {"folds": 7}, "protocol.folds: 7 folds need at least 7 groups (values of doc_id), the data "
                                      "has 6; set protocol.folds to at most 6, or use protocol.name: lodo"),
        ("lodo", {"group_column": "source"}, "protocol.group_column: 'source' is not a column of the data (columns: outlet, split)"),
        ("split", {"split_column": "part"}, "protocol.split_column: 'part' is not a column of the data (columns: "
                                            "outlet, split); name the column that holds train, dev and test, "
                                            "or use another protocol.name"),
    ],
)
def test_a_protocol_that_cannot_be_applied_is_an_error(name, spec, message):
    with pytest.raises(UserError) as excinfo:
        folds(name, **spec)
    assert str(excinfo.value) == message


def test_lodo_needs_two_documents():
    data = task_data("stance")
    data.doc_ids = np.array(["only"] * len(DOCS))
    with pytest.raises(UserError, match=r"^protocol\.name: lodo needs at least two documents \(values of doc_id\), "
                                        r"the data has one; use protocol\.name: kfold$"):
        make_folds(data, ProtocolConfig(name="lodo"), 0)


def test_split_values_must_be_train_dev_or_test():
    data = task_data("stance")
    data.columns["split"] = ["train"] * 20 + ["validation"] * 4
    with pytest.raises(UserError, match=r"^protocol\.split_column: values must be train, dev or test, found \['validation'\]$"):
        make_folds(data, ProtocolConfig(name="split"), 0)
