"""The codebook: validation, the rendered guide, and examples that agree with the gold labels."""

from __future__ import annotations

import copy
import re
from collections import Counter

import pytest
import yaml

from experiments import paths
from experiments.annotations import derive_gold, load_paragraphs
from experiments.codebook import STANCE_LABELS, load_codebook, render_markdown
from experiments.errors import UserError

SHIPPED = yaml.safe_load(paths.CODEBOOK.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def paragraphs():
    return load_paragraphs()


@pytest.fixture(scope="module")
def gold(codebook, paragraphs):
    return {g["id"]: g for g in derive_gold(codebook, paragraphs).gold}


def _write(tmp_path, raw: dict):
    path = tmp_path / "codebook.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def _load_error(tmp_path, raw: dict) -> str:
    path = _write(tmp_path, raw)
    with pytest.raises(UserError) as excinfo:
        load_codebook(path)
    return str(excinfo.value).removeprefix(f"{path}: ")


def test_codebook_md_is_rendered_from_the_yaml():
    assert paths.CODEBOOK_MD.read_text(encoding="utf-8") == render_markdown(load_codebook())


def test_stance_labels_are_the_four_fixed_labels_in_order(codebook):
    assert codebook.stance_labels == list(STANCE_LABELS) == ["favor", "against", "neutral", "none"]


def test_every_example_quote_is_in_its_paragraph(codebook, paragraphs):
    for section in (codebook.stance, codebook.frames):
        for label in section.labels:
            for example in label.examples:
                assert example.paragraph in paragraphs, f"{label.name}: {example.paragraph} is not a paragraph id"
                assert example.quote in paragraphs[example.paragraph]["text"], f"{label.name}: {example.quote!r}"


def test_stance_examples_have_the_stance_they_exemplify(codebook, gold):
    wrong = [(l.name, e.paragraph, gold[e.paragraph]["stance"])
             for l in codebook.stance.labels for e in l.examples if gold[e.paragraph]["stance"] != l.name]
    assert wrong == []


def test_frame_examples_carry_the_frame_they_exemplify(codebook, gold):
    wrong = [(l.name, e.paragraph, gold[e.paragraph]["frames"])
             for l in codebook.frames.labels for e in l.examples if l.name not in gold[e.paragraph]["frames"]]
    assert wrong == []


def test_every_label_has_two_examples_unless_the_seeds_have_fewer(codebook, gold):
    stance_counts = Counter(g["stance"] for g in gold.values())
    frame_counts = Counter(f for g in gold.values() for f in g["frames"])
    short = [
        (label.name, len({e.paragraph for e in label.examples}))
        for labels, counts in ((codebook.stance.labels, stance_counts), (codebook.frames.labels, frame_counts))
        for label in labels
        if len({e.paragraph for e in label.examples}) < min(2, counts[label.name])
    ]
    assert short == []


def test_an_unknown_key_is_an_error_naming_its_key_path(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    raw["stance"]["labels"][1]["colour"] = "red"
    assert _load_error(tmp_path, raw) == "stance.labels.1.colour: unknown key; remove it or check its spelling"


def test_a_missing_key_is_an_error_naming_its_key_path(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    del raw["frames"]["labels"][0]["justification"]
    assert _load_error(tmp_path, raw) == "frames.labels.0.justification: required key is missing"


def test_a_frame_mapped_to_an_unknown_generic_frame_is_an_error_naming_it(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    raw["frames"]["labels"][2]["generic_frame"] = "geopolitics"
    assert _load_error(tmp_path, raw).startswith(
        "frames.labels.2.generic_frame: 'geopolitics' is not in generic_frames (choose one of capacity_resources, "
    )


def test_stance_labels_out_of_order_are_an_error(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    labels = raw["stance"]["labels"]
    labels[0], labels[1] = labels[1], labels[0]
    assert _load_error(tmp_path, raw) == (
        "stance.labels must be favor, against, neutral, none in that order, got against, favor, neutral, none"
    )


def test_a_shortcut_key_used_twice_is_an_error(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    raw["frames"]["labels"][1]["key"] = raw["frames"]["labels"][0]["key"]
    assert _load_error(tmp_path, raw) == f"frames.labels.1.key: shortcut {raw['frames']['labels'][0]['key']!r} is used twice"


def test_a_missing_codebook_is_an_error(tmp_path):
    with pytest.raises(UserError, match=r"^.*nope\.yaml: codebook not found; the codebook lives in configs/codebook\.yaml$"):
        load_codebook(tmp_path / "nope.yaml")


def test_a_yaml_syntax_error_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "codebook.yaml"
    path.write_text('version: "1"\ntitle: [unclosed\n', encoding="utf-8")
    with pytest.raises(UserError) as excinfo:
        load_codebook(path)
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: not valid YAML \(.+\); fix the syntax", str(excinfo.value))


def test_to_generic_maps_project_frames_in_codebook_order(codebook):
    # humanitarian -> health_safety, security -> security_defense; generic order puts security_defense first.
    assert codebook.to_generic(["humanitarian", "security"]) == ["security_defense", "health_safety"]
    assert codebook.to_generic(["security", "security"]) == ["security_defense"]
    assert codebook.to_generic([]) == []


def test_to_generic_deduplicates_frames_sharing_a_generic_frame(tmp_path):
    raw = copy.deepcopy(SHIPPED)
    gender = next(f for f in raw["frames"]["labels"] if f["name"] == "gender")
    gender["generic_frame"] = "political"  # regime_legitimacy maps there too
    codebook = load_codebook(_write(tmp_path, raw))
    assert codebook.to_generic(["gender", "regime_legitimacy"]) == ["political"]
    assert "fairness_equality" not in codebook.generic_labels


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_illustrations_and_cues_are_written_for_the_codebook_not_drawn_from_a_seed(codebook, paragraphs):
    # Only quoted examples carry a seed paragraph's label; everything else is seen in every fold, so it must
    # not repeat a seed's wording (six words in a row for illustrations, a whole cue of three or more words).
    seen6 = set().union(*(_ngrams(_words(p["text"]), 6) for p in paragraphs.values()))
    corpus = [" ".join(_words(p["text"])) for p in paragraphs.values()]
    drawn = []
    for label in [*codebook.stance.labels, *codebook.frames.labels]:
        drawn += [(label.name, text) for text in label.illustrations if _ngrams(_words(text), 6) & seen6]
        drawn += [(label.name, cue) for cue in label.cues
                  if len(_words(cue)) >= 3 and any(f" {' '.join(_words(cue))} " in f" {t} " for t in corpus)]
    assert drawn == []


def test_every_label_has_illustrations(codebook):
    assert [l.name for l in [*codebook.stance.labels, *codebook.frames.labels] if len(l.illustrations) < 5] == []
