"""The ONNX Runtime path of the sentence encoder and the fine-tuned classifier.

What is checked: the exported encoder gives PyTorch's embeddings (within 1e-3, in practice ~1e-7) through
padded, length-sorted batches; ``backend: auto`` falls back to PyTorch with one log line when onnxruntime is
missing, the export fails or the parity check fails, and ``backend: onnx`` then refuses; the export is built
once, reused, and rebuilt when its file is damaged or partial; the embedding cache never mixes the two runtimes;
and the fine-tuned classifier's ONNX copy gives PyTorch's probabilities.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments.errors import UserError
from experiments.models import encoders, onnx
from experiments.models.encoders import SentenceEmbedder, model_fingerprint, resolve_model_dir
from experiments.models.finetune import TransformerClassifier

TEXTS = [
    "Exiles urge the world to step in and protect the protesters",
    "No foreign power has the right to bomb Iran",
    "The foreign ministry said talks will resume next week",
    "Food prices rose",
    "The opposition calls for foreign help to end the crackdown, and for sanctions on the officials who ordered it",
    "  Intervention would only bring more war and suffering  ",
]
STANCE = np.array([0, 1, 2, 3, 0, 1])
FRAMES = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 1], [1, 1, 0], [0, 1, 0]])


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A new process's view: an empty project cache, nothing exported or resolved yet."""
    monkeypatch.setenv("EXPERIMENTS_CACHE", str(tmp_path))
    monkeypatch.setattr(onnx, "_LOADED", {})
    monkeypatch.setattr(encoders, "_BACKENDS", {})
    monkeypatch.setattr(encoders, "_CACHES", {})
    return tmp_path


@pytest.fixture(scope="module")
def prebuilt(tmp_path_factory):
    """One real export of the packaged MiniLM, built once for the module: (its folder, its meta)."""
    model_dir = resolve_model_dir(encoders.DEFAULT_MODEL)
    pooling = onnx.pooling_mode(model_dir)
    return onnx.build_export(onnx.export_key(model_dir, pooling),
                             lambda target: onnx._export(model_dir, pooling, target),
                             onnx._sentence_parity(encoders.DEFAULT_MODEL, model_dir, 64),
                             root=tmp_path_factory.mktemp("onnx"))


def install(prebuilt, cache: Path) -> Path:
    """Copy the module's export into ``cache`` where a load looks for it."""
    directory, _ = prebuilt
    target = cache / "onnx" / directory.name
    shutil.copytree(directory, target)
    return target


def count_exports(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    original = onnx._export

    def counting(model_dir, pooling, target):
        calls.append(target)
        return original(model_dir, pooling, target)

    monkeypatch.setattr(onnx, "_export", counting)
    return calls


# Parity. --------------------------------------------------------------------------------------------

def test_the_export_is_minilm_with_mean_pooling_and_its_parity_is_recorded(prebuilt):
    directory, meta = prebuilt
    assert onnx.pooling_mode(resolve_model_dir(encoders.DEFAULT_MODEL)) == "mean"
    assert meta["input_names"] == ["input_ids", "token_type_ids", "attention_mask"]
    assert 0 <= meta["parity_max_abs_diff"] < 1e-5
    assert onnx.read_export(directory) == meta


def test_onnx_embeddings_match_pytorch_within_1e_3(fresh, prebuilt):
    install(prebuilt, fresh)
    fast = SentenceEmbedder(max_length=32, device="cpu", precision="fp32", cache=False, backend="onnx")
    exact = SentenceEmbedder(max_length=32, device="cpu", precision="fp32", cache=False, backend="torch")
    assert fast.backend_() == "onnx" and exact.backend_() == "torch"
    got, expected = fast.encode(TEXTS), exact.encode(TEXTS)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-3
    assert np.linalg.norm(got, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)
    # Batches of two, length-sorted: rows come back in the caller's order, whatever the padding.
    small = SentenceEmbedder(max_length=32, device="cpu", precision="fp32", cache=False, backend="onnx", batch_size=2)
    assert np.abs(small.encode(TEXTS) - got).max() < 1e-5
    assert np.abs(small.encode(TEXTS[::-1]) - got[::-1]).max() < 1e-5
    assert small.encode([]).shape == (0, 384)


def test_truncation_follows_max_length(fresh, prebuilt):
    install(prebuilt, fresh)
    long = [" ".join(["sanctions"] * 100), " ".join(["sanctions"] * 100) + " and then something else entirely"]
    onnx16 = SentenceEmbedder(max_length=16, device="cpu", precision="fp32", cache=False, backend="onnx").encode(long)
    torch16 = SentenceEmbedder(max_length=16, device="cpu", precision="fp32", cache=False, backend="torch").encode(long)
    assert np.abs(onnx16 - torch16).max() < 1e-3
    assert np.abs(onnx16[0] - onnx16[1]).max() < 1e-6  # the tails differ only past the 16th token


def test_the_parity_check_measures_the_difference_from_pytorch(prebuilt, monkeypatch):
    directory, meta = prebuilt
    model_dir = resolve_model_dir(encoders.DEFAULT_MODEL)
    parity = onnx._sentence_parity(encoders.DEFAULT_MODEL, model_dir, 64)
    assert parity(directory / "model.onnx", meta["input_names"]) < 1e-5
    original = onnx.torch_reference
    monkeypatch.setattr(onnx, "torch_reference", lambda *a: original(*a) + 0.01)
    assert parity(directory / "model.onnx", meta["input_names"]) == pytest.approx(0.01, abs=1e-4)


# Fallback. ------------------------------------------------------------------------------------------

def fallback_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "runs on PyTorch" in r.getMessage()]


