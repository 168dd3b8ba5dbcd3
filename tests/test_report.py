"""The report on saved runs (``report``): an HTML page and its Markdown twin.

The page's shape (where it goes, self-contained, relative links, plot order and captions, the size of the embedded
plots) is checked on a copy of the session's trained run (conftest ``run_dir``), as ``run`` wrote it. The contents
worked out by hand (mistake rows, per-document tables, p-values, escaping of a paragraph with markup) and comparisons
of two runs that differ in a named way read the small run built by hand in tests/inline_run.py.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest
from inline_run import lodo, run, write_run  # noqa: F401 (fixtures)

from experiments.errors import UserError
from experiments.report import write_report


def pixels(image: bytes) -> list:
    """An image's pixels as seen on the page's white background."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as im:
        rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB").tobytes()


@pytest.fixture
def trained(run_dir, tmp_path):
    """A copy of the session's trained run under ``tmp_path/results``: the report is written into its first run."""
    return shutil.copytree(run_dir, tmp_path / "results" / run_dir.parent.name / run_dir.name)


def plot_files(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "plots").rglob("*.png"))


# --- the page's shape, on a run that `run` wrote ------------------------------------------------------------------


def test_a_report_goes_into_the_first_run_directory_as_html_and_markdown(trained, lodo):
    html_path, md_path = write_report([trained, lodo])
    assert (html_path, md_path) == (trained / "report.html", trained / "report.md")
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md_path.read_text(encoding="utf-8").startswith("# Run report: tiny vs lodo_run\n")


def test_out_names_both_files(trained, tmp_path):
    html_path, md_path = write_report([trained], out=tmp_path / "reports" / "compare.html")
    assert (html_path, md_path) == (tmp_path / "reports" / "compare.html", tmp_path / "reports" / "compare.md")
    assert html_path.is_file() and md_path.is_file()


def test_the_page_is_self_contained_and_embeds_each_plot_once_losslessly_in_far_fewer_bytes(trained):
    page = write_report([trained])[0].read_text(encoding="utf-8")
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page.lower() and "<link" not in page.lower() and "@import" not in page
    sources = re.findall(r'<img src="([^"]*)"', page)
    files = plot_files(trained)
    assert len(sources) == len(files) == 2 * 7  # every plot of the run, once
    assert all(re.match(r"data:image/(png|webp);base64,", s) for s in sources)
    # Lossless: each embedded image has exactly the pixels of one plot file.
    decoded = sorted(pixels(base64.b64decode(s.split(",", 1)[1])) for s in sources)
    assert decoded == sorted(pixels(f.read_bytes()) for f in files)
    # The page used to embed every PNG as it is (base64; 100% of it, the coverage plot twice). As lossless WebP
    # matplotlib's plots take about 40% of their PNG bytes; 70% leaves room for other libwebp versions and still
    # fails any page that embeds the PNGs as they are.
    as_is = sum(len(base64.b64encode(f.read_bytes())) for f in files)
    embedded = sum(len(s) for s in sources)
    assert embedded < 0.7 * as_is, (embedded, as_is)
    assert len(page) - embedded < 150_000  # the rest of the page: text, tables and style


def test_the_markdown_links_the_plots_relative_to_itself(trained, tmp_path):
    md_path = write_report([trained], out=tmp_path / "elsewhere" / "r.html")[1]
    targets = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md_path.read_text(encoding="utf-8"))
    assert targets and all(not os.path.isabs(t) for t in targets)
    assert all((md_path.parent / t).resolve().is_file() for t in targets)


def test_plots_come_in_a_fixed_order_with_captions_and_a_generic_one_for_unknown_files(trained):
    shutil.copy(trained / "plots" / "stance" / "coverage.png", trained / "plots" / "stance" / "mystery.png")
    md = write_report([trained])[1].read_text(encoding="utf-8")
    order = [m.group(1) for m in re.finditer(r"!\[[^\]]*\]\(plots/stance/([^)]+)\)", md)]
    # The page's sections in turn (model for new text, comparison, per label, data, calibration, confusion per model
    # in the config's order), then the files the report has no place for.
    assert order == ["coverage.png", "model_comparison.png", "per_label_f1.png", "label_distribution.png",
                     "calibration.png", "confusion_tfidf_logreg.png", "confusion_majority.png", "mystery.png"]
    assert "*Confusion matrix of tfidf_logreg, normalised per gold stance label" in md
    assert "*stance: mystery (a plot this report has no description for).*" in md


