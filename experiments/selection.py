"""Which saved model labels new text: the one that did best on documents it never saw.

``predict`` and ``annotate --suggest`` label paragraphs from new documents,
so each task's model is chosen by its leave-one-document-out score (macro-F1
for both tasks: every stance label and every frame counts the same, however
rare). A run records the choice, with the protocol and number that made it,
under ``selection`` in ``metrics.json``.
"""

from __future__ import annotations

SELECT_BY = {"stance": "macro_f1", "frames": "macro_f1"}
# Protocols whose test parts are whole documents the model never saw.
TRANSFER_PROTOCOLS = ("lodo", "group_kfold")


def choose(task: str, models: dict, protocol: dict, candidates: list[str] | None = None,
           calibrated: dict | None = None) -> dict | None:
    """The best of ``models`` (a task's ``metrics.json`` entry) by ``SELECT_BY``, with what chose it.

    With ``calibrated`` (the task's ``calibration`` entry) a model is scored
    by its calibrated decisions, which is what ``predict`` outputs (for frames
    they use thresholds chosen out of document, so they can differ).

    >>> m = {"a": {"n": 9, "metrics": {"macro_f1": {"value": 0.4, "ci": [0.2, 0.6]}}},
    ...      "b": {"n": 9, "metrics": {"macro_f1": {"value": 0.5, "ci": [0.3, 0.7]}}}}
    >>> choose("stance", m, {"name": "lodo"})["model"]
    'b'
    """
    metric = SELECT_BY[task]

    def score(name: str) -> dict:
        found = (calibrated or {}).get(name, {}).get(f"calibrated_{metric}")
        return found if found is not None else models[name]["metrics"][metric]

    scored = [(score(name)["value"], name) for name in models
              if score(name)["value"] is not None and (candidates is None or name in candidates)]
    if not scored:
        return None
    value, name = max(scored, key=lambda pair: pair[0])  # max keeps the first of equal scores: config order
    return {
        "model": name, "metric": metric, "value": value, "ci": score(name).get("ci"),
        "n": models[name].get("n"), "protocol": protocol.get("name"),
        "transfer": protocol.get("name") in TRANSFER_PROTOCOLS,
        "decisions": "calibrated" if (calibrated or {}).get(name, {}).get(f"calibrated_{metric}") else "model",
    }


PROTOCOL_NAMES = {"lodo": "leave-one-document-out", "kfold": "k-fold", "group_kfold": "grouped k-fold"}


def describe(selection: dict) -> str:
    """One line: which model, by which number under which protocol."""
    ci = selection.get("ci") or [None, None]
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else ""
    of = " of calibrated decisions" if selection.get("decisions") == "calibrated" else ""
    return (f"{selection['model']} ({selection['metric'].replace('_f1', '-F1').replace('_', ' ')}{of} "
            f"{selection['value']:.2f}{interval}, n={selection['n']}, "
            f"{PROTOCOL_NAMES.get(selection['protocol'], selection['protocol'])})")