def test_auto_falls_back_to_torch_with_one_log_line_when_onnxruntime_is_missing(fresh, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    caplog.set_level(logging.INFO)
    embedder = SentenceEmbedder(max_length=32, device="cpu", precision="fp32", cache=False)
    assert embedder.backend_() == "torch"
    assert embedder.backend_() == "torch"  # decided once per process: still one line
    vectors = embedder.encode(TEXTS[:2])
    assert vectors.shape == (2, 384)
    [line] = fallback_lines(caplog)
    assert line.startswith(f"sentence encoder {encoders.DEFAULT_MODEL} runs on PyTorch: onnxruntime is not installed")
    assert [r.levelno for r in caplog.records if "runs on PyTorch" in r.getMessage()] == [logging.WARNING]
    with pytest.raises(UserError, match=r"^backend: onnx cannot be used: onnxruntime is not installed"):
        SentenceEmbedder(max_length=32, device="cpu", precision="fp32", backend="onnx").backend_()


def test_auto_falls_back_when_the_export_fails(fresh, monkeypatch, caplog):
    def broken(model_dir, pooling, target):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(onnx, "_export", broken)
    caplog.set_level(logging.INFO)
    assert SentenceEmbedder(max_length=32, device="cpu", precision="fp32").backend_() == "torch"
    [line] = fallback_lines(caplog)
    assert line.endswith("the ONNX export failed (RuntimeError: exporter exploded)")
    assert list((fresh / "onnx").iterdir()) == []  # no half export left behind


def test_auto_falls_back_when_the_export_disagrees_with_pytorch(fresh, prebuilt, caplog):
    directory = install(prebuilt, fresh)
    meta = json.loads((directory / "meta.json").read_text())
    meta["parity_max_abs_diff"] = 0.02
    (directory / "meta.json").write_text(json.dumps(meta))
    caplog.set_level(logging.INFO)
    assert SentenceEmbedder(max_length=32, device="cpu", precision="fp32").backend_() == "torch"
    [line] = fallback_lines(caplog)
    assert line.endswith("the export differs from PyTorch by 2.0e-02 (more than 0.001)")


def test_bf16_and_explicit_torch_stay_on_torch_without_exporting(fresh, monkeypatch, caplog):
    calls = count_exports(monkeypatch)
    caplog.set_level(logging.INFO)
    assert SentenceEmbedder(device="cpu", precision="bf16").backend_() == "torch"
    assert SentenceEmbedder(device="cpu", precision="fp32", backend="torch").backend_() == "torch"
    assert calls == []
    assert [r.levelno for r in caplog.records if "runs on PyTorch" in r.getMessage()] == [logging.INFO]
    with pytest.raises(UserError, match=r"^backend: 'tensorrt' is not one of auto, torch, onnx$"):
        SentenceEmbedder(backend="tensorrt").backend_()


def test_the_sklearn_contract_holds_for_backend():
    from sklearn.base import clone

    embedder = SentenceEmbedder(backend="definitely-not-checked-in-init")
    assert embedder.get_params()["backend"] == "definitely-not-checked-in-init"
    assert clone(SentenceEmbedder(backend="torch")).backend == "torch"
    assert TransformerClassifier(backend="onnx").get_params()["backend"] == "onnx"


# The export on disk. --------------------------------------------------------------------------------

def test_the_export_is_built_once_then_reused_and_a_damaged_one_is_rebuilt(fresh, monkeypatch):
    calls = count_exports(monkeypatch)
    first = onnx.load_onnx_encoder(encoders.DEFAULT_MODEL, 32)
    [directory] = (fresh / "onnx").iterdir()
    assert len(calls) == 1 and calls[0].parent != directory  # built in a scratch folder, then renamed
    assert sorted(p.name for p in directory.iterdir()) == ["meta.json", "model.onnx"]
    assert directory.name.startswith(model_fingerprint(resolve_model_dir(encoders.DEFAULT_MODEL)) + "-mean-")
    expected = first.encode(TEXTS)

    monkeypatch.setattr(onnx, "_LOADED", {})  # a new process: the export on disk is reused
    assert np.array_equal(onnx.load_onnx_encoder(encoders.DEFAULT_MODEL, 32).encode(TEXTS), expected)
    assert len(calls) == 1

    model = directory / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)  # same size, damaged weights
    model.write_bytes(bytes(data))
    monkeypatch.setattr(onnx, "_LOADED", {})
    assert np.abs(onnx.load_onnx_encoder(encoders.DEFAULT_MODEL, 32).encode(TEXTS) - expected).max() < 1e-6
    assert len(calls) == 2
    assert onnx.read_export(directory) is not None
    assert [p.name for p in (fresh / "onnx").iterdir()] == [directory.name]  # no scratch or damaged copies left


