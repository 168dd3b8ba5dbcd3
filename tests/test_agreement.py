"""Agreement statistics against hand-computed values, and the report that shows them."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from experiments.agreement import compute_agreement, format_agreement, newcombe_interval, pending_disagreements, report_json, wilson_interval
from experiments.corpus import text_hash

# Ten paragraphs in two documents; p-01..p-10 are numbered in file order.
TEXTS = {f"p-{i:02d}": ("d1" if i <= 5 else "d2", f"Paragraph number {i} about Iran.") for i in range(1, 11)}
TEXTS["p-11"] = ("d2", "A long paragraph. " * 12)
FRAMES = ["humanitarian", "security", "sovereignty", "regime_legitimacy", "resistance", "gender", "economic"]


@pytest.fixture
def paragraphs():
    return {
        pid: {"id": pid, "doc_id": doc, "kind": "body", "text": text, "hash": text_hash(text)}
        for pid, (doc, text) in TEXTS.items()
    }


def rec(pid, annotator, stance="none", frames=(), action="label", hash=None):
    out = {
        "paragraph_id": pid,
        "hash": hash or text_hash(TEXTS[pid][1]),
        "annotator": annotator,
        "action": action,
        "frames": [] if action != "label" else list(frames),
        "timestamp": "2026-01-01T00:00:00+00:00",
    }
    if action == "label":
        out["stance"] = stance
    return out


@pytest.fixture
def store(tmp_path):
    """Write annotator files into tmp_path/annotations; returns (annotations dir, adjudications path)."""
    annotations = tmp_path / "annotations"
    annotations.mkdir()
    adjudications = tmp_path / "adjudications.jsonl"

    def write(records: list[dict]):
        by: dict[str, list[dict]] = {}
        for r in records:
            by.setdefault(r["annotator"], []).append(r)
        for name, rs in by.items():
            (annotations / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs), encoding="utf-8")
        return annotations, adjudications

    return write


# ana / ben on p-01..p-10: (ana stance, ben stance, ana humanitarian?, ben humanitarian?)
KAPPA_TABLE = [
    ("favor", "favor", 1, 1),
    ("favor", "favor", 1, 1),
    ("favor", "favor", 1, 1),
    ("favor", "against", 1, 0),
    ("against", "against", 1, 0),
    ("against", "against", 0, 1),
    ("against", "neutral", 0, 0),
    ("neutral", "neutral", 0, 0),
    ("neutral", "none", 0, 0),
    ("none", "none", 0, 0),
]


def kappa_records():
    out = []
    for i, (sa, sb, ha, hb) in enumerate(KAPPA_TABLE, start=1):
        pid = f"p-{i:02d}"
        out.append(rec(pid, "ana", sa, ["humanitarian"] if ha else []))
        out.append(rec(pid, "ben", sb, ["humanitarian"] if hb else []))
    return out


def test_cohens_kappa_for_stance_and_a_frame_matches_the_hand_computation(codebook, paragraphs, store):
    ann, adj = store(kappa_records())
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.annotators == ["ana", "ben"]
    assert report.counts == {"ana": 10, "ben": 10}
    [pair] = report.pairs
    assert (pair.a, pair.b, pair.n) == ("ana", "ben", 10)
    # Stance. Agreement on p-01,02,03,05,06,08,10: p_o = 7/10.
    # ana: favor 4, against 3, neutral 2, none 1; ben: favor 3, against 3, neutral 2, none 2.
    # p_e = (4*3 + 3*3 + 2*2 + 1*2) / 100 = 27/100; kappa = (70/100 - 27/100) / (73/100) = 43/73.
    assert pair.stance_kappa == pytest.approx(float(Fraction(43, 73)), abs=1e-9)
    assert pair.stance_agreement == pytest.approx(0.7, abs=1e-12)
    # Humanitarian. Same presence on p-01,02,03 and p-07..10: p_o = 7/10.
    # ana present 5/10, ben 4/10: p_e = 0.5*0.4 + 0.5*0.6 = 1/2; kappa = (7/10 - 1/2) / (1/2) = 2/5.
    assert pair.frame_kappa["humanitarian"] == pytest.approx(0.4, abs=1e-9)
    # Nobody used any other frame: kappa is undefined, not 1 or 0.
    assert {f: pair.frame_kappa[f] for f in FRAMES[1:]} == dict.fromkeys(FRAMES[1:])


def test_the_stance_confusion_matrix_has_a_in_rows_and_b_in_columns(codebook, paragraphs, store):
    ann, adj = store(kappa_records())
    [pair] = compute_agreement(codebook, paragraphs, ann, adj).pairs
    #                  ben: favor against neutral none
    assert pair.confusion == [
        [3, 1, 0, 0],  # ana favor
        [0, 2, 1, 0],  # ana against
        [0, 0, 1, 1],  # ana neutral
        [0, 0, 0, 1],  # ana none
    ]


def test_disagreements_are_the_paragraphs_whose_stance_or_frame_set_differs(codebook, paragraphs, store):
    ann, adj = store(kappa_records())
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert [d.paragraph_id for d in report.disagreements] == ["p-04", "p-05", "p-06", "p-07", "p-09"]
    d = report.disagreements[0]
    assert (d.doc_id, d.text, d.adjudication) == ("d1", "Paragraph number 4 about Iran.", None)
    assert d.labels == {"ana": {"stance": "favor", "frames": ["humanitarian"]},
                        "ben": {"stance": "against", "frames": []}}
    assert pending_disagreements(report) == report.disagreements


# ana / ben / cy on p-01..p-04 (stance, humanitarian); cy did not label p-03; only ana labelled p-05.
ALPHA_TABLE = {
    "p-01": {"ana": ("favor", 1), "ben": ("favor", 1), "cy": ("favor", 0)},
    "p-02": {"ana": ("against", 0), "ben": ("against", 0), "cy": ("neutral", 0)},
    "p-03": {"ana": ("neutral", 1), "ben": ("neutral", 1)},
    "p-04": {"ana": ("favor", 0), "ben": ("against", 1), "cy": ("favor", 0)},
    "p-05": {"ana": ("none", 0)},
}


def alpha_records():
    return [
        rec(pid, name, stance, ["humanitarian"] if hum else [])
        for pid, by in ALPHA_TABLE.items()
        for name, (stance, hum) in by.items()
    ]


def test_krippendorffs_alpha_matches_the_hand_computed_coincidence_matrix(codebook, paragraphs, store):
    ann, adj = store(alpha_records())
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.alpha.n == 4  # p-05 has one annotator and does not count
    # Stance, each unit's ordered pairs weighted 1/(m_u - 1):
    #   p-01 F,F,F -> o_FF += 3; p-02 A,A,N -> o_AA += 1, o_AN += 1, o_NA += 1;
    #   p-03 N,N -> o_NN += 2;   p-04 F,A,F -> o_FF += 1, o_FA += 1, o_AF += 1.
    #   n_F = 5, n_A = 3, n_N = 3, n = 11; off-diagonal sum = 4.
    #   alpha = 1 - (n - 1) * 4 / (n^2 - sum n_c^2) = 1 - 10 * 4 / (121 - 43) = 1 - 40/78 = 19/39.
    assert report.alpha.stance == pytest.approx(float(Fraction(19, 39)), abs=1e-9)
    # Humanitarian: p-01 1,1,0 -> o11 += 1, o10 += 1, o01 += 1; p-02 0,0,0 -> o00 += 3;
    #   p-03 1,1 -> o11 += 2; p-04 0,1,0 -> o00 += 1, o01 += 1, o10 += 1.
    #   n_1 = 5, n_0 = 6, n = 11; off-diagonal sum = 4.
    #   alpha = 1 - 10 * 4 / (121 - 25 - 36) = 1 - 40/60 = 1/3.
    assert report.alpha.frames["humanitarian"] == pytest.approx(float(Fraction(1, 3)), abs=1e-9)
    assert report.alpha.frames["security"] is None  # nobody used it: no variation
    assert [(p.a, p.b, p.n) for p in report.pairs] == [("ana", "ben", 4), ("ana", "cy", 3), ("ben", "cy", 3)]


def test_frames_are_compared_as_sets(codebook, paragraphs, store):
    ann, adj = store([
        rec("p-01", "ana", "favor", ["security", "humanitarian"]),
        rec("p-01", "ben", "favor", ["humanitarian", "security"]),
        rec("p-02", "ana", "against", ["gender"]),
        rec("p-02", "ben", "against", ["gender", "gender"]),
    ])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.disagreements == []
    assert report.pairs[0].stance_agreement == 1.0


def test_an_undo_withdraws_the_label_from_agreement(codebook, paragraphs, store):
    ann, adj = store([
        rec("p-01", "ana", "favor"), rec("p-02", "ana", "favor"),
        rec("p-01", "ben", "against"), rec("p-02", "ben", "favor"),
        rec("p-01", "ben", action="undo"),
        rec("p-02", "ben", action="skip"),
    ])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.counts == {"ana": 2, "ben": 1}
    assert report.pairs[0].n == 1
    assert report.disagreements == []


def test_stale_records_are_ignored(codebook, paragraphs, store):
    ann, adj = store([
        rec("p-01", "ana", "favor"),
        rec("p-01", "ben", "against", hash="0000000000000000"),
    ])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.annotators == ["ana"]
    assert report.disagreements == []
    assert report.stale == [f"{ann / 'ben.jsonl'}:1 (p-01)"]


def test_undefined_statistics_are_none_and_print_as_n_a(codebook, paragraphs, store):
    # One shared paragraph: kappa undefined; both say favor and no frames: alpha has no variation.
    ann, adj = store([rec("p-01", "ana", "favor"), rec("p-01", "ben", "favor"), rec("p-02", "ana", "none")])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    [pair] = report.pairs
    assert (pair.n, pair.stance_kappa, pair.stance_agreement) == (1, None, 1.0)
    assert set(pair.frame_kappa.values()) == {None}
    assert (report.alpha.n, report.alpha.stance, set(report.alpha.frames.values())) == (1, None, {None})
    text = format_agreement(report, codebook)
    pair_row = next(line for line in text.splitlines() if line.strip().startswith("ana / ben"))
    assert pair_row.split() == ["ana", "/", "ben", "1", "n/a", "100.0%", *["n/a"] * 7]
    lines = text.splitlines()
    alpha_rows = lines[lines.index("Krippendorff's alpha (nominal), all annotators, n = 1 paragraph(s)") + 3:][:8]
    assert [line.split() for line in alpha_rows] == [[label, "n/a"] for label in ["stance", *FRAMES]]
    assert json.loads(json.dumps(report_json(report)))["pairs"][0]["stance_kappa"] is None


def test_pairs_with_no_paragraph_in_common_have_n_zero_and_no_statistics(codebook, paragraphs, store):
    ann, adj = store([rec("p-01", "ana", "favor"), rec("p-02", "ben", "favor")])
    [pair] = compute_agreement(codebook, paragraphs, ann, adj).pairs
    assert (pair.n, pair.stance_kappa, pair.stance_agreement) == (0, None, None)
    assert pair.confusion == [[0] * 4 for _ in range(4)]


def test_a_single_annotator_gets_a_clear_message_not_an_error(codebook, paragraphs, store):
    ann, adj = store([rec("p-01", "lead", "favor"), rec("p-02", "lead", "none")])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.pairs == [] and report.disagreements == []
    message = "only one annotator (lead) has labels; agreement needs two — start the app with --annotator NAME"
    assert report.message == message
    assert format_agreement(report, codebook).splitlines()[-1] == message
    assert report_json(report)["message"] == message


def test_no_annotations_at_all_gets_a_clear_message(codebook, paragraphs, store):
    ann, adj = store([])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.message == "no annotator has labels yet; agreement needs two — start the app with --annotator NAME"


def test_the_text_report_lists_tables_confusion_and_disagreements(codebook, paragraphs, store):
    ann, adj = store([*kappa_records(), rec("p-11", "ana", "none"), rec("p-11", "ben", "neutral")])
    text = format_agreement(compute_agreement(codebook, paragraphs, ann, adj), codebook)
    lines = text.splitlines()
    assert lines[0] == "2 annotator(s), 11 paragraph(s) labelled, 11 labelled by two or more"
    assert lines[1].split() == ["annotator", "labels", "with", "suggestion", "kept", "suggestion"]
    assert lines[3].split() == ["ana", "11", "0", "n/a"]
    header = next(line for line in lines if line.strip().startswith("pair"))
    assert header.split() == ["pair", "n", "stance", "κ", "stance", "%", *FRAMES]
    row = lines[lines.index(header) + 2]
    # With p-11 (none / neutral): p_o = 7/11, p_e = (4*3 + 3*3 + 2*3 + 2*2)/121 = 31/121, kappa = 46/90;
    # humanitarian: p_o = 8/11, p_e = (5*4 + 6*7)/121 = 62/121, kappa = 26/59.
    assert row.split() == ["ana", "/", "ben", "11", "0.511", "63.6%", "0.441", *["n/a"] * 6]
    # Columns are aligned: every cell of the row ends where its header ends.
    assert len(row) == len(header)
    grid = lines.index("stance confusion, n = 11: rows ana, columns ben")
    assert lines[grid + 1].split() == ["ana", "\\", "ben", "favor", "against", "neutral", "none"]
    assert [l.split() for l in lines[grid + 3:grid + 7]] == [
        ["favor", "3", "1", "0", "0"], ["against", "0", "2", "1", "0"],
        ["neutral", "0", "0", "1", "1"], ["none", "0", "0", "1", "1"],
    ]
    assert "disagreements: 6 (0 adjudicated, 6 pending)" in lines
    assert "p-04 (doc d1) [pending]" in lines
    assert max(len(l) for l in lines[lines.index("p-11 (doc d2) [pending]"):]) <= 100
    assert lines[lines.index("p-11 (doc d2) [pending]") + 1].startswith("    A long paragraph. A long")


def test_the_report_counts_how_often_each_annotator_kept_the_model_suggestion(codebook, paragraphs, store):
    suggestion = {"stance": "favor", "frames": []}
    ann, adj = store([
        {**rec("p-01", "ana", "favor"), "suggestion": suggestion, "accepted_suggestion": True},
        {**rec("p-02", "ana", "against"), "suggestion": suggestion, "accepted_suggestion": False},
        {**rec("p-03", "ana", "favor"), "suggestion": suggestion, "accepted_suggestion": True},
        rec("p-04", "ana", "none"),
        rec("p-01", "ben", "favor"),
    ])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert (report.suggested, report.accepted) == ({"ana": 3, "ben": 0}, {"ana": 2, "ben": 0})
    lines = format_agreement(report, codebook).splitlines()
    assert lines[3].split() == ["ana", "4", "3", "66.7%"]
    assert lines[4].split() == ["ben", "1", "0", "n/a"]


# ----------------------------------------------------------------- anchoring: suggested vs blind items


def shown(record, stance, frames=(), blind=False):
    """``record`` with the model's suggestion recorded; ``blind=None`` leaves the ``blind`` key out (older records)."""
    out = {**record, "suggestion": {"stance": stance, "frames": list(frames), "run": "r1", "stance_probs": {}}}
    if blind is not None:
        out["blind"] = blind
    return out