def test_no_absolute_path_in_the_page_or_the_markdown(trained, lodo, tmp_path):
    # Run directories given as absolute paths, the report written elsewhere: every path it shows or links is
    # relative to the report's folder, and leads to the file or folder it names.
    assert trained.is_absolute()
    for options in ({}, {"images": "link"}):  # plots embedded (the default), or linked
        html_path, md_path = write_report([trained, lodo], out=tmp_path / "reports" / "compare.html", **options)
        page, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
        assert str(tmp_path) not in page and str(tmp_path) not in md
        targets = re.findall(r'(?:href|src)="([^"#][^"]*)"', page) + re.findall(r"\]\(<?([^)#>][^)>]*)>?\)", md)
        targets = [t for t in targets if not t.startswith("data:")]
        assert len(targets) >= 2 + 2  # the two run directories in the page and in the Markdown at least
        for target in targets:
            assert not os.path.isabs(unquote(target)), target
            assert (html_path.parent / unquote(target)).exists(), target
    assert f"Run directories (relative to this report): tiny [`../results/tiny/{trained.name}`]" in md


def test_a_folder_that_is_not_a_run_is_refused_with_a_hint(tmp_path):
    (tmp_path / "meta.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UserError) as caught:
        write_report([tmp_path])
    assert str(caught.value) == f"{tmp_path}: not a run directory (no metrics.json); pass a directory printed by `run`"
    with pytest.raises(UserError) as caught:
        write_report([tmp_path / "missing"])
    assert str(caught.value) == (f"{tmp_path / 'missing'}: not a run directory (folder not found); "
                                 "pass a directory printed by `run`")


# --- contents worked out by hand, on the inline runs ---------------------------------------------------------------


def details(page: str) -> list[str]:
    return re.findall(r"<details(?: open)?><summary>.*?</details>", page, flags=re.DOTALL)


def test_the_long_parts_fold_away_and_the_headings_stay_in_the_contents(run, lodo):
    html_path, md_path = write_report([run, lodo])
    page = html_path.read_text(encoding="utf-8")
    folded = details(page)
    assert any("<h4 id=\"most-confident-mistakes\">" in d and "Strikes &lt;b&gt;now" in d for d in folded)
    assert any("favor (n=4)" in d and "not estimable" in d for d in folded)  # a per-label table
    assert any("models.tfidf_svm.params.C" in d for d in folded)  # the config diff
    assert any("Confusion matrices, one per model" in d and "<img" in d for d in folded)
    assert not any("<h2" in d or "<h3" in d for d in folded)  # every contents entry stays visible
    links = re.findall(r'<nav class="toc">.*?</nav>', page, flags=re.DOTALL)[0]
    inline = re.findall(r'<details class="toc-inline">.*?</details>', page, flags=re.DOTALL)[0]
    anchors = re.findall(r'href="#([^"]+)"', links)
    assert anchors and anchors == re.findall(r'href="#([^"]+)"', inline)  # the same contents on a narrow screen
    assert all(f'id="{a}"' in page for a in anchors)
    assert "<details><summary>" in md_path.read_text(encoding="utf-8")


def test_the_runs_plots_stand_side_by_side(run, lodo):
    page = write_report([run, lodo])[0].read_text(encoding="utf-8")
    grids = re.findall(r'<figure class="compare">.*?</figure></div></figure>|<figure class="compare">.*?</figcaption></figure>',
                       page, flags=re.DOTALL)
    comparison = [g for g in grids if "stance/model_comparison.png" in g]
    assert len(comparison) == 1
    assert re.findall(r'<div class="run">([^<]+)</div><img', comparison[0]) == ["kfold_run", "lodo_run"]


def test_paragraph_text_is_escaped(run):
    html_path, md_path = write_report([run])
    page = html_path.read_text(encoding="utf-8")
    assert "Strikes &lt;b&gt;now&lt;/b&gt; &amp; then." in page and "<b>now" not in page
    assert "Strikes &lt;b>now&lt;/b> & then." in md_path.read_text(encoding="utf-8")


def test_the_report_tables_the_config_keys_that_differ(run, lodo):
    md = write_report([run, lodo])[1].read_text(encoding="utf-8")
    section = md.split("## Configs and data")[1].split("\n## ")[0]
    keys = re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)
    assert keys == ["name", "protocol.name", "metrics.bootstrap_unit", "models.tfidf_svm.params.C"]
    assert "| `models.tfidf_svm.params.C` | `1.0` | `0.5` |" in section