def fake_export(payload: bytes):
    calls = []

    def export(target: Path) -> list[str]:
        calls.append(target)
        target.write_bytes(payload)
        return ["input_ids"]

    return export, calls


@pytest.mark.parametrize("damage", ["truncated", "no meta", "bad meta", "empty folder"])
def test_a_partial_or_damaged_export_is_never_trusted(tmp_path, damage):
    export, calls = fake_export(b"x" * 1000)
    directory, meta = onnx.build_export("k", export, lambda target, names: 0.0, root=tmp_path)
    assert meta["size"] == 1000 and len(calls) == 1
    assert onnx.build_export("k", export, lambda target, names: 0.0, root=tmp_path) == (directory, meta)
    assert len(calls) == 1
    if damage == "truncated":
        (directory / "model.onnx").write_bytes(b"x" * 500)
    elif damage == "no meta":
        (directory / "meta.json").unlink()
    elif damage == "bad meta":
        (directory / "meta.json").write_text("{\"size\": 1000, \"sha")
    else:
        shutil.rmtree(directory)
        directory.mkdir()
    assert onnx.read_export(directory) is None
    assert onnx.build_export("k", export, lambda target, names: 0.0, root=tmp_path) == (directory, meta)
    assert len(calls) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["k"]


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    def export(target: Path) -> list[str]:
        target.write_bytes(b"half")
        raise RuntimeError("killed halfway")

    with pytest.raises(RuntimeError):
        onnx.build_export("k", export, lambda target, names: 0.0, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_only_the_most_recently_used_classifier_exports_are_kept(tmp_path):
    """Every fine-tuned fit has its own export; old ones are removed, the one in use never is."""
    import os

    export, _ = fake_export(b"x" * 100)
    built = []
    for i in range(5):
        directory, _ = onnx.build_export(f"classifier-{i}", export, lambda target, names: 0.0, root=tmp_path)
        os.utime(directory / "meta.json", (1000 + i, 1000 + i))
        built.append(directory)
    encoder, _ = onnx.build_export("f9a6-mean-x", export, lambda target, names: 0.0, root=tmp_path)
    removed = onnx.prune_classifier_exports(tmp_path, keep=3, keep_also=built[0])  # the oldest is in use again
    assert sorted(p.name for p in removed) == ["classifier-1", "classifier-2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classifier-0", "classifier-3", "classifier-4",
                                                          "f9a6-mean-x"]  # sentence encoders are not pruned


def test_pooling_is_read_from_the_sentence_transformers_config(tmp_path):
    def model(modules, pooling=None) -> Path:
        directory = tmp_path / str(len(list(tmp_path.iterdir())))
        (directory / "1_Pooling").mkdir(parents=True)
        if modules is not None:
            (directory / "modules.json").write_text(json.dumps(
                [{"type": f"sentence_transformers.models.{m}", "path": "1_Pooling" if m == "Pooling" else ""}
                 for m in modules]))
        if pooling is not None:
            (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
        return directory

    assert onnx.pooling_mode(model(None)) == "mean"
    assert onnx.pooling_mode(model(["Transformer", "Pooling", "Normalize"], {"pooling_mode_mean_tokens": True})) == "mean"
    assert onnx.pooling_mode(model(["Transformer", "Pooling"], {"pooling_mode_cls_token": True})) == "cls"
    with pytest.raises(onnx.OnnxUnavailable, match="pooling max is not reproduced"):
        onnx.pooling_mode(model(["Transformer", "Pooling"], {"pooling_mode_max_tokens": True}))
    with pytest.raises(onnx.OnnxUnavailable, match="Dense module is not reproduced"):
        onnx.pooling_mode(model(["Transformer", "Pooling", "Dense", "Normalize"], {"pooling_mode_mean_tokens": True}))


# The embedding cache. --------------------------------------------------------------------------------

def test_the_embedding_cache_keeps_onnx_and_torch_vectors_apart(fresh, prebuilt):
    install(prebuilt, fresh)
    SentenceEmbedder(max_length=32, device="cpu", precision="fp32", backend="torch").transform(TEXTS[:2])
    SentenceEmbedder(max_length=32, device="cpu", precision="fp32", backend="onnx").transform(TEXTS[:2])
    names = sorted(p.name for p in (fresh / "embeddings").glob("*.npz"))
    fingerprint = model_fingerprint(resolve_model_dir(encoders.DEFAULT_MODEL))
    assert len(names) == 2 and f"{fingerprint}-32-fp32.npz" in names  # PyTorch's key is unchanged
    [other] = [n for n in names if not n.startswith(fingerprint)]
    assert other.endswith("-32-fp32.npz")


# The fine-tuned classifier. --------------------------------------------------------------------------

@pytest.mark.parametrize("multilabel", [False, True])
def test_the_fine_tuned_classifier_on_onnx_matches_pytorch(fresh, multilabel):
    y = FRAMES if multilabel else STANCE
    fast = TransformerClassifier(multilabel=multilabel, max_steps=2, batch_size=4, max_length=32, device="cpu",
                                 precision="fp32", backend="onnx").fit(TEXTS, y)
    exact = TransformerClassifier(**{**fast.get_params(), "backend": "torch"})
    exact.__dict__.update({k: v for k, v in vars(fast).items() if k.endswith("_")})
    assert fast.runtime(1) == "onnx" and exact.runtime() == "torch"
    got, expected = fast.predict_proba(TEXTS, batch_size=4), exact.predict_proba(TEXTS, batch_size=4)
    assert got.shape == expected.shape == (len(TEXTS), y.shape[1] if multilabel else 4)
    assert np.abs(got - expected).max() < 1e-3
    assert np.array_equal(fast.predict(TEXTS), exact.predict(TEXTS))
    [export] = (fresh / "onnx").iterdir()
    assert export.name.startswith("classifier-")
    restored = pickle.loads(pickle.dumps(fast))  # the session is not pickled; the weights come back by load_weights
    assert "_onnx" not in vars(restored)


def test_auto_exports_the_classifier_only_for_a_large_prediction(fresh, monkeypatch):
    from experiments.models import finetune

    model = TransformerClassifier(max_steps=1, batch_size=4, max_length=32, device="cpu", precision="fp32").fit(TEXTS, STANCE)
    model.predict_proba(TEXTS)
    assert model.runtime(len(TEXTS)) == "torch" and not (fresh / "onnx").exists()
    monkeypatch.setattr(finetune, "ONNX_MIN_TEXTS", 4)
    model.predict_proba(TEXTS)
    assert model.runtime(1) == "onnx"  # decided: later small calls use it too
    assert (fresh / "onnx").exists()
    model.fit(TEXTS, STANCE)  # new weights: decided afresh
    assert model.runtime(1) == "torch"


def test_the_classifier_falls_back_with_one_log_line(fresh, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    caplog.set_level(logging.INFO)
    model = TransformerClassifier(max_steps=1, batch_size=4, max_length=32, device="cpu", precision="fp32").fit(TEXTS, STANCE)
    assert model.runtime() == "torch"
    assert model.predict_proba(TEXTS).shape == (len(TEXTS), 4)
    [line] = [r.getMessage() for r in caplog.records if "runs on PyTorch" in r.getMessage()]
    assert line.startswith("fine-tuned classifier runs on PyTorch: onnxruntime is not installed")
    with pytest.raises(UserError, match="^backend: onnx cannot be used"):
        TransformerClassifier(**{**model.get_params(), "backend": "onnx"}).fit(TEXTS, STANCE).runtime()