def anchoring_records():
    """ana: p-01..p-04 suggested, all as the model says; p-05..p-08 blind, only p-05's stance as the model says."""
    return [
        *(shown(rec(f"p-0{i}", "ana", "favor", ["security"]), "favor", ["security"]) for i in range(1, 5)),
        shown(rec("p-05", "ana", "favor"), "favor", blind=True),
        shown(rec("p-06", "ana", "against", ["gender"]), "favor", blind=True),
        shown(rec("p-07", "ana", "neutral"), "favor", blind=True),
        shown(rec("p-08", "ana", "none"), "favor", blind=True),
    ]


def test_wilson_and_newcombe_intervals_match_hand_computed_values():
    # Wilson, 1/4 with z = 1.959964: z^2/n = 0.960365; centre = (0.25 + 0.480182) / 1.960365 = 0.372474;
    # half width = z * sqrt(0.25 * 0.75 / 4 + z^2 / 64) / 1.960365 = 0.326886 -> [0.045588, 0.699360].
    assert wilson_interval(1, 4) == pytest.approx([0.045588, 0.699360], abs=2e-6)
    # 4/4: centre = 1.480182 / 1.960365 = 0.755054, half width = z * sqrt(z^2 / 64) / 1.960365 = 0.244946.
    assert wilson_interval(4, 4) == pytest.approx([0.510109, 1.0], abs=2e-6)
    # Newcombe (1998) method 10 for 4/4 - 1/4: d = 0.75;
    # lower = 0.75 - sqrt((1 - 0.510109)^2 + (0.699360 - 0.25)^2) = 0.75 - 0.664768 = 0.085232;
    # upper = 0.75 + sqrt((1 - 1)^2 + (0.25 - 0.045588)^2) = 0.954412.
    assert newcombe_interval(4, 4, 1, 4) == pytest.approx([0.085232, 0.954412], abs=2e-6)
    # The published examples: Newcombe 1998 (Stat Med 17:857) 81/263 -> 0.2553-0.3662;
    # Newcombe 1998 (Stat Med 17:873) 56/70 - 48/80 -> 0.0524-0.3339.
    assert wilson_interval(81, 263) == pytest.approx([0.2553, 0.3662], abs=5e-5)
    assert newcombe_interval(56, 70, 48, 80) == pytest.approx([0.0524, 0.3339], abs=5e-5)
    assert wilson_interval(0, 0) is None and newcombe_interval(3, 4, 0, 0) is None


