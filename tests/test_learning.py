"""Learning while labelling: the learner, the retraining session, blind items, rationales, practice mode,
the gold notice and review of disagreements. Session mechanics use a small stand-in learner whose
predictions are known; the real learner is tested once on the shipped gold."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import pytest

from experiments.annotate import Session, gold_notice, read_corpus, start_session
from experiments.annotations import derive_gold, quoted_spans
from experiments.errors import UserError
from experiments.learner import Learner, diverse_order, uncertainty
from experiments.paths import DataDir
from experiments.review import ReviewSession
from test_annotate import HASH, IDS, label_current, lines, make_data, suggestion


@dataclass
class Stand(Learner):
    """A learner whose predictions are fixed per paragraph text and whose embeddings put d1 and d2 apart."""

    confident: frozenset[str] = frozenset()  # texts starting with one of these are predicted surely

    def can_fit(self, stance):
        return bool(stance)

    def fit(self, texts, stance, frames):
        self.models_ = {"n": len(texts)}
        return self

    def predict(self, texts):
        return [suggestion("favor", [], p=0.97 if t.startswith(tuple(self.confident)) else 0.3) for t in texts]

    def embed(self, texts):
        return np.array([[1.0, 0.0] if "Iran" in t else [0.0, 1.0] for t in texts])

    def quality(self, texts, stance, frames, **kwargs):
        return []


@pytest.fixture
def data(tmp_path) -> DataDir:
    return make_data(tmp_path / "data")


def test_diverse_order_trades_uncertainty_for_variety():
    vectors = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.0, 1.0]])
    scores = [0.9, 0.85, 0.6, 0.1]
    assert diverse_order(list("abcd"), scores, vectors, diversity=0.0) == list("abcd")
    # b is nearly a: after a, the distant c comes first; d repeats c and stays last.
    assert diverse_order(list("abcd"), scores, vectors, diversity=0.5) == list("acbd")
    # Paragraphs just labelled count as ranked already.
    assert diverse_order(list("abcd"), scores, vectors, diversity=0.5, recent=np.array([[1.0, 0.0]]))[0] == "c"


def test_session_retrains_every_n_labels_in_the_background_and_never_blocks(data, codebook):
    s = Session("maryam", codebook, data, list(IDS), learner=Stand(codebook), retrain_every=2)
    s.start_learning()
    try:
        label_current(s, "none")
        assert s.learning()["learning"]["version"] == 0 and s.learning()["learning"]["next_in"] == 1
        label_current(s, "favor")
        deadline = time.monotonic() + 10
        while s.learning()["learning"]["version"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        learning = s.learning()["learning"]
        assert learning["version"] == 1 and learning["trained_on"] == 2 and learning["status"] == "ready"
        assert learning["stance_counts"] == {"favor": 1, "against": 0, "neutral": 0, "none": 1}
    finally:
        s.stop_learning()
    assert s.state()["suggest"] == {"learner": "codebook_logreg", "version": 1, "trained_on": 2}


def test_retraining_reranks_the_rest_but_keeps_the_paragraph_on_screen(data, codebook):
    learner = Stand(codebook, confident=frozenset({"Sanctions", "Exiles"}))  # d1-003 and d2-001 are surest
    s = Session("maryam", codebook, data, list(IDS), learner=learner, order="uncertain", diversity=0.0)
    label_current(s, "none")
    assert s.state()["paragraph"]["id"] == "d1-002"  # on screen before the model changes
    assert s.retrain()
    assert s.state()["paragraph"]["id"] == "d1-002"
    assert s.queue == ["d1-001", "d1-002", "d2-002", "d1-003", "d2-001"]
    assert s.learning()["learning"]["upcoming"] == ["d2-002", "d1-003", "d2-001"]


def test_a_record_keeps_the_suggestion_shown_even_after_a_retrain(data, codebook):
    first = {pid: suggestion("against", ["security"]) for pid in IDS}
    s = Session("maryam", codebook, data, list(IDS), first, {"run": "results/r1"}, learner=Stand(codebook))
    label_current(s, "none")
    shown = s.state()["paragraph"]
    assert shown["suggestion"]["stance"] == "against"
    s.retrain()  # the model changes while the annotator reads
    s.label(shown["id"], shown["hash"], "against", ["security"])
    record = lines(s.file)[-1]
    assert record["suggestion"]["stance"] == "against" and record["suggestion"]["run"] == "results/r1"
    assert record["accepted_suggestion"] is True
    assert s.state()["paragraph"]["suggestion"]["stance"] == "favor"  # the next one has the new model's


def test_blind_items_hide_the_suggestion_and_record_what_the_model_said(data, codebook):
    sugg = {pid: suggestion("against", []) for pid in IDS}
    s = Session("maryam", codebook, data, list(IDS), sugg, {"run": "r"}, blind={"d1-001"})
    view = s.state()["paragraph"]
    assert view["blind"] is True and view["suggestion"] is None and view["suggested_by"] is None
    label_current(s, "against")
    record = lines(s.file)[-1]
    assert record["blind"] is True and record["suggestion"]["stance"] == "against"
    assert "accepted_suggestion" not in record  # nothing was shown to accept
    assert s.state()["paragraph"]["blind"] is False
    label_current(s, "none")
    assert "blind" not in lines(s.file)[-1] and lines(s.file)[-1]["accepted_suggestion"] is False


def test_start_session_chooses_the_blind_share_with_the_seed(data, codebook):
    a = start_session("maryam", codebook, data, blind=0.4, seed=2, progress=False)
    b = start_session("maryam", codebook, data, blind=0.4, seed=2, progress=False)
    assert a.blind == b.blind and len(a.blind) == 2
    with pytest.raises(UserError, match=r"--blind 1.0: give the share"):
        start_session("maryam", codebook, data, blind=1.0, progress=False)


def test_rationale_spans_are_stored_checked_and_carried_into_gold(data, codebook):
    s = Session("maryam", codebook, data, list(IDS))
    text = "Strikes on Iran Condemned"
    span = {"start": 16, "end": 25, "text": "Condemned", "label": "stance"}
    with pytest.raises(UserError, match="is not the paragraph's text at 0-9"):
        s.label("d1-001", HASH["d1-001"], "against", [], rationales=[{**span, "start": 0, "end": 9}])
    with pytest.raises(UserError, match="rationale label 'peace' is neither"):
        s.label("d1-001", HASH["d1-001"], "against", [], rationales=[{**span, "label": "peace"}])
    assert not s.file.exists()  # a refused label writes nothing
    s.label("d1-001", HASH["d1-001"], "against", ["security"],
            rationales=[span, {"start": 0, "end": 7, "text": "Strikes", "label": "security"}])
    assert lines(s.file)[-1]["rationales"] == [{"start": 0, "end": 7, "text": "Strikes", "label": "security"}, span]
    assert text[16:25] == "Condemned"
    s.undo()
    assert s.state()["paragraph"]["previous"]["rationales"][1] == span  # revisiting shows them again
    s.label("d1-001", HASH["d1-001"], "against", ["security"], rationales=[span])
    gold = {g["id"]: g for g in derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications).gold}
    assert gold["d1-001"]["rationales"] == [span]


def test_written_rationales_become_spans_for_every_quote_found_in_the_text():
    text = "Exiles ask the UN to act now, as strikes hit Tehran and families flee."
    written = 'stance favor: "ask the UN to act"; frames: "strikes hit ... Tehran" (security), "families flee" (humanitarian), "x" (made_up)'
    spans = quoted_spans(written, text, ["security", "humanitarian"])
    assert [(s.text, s.label, text[s.start:s.end]) for s in spans] == [
        ("ask the UN to act", "stance", "ask the UN to act"),
        ("strikes hit", "security", "strikes hit"),
        ("Tehran", "security", "Tehran"),
        ("families flee", "humanitarian", "families flee"),
    ]


def test_shipped_gold_carries_the_lead_annotators_rationales_as_spans():
    from experiments import paths

    gold = [json.loads(line) for line in paths.GOLD.read_text(encoding="utf-8").splitlines()]
    with_spans = [g for g in gold if g["rationales"]]
    assert len(with_spans) >= 50
    for g in with_spans:
        for span in g["rationales"]:
            assert g["text"][span["start"]:span["end"]] == span["text"]
            assert span["label"] == "stance" or span["label"] in g["frames"]


def test_practice_mode_writes_nowhere_near_the_data_folder(data, codebook, tmp_path):
    before = sorted(p.name for p in data.root.rglob("*"))
    s = start_session("maryam", codebook, data, practice=True, progress=False)
    label_current(s, "favor")
    assert s.practice and s.state()["practice"] is True
    assert not s.file.is_relative_to(data.root) and s.file.exists()
    assert sorted(p.name for p in data.root.rglob("*")) == before


def disagree(data: DataDir) -> None:
    """maryam and reza disagree on d1-001 and agree on d1-002."""
    for name, stance in (("maryam", "against"), ("reza", "favor")):
        s = Session(name, __import__("experiments.codebook").codebook.load_codebook(), data, list(IDS))
        s.label("d1-001", HASH["d1-001"], stance, ["security"], note=f"{name}'s note",
                rationales=[{"start": 0, "end": 7, "text": "Strikes", "label": "stance"}] if name == "reza" else [])
        s.label("d1-002", HASH["d1-002"], "against", [])


def test_start_says_how_many_paragraphs_left_gold_and_what_a_new_label_does(data, codebook):
    disagree(data)
    notice = gold_notice(data, codebook, ["d1-002", "d1-003"])
    assert notice[0].startswith("1 paragraph(s) are out of gold: annotators disagree and nobody has adjudicated (d1-001)")
    assert notice[1].startswith("1 paragraph(s) of this queue are already gold (labelled by maryam, reza)")
    assert "--practice" in notice[1]
    s = Session("sara", codebook, data, list(IDS))
    s.label("d1-001", HASH["d1-001"], "none", [])
    answer = s.label("d1-002", HASH["d1-002"], "none", [])
    assert answer["notice"] == ("Your label differs from maryam, reza's: paragraph d1-002 leaves gold until "
                                   "someone adjudicates (annotate --review).")
    assert s.state()["notice"] is None  # said once


def test_review_takes_a_side_or_sets_labels_with_a_reason_and_writes_adjudications(data, codebook):
    disagree(data)
    review = ReviewSession("lead", codebook, data)
    view = review.state()["paragraph"]
    assert review.state()["mode"] == "review" and view["id"] == "d1-001"
    assert [(s["annotator"], s["stance"], s["note"]) for s in view["sides"]] == [
        ("maryam", "against", "maryam's note"), ("reza", "favor", "reza's note")]
    assert view["sides"][1]["rationales"] == [{"start": 0, "end": 7, "text": "Strikes", "label": "stance"}]
    with pytest.raises(UserError, match="new labels need a reason"):
        review.adjudicate("d1-001", HASH["d1-001"], stance="neutral", frames=[])
    assert not data.adjudications.exists()
    done = review.adjudicate("d1-001", HASH["d1-001"], take="reza")
    assert done["paragraph"] is None and done["progress"]["done"] == 1
    record = lines(data.adjudications)[-1]
    assert (record["stance"], record["frames"], record["adjudicator"], record["reason"]) == (
        "favor", ["security"], "lead", "took reza's labels")
    assert record["rationales"] == [{"start": 0, "end": 7, "text": "Strikes", "label": "stance"}]
    gold = {g["id"]: g for g in derive_gold(codebook, read_corpus(data), data.annotations, data.adjudications).gold}
    assert gold["d1-001"]["stance"] == "favor" and gold["d1-001"]["source"] == "adjudicated"
    assert ReviewSession("lead", codebook, data).state()["paragraph"] is None


def test_real_learner_learns_from_gold_and_reports_quality_with_its_n(codebook):
    from experiments import paths

    gold = [json.loads(line) for line in paths.GOLD.read_text(encoding="utf-8").splitlines()]
    texts, stance, frames = [g["text"] for g in gold], [g["stance"] for g in gold], [g["frames"] for g in gold]
    learner = Learner(codebook, "codebook_logreg").fit(texts[:8], stance[:8], frames[:8])
    rows = learner.predict(texts[:3])
    assert set(rows[0]["stance_probs"]) == set(codebook.stance_labels)
    assert abs(sum(rows[0]["stance_probs"].values()) - 1) < 1e-3
    assert 0.0 <= uncertainty(rows[0]) <= 1.0
    stance_q, frames_q = learner.quality(texts, stance, frames, resamples=200)
    assert stance_q.n == 60 and stance_q.ci[0] <= stance_q.macro_f1 <= stance_q.ci[1]
    assert stance_q.protocol == "5-fold stratified cross-validation" and frames_q.task == "frames"
    assert learner.quality(texts[:9], stance[:9], frames[:9])[0].macro_f1 is None
    assert not Learner(codebook, "embed_logreg").can_fit(["favor", "favor"])


def test_annotate_says_which_name_it_needs(capsys, tmp_path):
    from experiments.cli import main

    assert main(["annotate", "--data", str(tmp_path), "--port", "8793"]) == 2
    assert capsys.readouterr().err.strip() == ("error: annotate needs --annotator NAME "
                                               "(or --review --adjudicator NAME to settle disagreements)")
    assert main(["annotate", "--review", "--data", str(tmp_path), "--port", "8793"]) == 2
    assert capsys.readouterr().err.strip() == "error: --review needs --adjudicator NAME: the name recorded with each decision"
