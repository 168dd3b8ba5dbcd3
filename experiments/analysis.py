"""What a run's predictions say beyond the scores: the mistakes a model was surest of, how it did on each
document, labels that live in one document, and what differs between two configs or two runs.

Plain functions over prediction records and JSON values, with no drawing
and no page layout; ``report`` lays their results out, ``reproduce`` uses
``differences`` to compare a re-run with the saved run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from experiments.metrics import frame_scores, stance_scores

TOP_MISTAKES = 10
# Chance-level baselines: their mistakes say nothing about the text, so error analysis skips them.
CHANCE_BASELINES = {"majority", "stratified"}


def most_confident_mistakes(records: list[dict], k: int = TOP_MISTAKES) -> list[dict]:
    """Stance: wrong predictions, most probable first (ties by id), each paragraph once.

    >>> recs = [{"id": "a", "gold": "x", "pred": "y", "proba": {"x": 0.3, "y": 0.7}},
    ...         {"id": "b", "gold": "x", "pred": "y", "proba": {"x": 0.1, "y": 0.9}},
    ...         {"id": "c", "gold": "y", "pred": "y", "proba": {"x": 0.0, "y": 1.0}}]
    >>> [r["id"] for r in most_confident_mistakes(recs)]
    ['b', 'a']
    """
    wrong = [p for p in records if p["gold"] != p["pred"]]
    wrong.sort(key=lambda p: (-probability(p, p["pred"]), p["id"]))
    return _once(wrong)[:k]


def frame_mistakes(records: list[dict], k: int = TOP_MISTAKES) -> tuple[list[tuple], list[tuple]]:
    """Frames: ``(record, frame, p)`` of the most probable false positives and the least probable false negatives.

    >>> recs = [{"id": "a", "gold": ["s"], "pred": ["h"], "proba": {"h": 0.8, "s": 0.1}},
    ...         {"id": "b", "gold": [], "pred": ["h", "s"], "proba": {"h": 0.6, "s": 0.9}}]
    >>> fp, fn = frame_mistakes(recs)
    >>> [(r["id"], f, p) for r, f, p in fp], [(r["id"], f, p) for r, f, p in fn]
    ([('b', 's', 0.9), ('a', 'h', 0.8)], [('a', 's', 0.1)])
    """
    fp = [(p, f, probability(p, f)) for p in records for f in p["pred"] if f not in p["gold"]]
    fn = [(p, f, probability(p, f)) for p in records for f in p["gold"] if f not in p["pred"]]
    fp.sort(key=lambda t: (-t[2], t[0]["id"], t[1]))
    fn.sort(key=lambda t: (t[2], t[0]["id"], t[1]))
    return _once(fp, lambda t: t[0]["id"])[:k], _once(fn, lambda t: t[0]["id"])[:k]


def probability(record: dict, label: str) -> float:
    value = (record.get("proba") or {}).get(label)
    return float("nan") if value is None else float(value)


def _once(items: list, key=lambda p: p["id"]) -> list:
    seen, out = set(), []
    for item in items:
        if key(item) not in seen:
            seen.add(key(item))
            out.append(item)
    return out


def per_document_scores(records: list[dict], task: str) -> dict[str, dict[str, tuple[int, float | None]]]:
    """Per model and document: (paragraphs, accuracy for stance or micro-F1 for frames), pooled over repeats.

    The scores are ``metrics``' scorers with one weight row per document.

    >>> recs = [{"model": "m", "doc_id": "d", "id": "1", "gold": "a", "pred": "a"},
    ...         {"model": "m", "doc_id": "d", "id": "2", "gold": "a", "pred": "b"},
    ...         {"model": "m", "doc_id": "d", "id": "3", "gold": "b", "pred": "b"}]
    >>> per_document_scores(recs, "stance")
    {'m': {'d': (3, 0.6666666666666666)}}
    """
    by_model: dict[str, list[dict]] = defaultdict(list)
    for p in records:
        by_model[p["model"]].append(p)
    out = {}
    for model, recs in by_model.items():
        docs = list(dict.fromkeys(p["doc_id"] for p in recs))
        weights = np.array([[p["doc_id"] == d for p in recs] for d in docs], dtype=float)
        if task == "stance":
            labels = sorted({p["gold"] for p in recs} | {p["pred"] for p in recs})
            gold, pred = (np.array([labels.index(p[k]) for p in recs]) for k in ("gold", "pred"))
            scores = stance_scores(gold, pred, labels, [], weights)["accuracy"]
        else:
            labels = sorted({f for p in recs for f in (*p["gold"], *p["pred"])})
            gold, pred = (np.array([[f in p[k] for f in labels] for p in recs], dtype=bool).reshape(len(recs), len(labels))
                          for k in ("gold", "pred"))
            scores = frame_scores(gold, pred, labels, [], weights)["micro_f1"]
        out[model] = {d: (len({p["id"] for p in recs if p["doc_id"] == d}), None if np.isnan(s) else float(s))
                      for d, s in zip(docs, scores)}
    return out


def labels_by_document(records: list[dict], share: float = 0.75) -> list[tuple[str, str, int, int]]:
    """Gold labels with at least ``share`` of their examples (and at least two) in one document.

    >>> recs = [{"doc_id": "d1", "gold": "against"}, {"doc_id": "d1", "gold": "against"},
    ...         {"doc_id": "d2", "gold": "favor"}, {"doc_id": "d1", "gold": "favor"}]
    >>> labels_by_document(recs)
    [('against', 'd1', 2, 2)]
    """
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in records:
        for label in p["gold"] if isinstance(p["gold"], list) else [p["gold"]]:
            counts[label][p["doc_id"]] += 1
    out = []
    for label, docs in counts.items():
        total = sum(docs.values())
        doc, k = max(docs.items(), key=lambda kv: (kv[1], kv[0]))
        if total >= 2 and k / total >= share:
            out.append((label, doc, k, total))
    return sorted(out, key=lambda t: (-t[2] / t[3], t[0]))


def differences(values: list, path: str = "") -> list[tuple[str, list]]:
    """The dotted paths whose values differ between JSON-like values (configs, metrics), with each one's value.

    Dicts are walked key by key (a key one of them lacks shows as
    ``(absent)``), lists of named models model by model, other lists of the
    same length item by item when they hold dicts or lists; anything else,
    such as ``[1, 2]`` or a section that is ``null`` in one and filled in
    another, is one value.

    >>> differences([{"seed": 1, "protocol": {"name": "kfold"}}, {"seed": 1, "protocol": {"name": "lodo"}}])
    [('protocol.name', ['kfold', 'lodo'])]
    >>> differences([{"models": [{"name": "x", "params": {"C": 1}}]}, {"models": [{"name": "x", "params": {"C": 2}}]}])
    [('models.x.params.C', [1, 2])]
    >>> differences([{"x": None, "ci": [0.1, 0.5]}, {"x": {"y": 1}, "ci": [0.1, 0.6]}])
    [('x', [None, {'y': 1}]), ('ci', [[0.1, 0.5], [0.1, 0.6]])]
    >>> differences([{"a": [{"b": 2}], "gone": 1}, {"a": [{"b": 5}]}])
    [('a.0.b', [2, 5]), ('gone', [1, '(absent)'])]
    """
    return [(k, [v if v is not _ABSENT else "(absent)" for v in vals]) for k, vals in _walk(list(values), path)]


def _walk(values: list, path: str) -> list[tuple[str, list]]:
    def at(key) -> str:
        return f"{path}.{key}" if path else str(key)

    if all(isinstance(v, dict) or v is _ABSENT for v in values) and any(isinstance(v, dict) for v in values):
        keys: list = []
        for v in values:
            if isinstance(v, dict):
                keys += [k for k in v if k not in keys]
        out = []
        for k in keys:
            out += _walk([v.get(k, _ABSENT) if isinstance(v, dict) else _ABSENT for v in values], at(k))
        return out
    if all(_named_list(v) for v in values):
        return _walk([{(m.get("label") or m.get("name")): m for m in v} for v in values], path)
    if (all(isinstance(v, list) and len(v) == len(values[0]) for v in values)
            and any(isinstance(x, (dict, list)) for v in values for x in v)):
        out = []
        for i in range(len(values[0])):
            out += _walk([v[i] for v in values], at(i))
        return out
    first = values[0]
    return [] if all(v == first for v in values[1:]) else [(path, values)]


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _named_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(m, dict) and "name" in m for m in v)


def count_values(value: Any) -> int:
    """How many values ``differences`` can report in a JSON value: its leaves, a list of plain values counting once.

    >>> count_values({"a": 1, "ci": [0.1, 0.5], "points": [{"x": 1}, {"x": 2}]})
    4
    """
    if isinstance(value, dict):
        return sum(count_values(v) for v in value.values())
    if isinstance(value, list) and any(isinstance(x, (dict, list)) for x in value):
        return sum(count_values(v) for v in value)
    return 1