def test_agreement_with_the_model_is_split_into_suggested_and_blind_items(codebook, paragraphs, store):
    ann, adj = store(anchoring_records())
    report = compute_agreement(codebook, paragraphs, ann, adj)
    [item] = report.anchoring
    assert item.annotator == "ana"
    s, b = item.suggested, item.blind
    assert (s.n, s.stance_matches, s.stance_agreement, s.frames_agreement) == (4, 4, 1.0, 1.0)
    assert (b.n, b.stance_matches, b.stance_agreement, b.frames_agreement) == (4, 1, 0.25, 0.75)
    assert s.stance_ci == pytest.approx([0.510109, 1.0], abs=2e-6)
    assert b.stance_ci == pytest.approx([0.045588, 0.699360], abs=2e-6)
    # Suggested: ana and the model both always say favor, so kappa is undefined.
    # Blind: p_o = 1/4; the model always says favor and ana 1 time in 4: p_e = 1/4; kappa = 0.
    assert (s.stance_kappa, b.stance_kappa) == (None, 0.0)
    assert item.difference == 0.75
    assert item.difference_ci == pytest.approx([0.085232, 0.954412], abs=2e-6)
    assert item.summary == (
        "ana agrees with the model's stance 75.0 percentage points more often when they see its suggestion "
        "(n=4 suggested, 4 blind); the difference's 95% CI is [8.5, 95.4] points, which excludes 0")
    # Blind items were never on screen: they are not "with suggestion" in the kept-suggestion count.
    assert report.suggested == {"ana": 4}

    lines = format_agreement(report, codebook).splitlines()
    start = lines.index("agreement with the model: suggested = suggestion shown, blind = hidden (95% CI in %)")
    assert lines[start + 1].split() == ["annotator", "condition", "n", "stance", "%", "95%", "CI", "frames", "%",
                                        "stance", "κ"]
    assert [l.split() for l in lines[start + 3:start + 5]] == [
        ["ana", "suggested", "4", "100.0%", "[51.0,", "100.0]", "100.0%", "n/a"],
        ["ana", "blind", "4", "25.0%", "[4.6,", "69.9]", "75.0%", "0.000"],
    ]
    assert " ".join(" ".join(lines[start + 5:start + 7]).split()) == item.summary
    # The anchoring section does not need a second annotator; the one-annotator message still ends the text.
    assert lines[-1].startswith("only one annotator (ana) has labels")

    data = json.loads(json.dumps(report_json(report)))
    [entry] = data["anchoring"]
    assert (entry["suggested"]["n"], entry["blind"]["n"], entry["difference"]) == (4, 4, 0.75)
    assert entry["blind"]["stance_agreement"] == 0.25
    assert entry["difference_ci"] == pytest.approx([0.085232, 0.954412], abs=2e-6)


