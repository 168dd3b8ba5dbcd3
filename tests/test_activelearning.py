"""The active-learning replay: shared seed sets, steps, reproducible orders, the labels-needed number, outputs.

A hashed bag of words stands in for the sentence encoder, so nothing here
loads a model and the real embedding cache is never touched.
"""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest

from experiments import activelearning
from experiments.activelearning import bench_active_learning, format_result, labels_needed, replay
from experiments.codebook import load_codebook
from experiments.errors import UserError
from experiments.importer import ImportOptions, import_table
from experiments.learner import Learner, uncertainty
from experiments.models import encoders

WORDS = {"favor": "support back endorse welcome", "against": "oppose reject condemn refuse",
         "none": "weather lunch football garden"}
FILLER = "today people said about the plan in city news".split()


def fake_transform(self, X):
    """Unit vectors of hashed words: texts sharing words point the same way."""
    out = np.zeros((len(list(X)), 64))
    for row, text in enumerate(X):
        for word in text.lower().split():
            out[row, int(hashlib.sha256(word.encode()).hexdigest(), 16) % 64] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@pytest.fixture(autouse=True)
def no_encoder(monkeypatch):
    monkeypatch.setattr(encoders.SentenceEmbedder, "transform", fake_transform)


def make_dataset(tmp_path, name="toy", labels=("FAVOR", "AGAINST", "NONE"), split=False, rows=90):
    """Targets A (2/3 of the rows) and B, each with every stance; stance words mixed with filler so the learner is unsure of some rows."""
    path = tmp_path / f"{name}.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ID", "Target", "Text", "Stance", "Split"])
        for i in range(rows):
            stance = list(WORDS)[i % 3]
            words = WORDS[stance].split()
            text = " ".join([words[i % 4], FILLER[i % 9], FILLER[(i * 7) % 9], words[(i // 3) % 4] if i % 5 else FILLER[i % 4]])
            writer.writerow([f"r{i}", "B" if (i // 3) % 3 == 0 else "A", f"{text} #{i}", labels[i % 3],
                             "test" if i % 4 == 0 else "dev" if i % 11 == 0 else "train"])
    options = ImportOptions(text_column="Text", stance_column="Stance", target_column="Target", id_column="ID",
                            split_column="Split" if split else None)
    import_table(path, name, options, root=tmp_path / "imported")
    return tmp_path / "imported"


def run(tmp_path, root, **kwargs):
    kwargs = {"seed_size": 6, "step": 4, "repeats": 2, "progress": False, "out_dir": tmp_path / "out",
              "root": root, "log": lambda *_: None, **kwargs}
    return replay("toy", **kwargs)


def test_labels_needed_is_the_first_count_that_reaches_the_target():
    labels = [20, 30, 40, 50, 60]
    assert labels_needed(labels, [0.30, 0.41, 0.39, 0.45, 0.50], 0.40) == 30
    assert labels_needed(labels, [0.30, 0.35, 0.39, 0.45, 0.50], 0.45) == 50  # reaching it exactly counts
    assert labels_needed(labels, [0.50, 0.35, 0.39, 0.45, 0.50], 0.45) == 20
    assert labels_needed(labels, [0.30, 0.35, 0.39, 0.44, 0.449], 0.45) is None


def test_every_order_starts_from_the_same_seed_set_and_grows_by_step(tmp_path):
    root = make_dataset(tmp_path)
    logged = []
    result = run(tmp_path, root, log=logged.append)
    assert result.target == "A"  # the target with the most rows
    assert any("'A'" in line and "most rows" in line for line in logged)
    assert result.pool + result.test == 60 and result.test == 18  # 70/30 of target A's rows
    budget = result.pool
    assert result.labels == list(range(6, budget, 4)) + [budget]
    for r in range(2):
        seeds = {order: tuple(result.sequences[order][r][:6]) for order in result.orders}
        assert len(set(seeds.values())) == 1
        for order in result.orders:
            sequence = result.sequences[order][r]
            assert len(sequence) == len(set(sequence)) == budget
            assert len(result.curves[order][r]) == len(result.labels)
    assert result.sequences["random"][0][:6] != result.sequences["random"][1][:6]  # repeats draw other seed sets
    # document order: after the seed set, the pool in file order
    rest = result.sequences["document"][0][6:]
    assert rest == sorted(rest, key=lambda i: int(i[1:]))
    # at the full budget every order has labelled the whole pool: the same model, the same score
    finals = {round(result.curves[order][0][-1], 6) for order in result.orders}
    assert len(finals) == 1
    assert result.target_f1 == pytest.approx(np.mean([c[-1] for c in result.curves["random"]]), abs=1e-6)
    assert result.needed["random"] is not None and result.ratio["random"] == 1.0


def test_uncertain_order_serves_the_learners_most_uncertain_rows_first(tmp_path):
    root = make_dataset(tmp_path)
    result = run(tmp_path, root, orders=("uncertain", "random"), repeats=1, diversity=0.0)
    pool, _, _, _, view, _ = activelearning.load_rows("toy", load_codebook(), root=root)
    seed_ids = result.sequences["uncertain"][0][:6]
    index = {row_id: i for i, row_id in enumerate(pool.ids)}
    seed = [index[i] for i in seed_ids]
    learner = Learner(view, model="embed_logreg", seed=0).fit([pool.texts[i] for i in seed],
                                                               [pool.stance[i] for i in seed], [[] for _ in seed])
    left = [i for i in range(len(pool.ids)) if i not in seed]
    scores = [uncertainty(p) for p in learner.predict([pool.texts[i] for i in left])]
    by_uncertainty = [pool.ids[left[j]] for j in sorted(range(len(left)), key=lambda j: (-scores[j], j))]
    assert result.sequences["uncertain"][0][6:10] == by_uncertainty[:4]


def test_the_random_order_is_reproducible_with_the_same_seed(tmp_path):
    root = make_dataset(tmp_path)
    first = run(tmp_path, root, orders=("random",), repeats=1, seed=3)
    again = run(tmp_path, root, orders=("random",), repeats=1, seed=3)
    other = run(tmp_path, root, orders=("random",), repeats=1, seed=4)
    assert first.sequences == again.sequences and first.curves == again.curves
    assert first.sequences != other.sequences


def test_the_png_and_json_are_written(tmp_path):
    root = make_dataset(tmp_path)
    printed = []
    result = bench_active_learning("toy", seed_size=6, step=4, repeats=2, out_dir=tmp_path / "out", progress=False,
                                   root=root, log=printed.append)
    assert result.png == tmp_path / "out" / "curves-embed_logreg.png"
    assert result.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads(result.json.read_text(encoding="utf-8"))
    assert saved["curves"] == result.curves and saved["labels"] == result.labels
    assert saved["needed"] == result.needed and saved["target"] == "A"
    assert saved["mean"]["random"][-1] == pytest.approx(result.target_f1, abs=1e-6)
    assert printed[-1] == format_result(result)
    assert "random's final macro-F1" in printed[-1] and "uncertain" in printed[-1]
    assert "AGAINST -> against" in printed[-1]  # the labels were matched to the codebook ignoring case


def test_the_split_column_makes_train_the_pool_and_test_the_evaluation(tmp_path):
    root = make_dataset(tmp_path, split=True)
    result = run(tmp_path, root, target="B", orders=("random",), repeats=1, seed_size=4, step=3)
    in_b = [i for i in range(90) if (i // 3) % 3 == 0]
    train = {f"r{i}" for i in in_b if i % 4 and i % 11}
    test = {f"r{i}" for i in in_b if i % 4 == 0}
    assert set(result.sequences["random"][0]) == train
    assert result.test == len(test) and "split column" in result.split


def test_labels_outside_the_codebook_are_refused_in_one_line(tmp_path):
    root = make_dataset(tmp_path, labels=("pro", "con", "NONE"))
    with pytest.raises(UserError) as excinfo:
        run(tmp_path, root)
    message = str(excinfo.value)
    assert "\n" not in message
    assert "stance labels con, pro are not in the codebook" in message and "--map" in message
    assert not (tmp_path / "out").exists()


def test_an_unknown_target_names_the_targets(tmp_path):
    root = make_dataset(tmp_path)
    with pytest.raises(UserError, match=r"--target 'C': not a target of imported dataset 'toy' \(A, B\)"):
        run(tmp_path, root, target="C")