def test_runs_on_different_data_are_flagged(run, tmp_path):
    other = write_run(tmp_path / "other", "other_run", fingerprint="fp-2")
    page = write_report([run, other])[0].read_text(encoding="utf-8")
    assert '<p class="warning"><strong>These runs used different data</strong>' in page
    assert "The data fingerprints differ:" in page
    same = write_report([run, write_run(tmp_path / "same", "same_run")])[0].read_text(encoding="utf-8")
    assert "different data" not in same and "All runs used the same data (same fingerprint)." in same


def test_a_p_value_of_zero_reads_as_below_one_over_the_resamples(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    assert "- tfidf_svm beats majority by 0.37 macro-F1 [0.26, 0.45], p < 0.001\n" in md
    assert "| tfidf_svm | majority | macro-F1 | 0.37 [0.26, 0.45] | p < 0.001 | ● |" in md
    assert "| tfidf_svm | majority | accuracy | 0.20 [-0.05, 0.40] | p = 0.21 |  |" in md
    assert "p = 0.000" not in md


def test_the_most_confident_mistakes_are_tabled_with_their_text(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    errors = md.split("### kfold_run · stance", 2)[2].split("#### Per document")[0]
    rows = [line for line in errors.splitlines() if re.match(r"\| \d+ \|", line)]
    # p4's 0.95 mistake is in repeat 1 and p5's 0.99 one is a learning-curve prediction: neither counts.
    assert rows == [
        "| 1 | `p2` · d1 | Strikes &lt;b>now&lt;/b> & then. | against | **none** | 0.90 | 0.03 |",
        "| 2 | `p3` · d1 | Nothing to see. | none | **favor** | 0.60 | 0.13 |",
    ]


def test_frame_mistakes_are_confident_false_positives_and_unconfident_false_negatives(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    frames = md.split("### kfold_run · frames", 2)[2]
    fp = frames.split("#### Most confident false positives")[1].split("####")[0]
    fn = frames.split("#### Least confident false negatives")[1].split("####")[0]
    assert re.findall(r"^\| \d+ \| `(p\d)`.*\| \*\*(\w+)\*\* \| ([\d.]+) \|", fp, flags=re.MULTILINE) == [
        ("p3", "security", "0.80"), ("p2", "humanitarian", "0.70")]
    assert re.findall(r"^\| \d+ \| `(p\d)`.*\| \*\*(\w+)\*\* \| ([\d.]+) \|", fn, flags=re.MULTILINE) == [
        ("p4", "security", "0.05"), ("p2", "security", "0.20")]


def test_per_document_accuracy_is_tabled_with_all_documents_last(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    table = md.split("#### Per document (accuracy", 1)[1].split("\n\n")[1]
    assert table.splitlines()[2:] == ["| `d1` | 3 | 0.33 | 0.50 |", "| `d2` | 2 | 0.50 | 0.75 |",
                                      "| **all documents** | **5** | **0.40** | **0.60** |"]


def test_labels_too_rare_to_score_read_not_estimable(run):
    md = write_report([run])[1].read_text(encoding="utf-8")
    per_label = md.split("## Per-label F1")[1].split("### kfold_run · frames")[0]
    assert "| model | favor (n=4) | against (n=2) | neutral (n=0) | none (n=4) |" in per_label
    assert "| tfidf_svm | 0.50 [0.20, 0.80] | not estimable | not estimable | 0.50 [0.20, 0.80] |" in per_label


def test_learning_curves_are_tabled_by_fraction(run, lodo):
    md = write_report([run, lodo])[1].read_text(encoding="utf-8")
    curves = md.split("## Learning curves")[1].split("\n## ")[0]
    assert "| model | 50% (n=1) | 100% (n=2.5) |" in curves
    assert "| tfidf_svm | 0.31 [0.21, 0.41] | 0.47 [0.37, 0.57] |" in curves
    assert "No learning curve in **lodo_run**" in curves