def test_records_without_a_blind_key_are_suggested_and_without_suggestion_in_neither(codebook, paragraphs, store):
    ann, adj = store([
        shown(rec("p-01", "ben", "favor"), "favor", blind=None),  # older record: suggestion shown
        shown(rec("p-02", "ben", "against"), "favor", blind=None),
        shown(rec("p-03", "ben", "none"), "none", blind=False),
        shown(rec("p-04", "ben", "none"), "none", blind=True),
        rec("p-05", "ben", "favor"),  # no model at all
        {**rec("p-06", "ben", "favor"), "blind": True},  # blind but nothing recorded: no model either
    ])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    [item] = report.anchoring
    assert (item.suggested.n, item.suggested.stance_matches, item.blind.n, item.blind.stance_matches) == (3, 2, 1, 1)
    assert item.difference == pytest.approx(2 / 3 - 1, abs=1e-12)
    assert item.summary.startswith("ben agrees with the model's stance 33.3 percentage points less often when they "
                                   "see its suggestion (n=3 suggested, 1 blind)")
    assert item.summary.endswith("which includes 0, so no clear sign of anchoring")
    assert (report.counts, report.suggested) == ({"ben": 6}, {"ben": 3})


def test_without_blind_items_the_report_says_how_to_get_them(codebook, paragraphs, store):
    ann, adj = store([
        shown(rec("p-01", "ana", "favor"), "favor"), shown(rec("p-02", "ana", "none"), "favor"),
        rec("p-01", "ben", "favor"),
    ])
    report = compute_agreement(codebook, paragraphs, ann, adj)
    [item] = report.anchoring
    assert (item.suggested.n, item.suggested.stance_agreement, item.blind.n) == (2, 0.5, 0)
    assert (item.blind.stance_agreement, item.blind.stance_ci, item.difference, item.difference_ci) == (
        None, None, None, None)
    hint = ("ana has no blind items (n=2 suggested, 0 blind), so anchoring cannot be estimated; hide the "
            "suggestion on a share of paragraphs with `python -m experiments annotate --suggest RUN_DIR --blind 0.2`")
    assert item.summary == hint
    lines = format_agreement(report, codebook).splitlines()
    start = lines.index("agreement with the model: suggested = suggestion shown, blind = hidden (95% CI in %)")
    assert lines[start + 4].split() == ["ana", "blind", "0", "n/a", "n/a", "n/a", "n/a"]
    assert " ".join(" ".join(lines[start + 5:start + 8]).split()) == hint
    # The command is never broken across lines, so it can be copied.
    assert lines[start + 7] == "    `python -m experiments annotate --suggest RUN_DIR --blind 0.2`"
    assert report_json(report)["anchoring"][0]["summary"] == hint


def test_without_any_suggestion_the_report_says_so_in_one_line(codebook, paragraphs, store):
    ann, adj = store(kappa_records())
    report = compute_agreement(codebook, paragraphs, ann, adj)
    assert report.anchoring == []
    lines = format_agreement(report, codebook).splitlines()
    start = lines.index("agreement with the model: n/a, no standing label records a model suggestion")
    assert lines[start + 1] == "  to measure anchoring, start the app with `python -m experiments annotate --suggest RUN_DIR --blind 0.2`"
    assert ("stance agreement by what the pair saw: n/a, no paragraph in common has a model suggestion recorded "
            "for both") in lines
    assert report_json(report)["anchoring"] == []


def test_pair_agreement_is_split_by_what_the_two_annotators_saw(codebook, paragraphs, store):
    ann, adj = store([
        shown(rec("p-01", "ana", "favor"), "favor", blind=True), shown(rec("p-01", "ben", "favor"), "favor", blind=True),
        shown(rec("p-02", "ana", "against"), "favor", blind=True), shown(rec("p-02", "ben", "neutral"), "favor", blind=True),
        shown(rec("p-03", "ana", "none"), "none"), shown(rec("p-03", "ben", "none"), "none", blind=None),
        shown(rec("p-04", "ana", "none"), "none"), shown(rec("p-04", "ben", "none"), "none", blind=True),
        shown(rec("p-05", "ana", "favor"), "none", blind=True), shown(rec("p-05", "ben", "against"), "none"),
        shown(rec("p-06", "ana", "favor"), "favor"), rec("p-06", "ben", "favor"),  # ben had no model: in none
    ])
    [pair] = compute_agreement(codebook, paragraphs, ann, adj).pairs
    assert pair.n == 6
    got = {key: (c.n, c.stance_agreement, c.stance_kappa) for key, c in pair.by_condition.items()}
    # Both blind (p-01, p-02): p_o = 1/2; ana favor/against, ben favor/neutral: p_e = 1/4; kappa = 1/3.
    # Mixed (p-04, p-05): none/none and favor/against: p_o = 1/2, p_e = 1/4, kappa = 1/3.
    assert got == {
        "both_blind": (2, 0.5, pytest.approx(1 / 3, abs=1e-9)),
        "both_suggested": (1, 1.0, None),
        "mixed": (2, 0.5, pytest.approx(1 / 3, abs=1e-9)),
    }
    report = compute_agreement(codebook, paragraphs, ann, adj)
    lines = format_agreement(report, codebook).splitlines()
    start = lines.index("stance agreement by what the pair saw (shared suggestions can inflate agreement)")
    assert [l.split() for l in lines[start + 1:start + 6]] == [
        ["pair", "condition", "n", "stance", "κ", "stance", "%"],
        ["-" * 48],
        ["ana", "/", "ben", "both", "blind", "2", "0.333", "50.0%"],
        ["ana", "/", "ben", "both", "suggested", "1", "n/a", "100.0%"],
        ["ana", "/", "ben", "mixed", "2", "0.333", "50.0%"],
    ]
    data = json.loads(json.dumps(report_json(report)))
    assert data["pairs"][0]["by_condition"]["both_suggested"] == {"n": 1, "stance_agreement": 1.0, "stance_kappa": None}
