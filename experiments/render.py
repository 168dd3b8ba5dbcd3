"""Rendering the report's blocks to a self-contained HTML page and to Markdown.

``report.py`` decides what the report says, as a list of blocks (headings,
paragraphs, tables, figures, collapsible sections); this module only turns
those blocks into HTML (inline CSS, every text escaped) or Markdown (plots
linked by relative path), so the two can never drift apart.

The page embeds its plots as data URIs (``images="embed"``, the default: one
file that opens anywhere), each plot once and re-encoded as lossless WebP
(the same pixels in about 40% of the PNG's bytes); or links them by a path
relative to the page (``images="link"``: a small page that needs the run
directories beside it). No path in either file is absolute.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote


# --------------------------------------------------------------------------- the report: document model
# Inline content is a str (plain text), a Span, or a list of those.

@dataclass(frozen=True)
class Span:
    kind: str  # code | strong | muted | link | num (value, CI) | sub (a second line in HTML)
    content: Any
    href: str = ""


def code(x) -> Span:
    return Span("code", x)


def strong(x) -> Span:
    return Span("strong", x)


def muted(x) -> Span:
    return Span("muted", x)


def num(metric: dict | None) -> Span | str:
    """A metric as value with a quieter CI; ``n/a`` when undefined, an em dash when absent."""
    if metric is None:
        return "—"
    if metric["value"] is None:
        return "n/a"
    low, high = metric["ci"]
    return Span("num", (f"{metric['value']:.2f}", f"[{low:.2f}, {high:.2f}]" if low is not None else ""))


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Para:
    content: Any
    kind: str = ""  # "" | lead | note | warning


@dataclass
class Bullets:
    items: list


@dataclass
class Table:
    header: list
    rows: list[list]
    align: str  # one letter per column: l (short text), r (numbers), t (long text), w (wrapping list)
    groups: list[tuple[Any, int]] | None = None  # spanning header cells above ``header``
    marked: set[int] = field(default_factory=set)  # rows to highlight
    kind: str = ""


@dataclass
class Figures:
    items: list[tuple[Path, str]]
    wide: bool = True
    columns: int = 2  # when not wide: the most figures side by side


@dataclass
class Compare:
    """The same plot of several runs, side by side: ``items`` are (run label, plot file)."""

    caption: str
    items: list[tuple[str, Path]]


@dataclass
class Details:
    """A collapsible section: ``summary`` shows, ``blocks`` open on a click."""

    summary: Any
    blocks: list
    open: bool = False


@dataclass
class Contents:
    pass


def walk(blocks: list):
    """Every block, those inside collapsible sections included, in document order."""
    for b in blocks:
        yield b
        if isinstance(b, Details):
            yield from walk(b.blocks)


def relative(path: Path, where: Path) -> str:
    """``path`` relative to the folder ``where``, with forward slashes: what a page in ``where`` links to.

    >>> relative(Path("results/default/r1/plots/a.png"), Path("results"))
    'default/r1/plots/a.png'
    >>> relative(Path("results/default/r1"), Path("results/kfold/r2"))
    '../../default/r1'
    """
    return Path(os.path.relpath(Path(path).resolve(), Path(where).resolve())).as_posix()


def anchor(text: str, used: set[str]) -> str:
    """GitHub's heading anchor, so the Markdown twin's contents links work too."""
    base = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
    name, k = base, 0
    while name in used:
        k += 1
        name = f"{base}-{k}"
    used.add(name)
    return name


def _plain(x) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, list):
        return "".join(_plain(i) for i in x)
    if x.kind == "num":
        return " ".join(p for p in x.content if p)
    return _plain(x.content)


# --------------------------------------------------------------------------- rendering: HTML

CSS = """
:root { --ink:#1d2430; --muted:#6b7480; --paper:#fbfaf7; --card:#fff; --line:#e3e1dc; --accent:#0072b2;
  --soft:#e3f0f8; --bad:#d55e00; --warn-bg:#fdf0e6; --ok:#009e73; }
* { box-sizing: border-box; }
html { font-size: 16px; }
body { margin: 0; background: var(--paper); color: var(--ink); line-height: 1.55;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
.layout { display: grid; grid-template-columns: 15rem minmax(0, 1fr); max-width: 88rem; margin: 0 auto; }
nav.toc { position: sticky; top: 0; align-self: start; max-height: 100vh; overflow-y: auto;
  padding: 1.5rem 1rem 2rem 1.25rem; font-size: 0.83rem; border-right: 1px solid var(--line); }
nav.toc strong { display: block; text-transform: uppercase; letter-spacing: .06em; font-size: .72rem;
  color: var(--muted); margin-bottom: .4rem; }
nav.toc ul { list-style: none; margin: 0; padding: 0; }
nav.toc ul ul { padding-left: .8rem; margin: .15rem 0 .4rem; }
nav.toc li { margin: .12rem 0; }
nav.toc a { color: var(--ink); text-decoration: none; }
nav.toc ul ul a { color: var(--muted); }
nav.toc a:hover { color: var(--accent); text-decoration: underline; }
main { padding: 1.5rem 2.5rem 4rem; min-width: 0; }
h1 { font-size: 1.75rem; line-height: 1.25; margin: .2rem 0 .6rem; }
h2 { font-size: 1.35rem; margin: 2.6rem 0 .6rem; padding-bottom: .25rem; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.08rem; margin: 1.8rem 0 .5rem; }
h4 { font-size: .95rem; margin: 1.2rem 0 .4rem; color: var(--muted); }
p, ul { max-width: 52rem; }
p.lead { font-size: 1.05rem; color: #3b4350; }
p.note, p.warning { padding: .6rem .9rem; border-radius: 6px; border-left: 4px solid var(--accent); background: var(--soft); }
p.warning { border-left-color: var(--bad); background: var(--warn-bg); font-size: 1.02rem; }
li { margin: .25rem 0; }
code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: .86em;
  background: #f1efea; padding: .05em .3em; border-radius: 3px; }
a { color: var(--accent); }
.muted { color: var(--muted); }
td:first-child .sub, table.errors td:nth-child(2) .sub { white-space: nowrap; }
.table-wrap { overflow-x: auto; margin: .6rem 0 1rem; }
table { border-collapse: collapse; font-size: .86rem; background: var(--card); border: 1px solid var(--line); }
th, td { padding: .32rem .65rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f4f3ef; font-weight: 600; text-align: left; white-space: nowrap; }
th.group { text-align: center; border-left: 2px solid var(--line); font-weight: 500; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.t { min-width: 16rem; max-width: 32rem; font-size: .83rem; line-height: 1.45; }
td.gs, th.gs { border-left: 2px solid var(--line); }
table.compact th { white-space: normal; text-align: right; }
table.compact th:first-child { text-align: left; }
table.compact .ci { display: block; font-size: .85em; }
tr.marked td { background: #eaf5ef; font-weight: 600; }
tr.marked td:last-child { color: var(--ok); }
tbody tr:hover td { background: #f7f6f2; }
.ci { color: var(--muted); font-size: .92em; }
table.errors { width: 100%; }
table.errors th { white-space: normal; }
table.errors td.l code { white-space: nowrap; }
table.errors td.t { font-family: Georgia, "Iowan Old Style", "Times New Roman", serif; font-size: .9rem; }
figure { margin: .8rem 0 1.4rem; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); background: #fff; border-radius: 4px; }
figure.wide img { max-width: min(100%, 62rem); }
figcaption { font-size: .83rem; color: var(--muted); max-width: 52rem; margin-top: .3rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 20rem), 1fr)); gap: 1rem; }
.grid.c1 { grid-template-columns: minmax(0, 46rem); }
.grid figure { margin: 0; }
figure.compare { margin: .8rem 0 1.6rem; }
figure.compare > .runs { display: grid; gap: .8rem;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr)); }
figure.compare > .runs > div { min-width: 0; }
figure.compare .run { font-size: .83rem; font-weight: 600; margin-bottom: .2rem; overflow-wrap: anywhere; }
figure.compare img { width: 100%; }
details { margin: .5rem 0 1rem; border: 1px solid var(--line); border-radius: 6px; background: var(--card); }
details > summary { cursor: pointer; padding: .45rem .8rem; font-weight: 600; font-size: .92rem; }
details > summary:hover { color: var(--accent); }
details[open] > summary { border-bottom: 1px solid var(--line); }
details > .body { padding: .2rem .8rem .6rem; }
details.toc-inline { display: none; }
details.toc-inline ul { list-style: none; padding-left: .2rem; margin: .3rem 0; }
details.toc-inline ul ul { padding-left: 1rem; }
details.toc-inline a { color: var(--ink); text-decoration: none; }
main p, main li, figcaption, nav.toc li, details.toc-inline li { overflow-wrap: anywhere; }
@media (max-width: 60rem) { .layout { display: block; } nav.toc { display: none; }
  details.toc-inline { display: block; } main { padding: 1rem; } h1 { font-size: 1.4rem; } }
@media print { nav.toc, details.toc-inline { display: none; } .layout { display: block; } }
"""


def _html_inline(x) -> str:
    if isinstance(x, str):
        return html.escape(x)
    if isinstance(x, list):
        return "".join(_html_inline(i) for i in x)
    if x.kind == "num":
        value, ci = x.content
        return html.escape(value) + (f' <span class="ci">{html.escape(ci)}</span>' if ci else "")
    inner = _html_inline(x.content)
    if x.kind == "code":
        return f"<code>{inner}</code>"
    if x.kind == "strong":
        return f"<strong>{inner}</strong>"
    if x.kind == "muted":
        return f'<span class="muted">{inner}</span>'
    if x.kind == "link":
        return f'<a href="{html.escape(x.href)}">{inner}</a>'
    if x.kind == "sub":
        return f'<br><span class="muted sub">{inner}</span>'
    return inner


def _html_table(t: Table) -> str:
    # Columns starting a run's group get a left rule, so the groups read as blocks.
    starts, col = set(), 0
    for _, span in t.groups or []:
        if col:
            starts.add(col)
        col += span

    def cls(j: int) -> str:
        names = [t.align[j]]
        if j in starts:
            names.append("gs")
        return " ".join(names)

    out = [f'<div class="table-wrap"><table class="{t.kind}"><thead>']
    if t.groups:
        out.append("<tr>")
        col = 0
        for label, span in t.groups:
            if span == 1 and label == "":
                out.append(f'<th rowspan="2" class="{cls(col)}">{_html_inline(t.header[col])}</th>')
            else:
                out.append(f'<th colspan="{span}" class="group">{_html_inline(label)}</th>')
            col += span
        out.append("</tr><tr>")
        col = 0
        for label, span in t.groups:
            if not (span == 1 and label == ""):
                out += [f'<th class="{cls(j)}">{_html_inline(t.header[j])}</th>' for j in range(col, col + span)]
            col += span
        out.append("</tr>")
    else:
        out.append("<tr>" + "".join(f'<th class="{cls(j)}">{_html_inline(h)}</th>' for j, h in enumerate(t.header))
                   + "</tr>")
    out.append("</thead><tbody>")
    for i, row in enumerate(t.rows):
        mark = ' class="marked"' if i in t.marked else ""
        out.append(f"<tr{mark}>" + "".join(f'<td class="{cls(j)}">{_html_inline(c)}</td>' for j, c in enumerate(row))
                   + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


@lru_cache(maxsize=256)
def embedded_image(path: Path, mtime_ns: int = 0) -> tuple[str, bytes]:
    """A plot as the page embeds it: ``(mime type, bytes)``, re-encoded as lossless WebP, which keeps every
    pixel of matplotlib's PNG in about 40% of its bytes; the PNG itself where that is not smaller or
    Pillow cannot do it. (``mtime_ns`` only keys the cache.)"""
    data = Path(path).read_bytes()
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            image.load()
            rgba = image.convert("RGBA")
        # The page shows every plot on white: composed on white, the alpha channel costs bytes and adds nothing.
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        out = io.BytesIO()
        flat.save(out, "WEBP", lossless=True, quality=25, method=1)  # fast; slower settings save ~5% more
    except Exception:  # no WebP in this Pillow, or not an image it reads: the browser may still show it
        return "image/png", data
    return ("image/webp", out.getvalue()) if len(out.getvalue()) < len(data) else ("image/png", data)


def _data_uri(path: Path) -> str:
    mime, data = embedded_image(Path(path), Path(path).stat().st_mtime_ns)
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


@dataclass
class _Page:
    """How one page is rendered: where it lives (links are relative to it) and how it shows images."""

    where: Path | None
    images: str = "embed"  # embed | link

    def src(self, path: Path) -> str:
        if self.images == "link":
            return quote(relative(path, self.where or Path.cwd()))
        return _data_uri(path)

    def img(self, path: Path, alt: str) -> str:
        if self.images == "embed":
            return f'<img src="{self.src(path)}" alt="{html.escape(alt, quote=True)}">'
        # A linked plot loads when scrolled to, and opens full size on a click.
        src = self.src(path)
        return f'<a href="{src}"><img src="{src}" alt="{html.escape(alt, quote=True)}" loading="lazy"></a>'


def _html_figure(page: _Page, path: Path, caption: str, wide: bool) -> str:
    return (f'<figure class="{"wide" if wide else ""}">{page.img(path, caption)}'
            f"<figcaption>{html.escape(caption)} <span class=\"muted\">({html.escape(path.parent.name)}/"
            f"{html.escape(path.name)})</span></figcaption></figure>")


def _html_compare(page: _Page, c: Compare) -> str:
    cells = "".join(f'<div><div class="run">{html.escape(label)}</div>{page.img(path, f"{c.caption} ({label})")}</div>'
                    for label, path in c.items)
    names = ", ".join(sorted({f"{p.parent.name}/{p.name}" for _, p in c.items}))
    return (f'<figure class="compare"><div class="runs">{cells}</div>'
            f'<figcaption>{html.escape(c.caption)} <span class="muted">({html.escape(names)})</span>'
            "</figcaption></figure>")


def _toc(blocks: list) -> list[tuple[Heading, list[Heading]]]:
    entries: list[tuple[Heading, list[Heading]]] = []
    for b in blocks:
        if isinstance(b, Heading) and b.level == 2:
            entries.append((b, []))
        elif isinstance(b, Heading) and b.level == 3 and entries:
            entries[-1][1].append(b)
    return entries


def _html_toc_list(blocks: list) -> str:
    out = ["<ul>"]
    for h2, subs in _toc(blocks):
        out.append(f'<li><a href="#{h2.anchor}">{html.escape(h2.text)}</a>')
        if subs:
            out.append("<ul>" + "".join(f'<li><a href="#{h.anchor}">{html.escape(h.text)}</a></li>' for h in subs)
                       + "</ul>")
        out.append("</li>")
    out.append("</ul>")
    return "".join(out)


def _html_blocks(page: _Page, blocks: list, toc: str) -> list[str]:
    body = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f'<h{b.level} id="{b.anchor}">{html.escape(b.text)}</h{b.level}>')
        elif isinstance(b, Contents):
            # Narrow screens: the side bar is hidden and the contents fold away here instead.
            body.append(f'<details class="toc-inline"><summary>Contents</summary>{toc}</details>')
        elif isinstance(b, Para):
            body.append(f'<p class="{b.kind}">{_html_inline(b.content)}</p>' if b.kind else
                        f"<p>{_html_inline(b.content)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_html_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            body.append(_html_table(b))
        elif isinstance(b, Figures):
            figures = "".join(_html_figure(page, p, c, b.wide) for p, c in b.items)
            body.append(figures if b.wide else f'<div class="grid c{b.columns}">{figures}</div>')
        elif isinstance(b, Compare):
            body.append(_html_compare(page, b))
        elif isinstance(b, Details):
            inner = "\n".join(_html_blocks(page, b.blocks, toc))
            body.append(f"<details{' open' if b.open else ''}><summary>{_html_inline(b.summary)}</summary>"
                        f'<div class="body">\n{inner}\n</div></details>')
    return body


def render_html(blocks: list, where: Path | None = None, images: str = "embed") -> str:
    """The blocks as one HTML page that lives in the folder ``where``.

    ``images="embed"`` puts every plot into the page (compressed; nothing else is needed to read it);
    ``images="link"`` links the plot files by their path relative to ``where``.
    """
    if images not in ("embed", "link"):
        raise ValueError(f"images must be 'embed' or 'link', not {images!r}")
    page = _Page(where, images)
    title = next(b.text for b in blocks if isinstance(b, Heading) and b.level == 1)
    toc = _html_toc_list(blocks)
    side = f'<nav class="toc"><strong>Contents</strong>{toc}</nav>'
    body = _html_blocks(page, blocks, toc)
    # Nothing may be fetched but the page's own plots: embedded as data URIs, or (linked) files beside it.
    img_src = "data:" if images == "embed" else "data: 'self' file:"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src {img_src}; "
        "style-src 'unsafe-inline'\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<div class=\"layout\">\n"
        + side + "\n<main>\n" + "\n".join(body) + "\n</main>\n</div>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------- rendering: Markdown

_MD_SPECIAL = re.compile(r"([\\`*|])")


def _md_text(s: str) -> str:
    """Plain text made inert in Markdown (no emphasis, code, table breaks or raw HTML).

    >>> print(_md_text("a <b>bold</b> | *claim*, p < 0.05 [0.1, 0.2]"))
    a &lt;b>bold&lt;/b> \\| \\*claim\\*, p < 0.05 [0.1, 0.2]
    """
    s = re.sub(r"<(?=[A-Za-z/!?])", "&lt;", _MD_SPECIAL.sub(r"\\\1", s))
    return re.sub(r"\s*\n\s*", " ", s)


def _md_inline(x) -> str:
    if isinstance(x, str):
        return _md_text(x)
    if isinstance(x, list):
        return "".join(_md_inline(i) for i in x)
    if x.kind == "num":
        value, ci = x.content
        return value + (f" {ci}" if ci else "")
    if x.kind == "code":
        text = _plain(x.content).replace("|", "\\|")
        fence = "``" if "`" in text else "`"
        return f"{fence}{text}{fence}"
    inner = _md_inline(x.content)
    if x.kind == "strong":  # Markdown emphasis must not start or end with a space
        core = inner.strip()
        return inner.replace(core, f"**{core}**", 1) if core else inner
    if x.kind == "muted":
        return inner
    if x.kind == "link":
        return f"[{inner}]({f'<{x.href}>' if ' ' in x.href else x.href})"
    if x.kind == "sub":
        return f" · {inner}"
    return inner


def _md_table(t: Table) -> list[str]:
    header = list(t.header)
    if t.groups:
        col = 0
        for label, span in t.groups:
            if not (span == 1 and label == ""):
                name = _plain(label).split(" · ")[0]
                for j in range(col, col + span):
                    header[j] = [f"{name}: ", header[j]]
            col += span
    lines = ["| " + " | ".join(_md_inline(h) for h in header) + " |",
             "|" + "|".join("---:" if a == "r" else "---" for a in t.align) + "|"]
    for row in t.rows:
        cells = [_md_inline(c) for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _md_image(path: Path, alt: str, where: Path) -> str:
    rel = relative(path, where)
    return f"![{_md_text(alt)}]({f'<{rel}>' if ' ' in rel else rel})"


def _md_blocks(blocks: list, where: Path, everything: list) -> list[str]:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines += [f"{'#' * b.level} {b.text}", ""]
        elif isinstance(b, Contents):
            lines += ["**Contents**", ""]
            for h2, subs in _toc(everything):
                lines.append(f"- [{_md_text(h2.text)}](#{h2.anchor})")
                lines += [f"  - [{_md_text(h.text)}](#{h.anchor})" for h in subs]
            lines.append("")
        elif isinstance(b, Para):
            prefix = {"warning": "> **Warning.** ", "note": "> "}.get(b.kind, "")
            lines += [prefix + _md_inline(b.content), ""]
        elif isinstance(b, Bullets):
            lines += [f"- {_md_inline(i)}" for i in b.items] + [""]
        elif isinstance(b, Table):
            lines += _md_table(b) + [""]
        elif isinstance(b, Figures):
            for path, caption in b.items:
                lines += [_md_image(path, caption, where), "", f"*{_md_text(caption)}*", ""]
        elif isinstance(b, Compare):
            if len(b.items) == 1:
                lines += [_md_image(b.items[0][1], b.caption, where), ""]
            else:  # a one-row table: the runs' plots side by side where Markdown shows tables
                lines += ["| " + " | ".join(_md_text(label) for label, _ in b.items) + " |",
                          "|" + "---|" * len(b.items),
                          "| " + " | ".join(_md_image(path, f"{label}: {path.parent.name}/{path.stem}", where)
                                            for label, path in b.items) + " |", ""]
            lines += [f"*{_md_text(b.caption)}*", ""]
        elif isinstance(b, Details):
            # GitHub renders Markdown inside <details> when blank lines surround it.
            summary = html.escape(_plain(b.summary), quote=False)
            lines += [f"<details{' open' if b.open else ''}><summary>{summary}</summary>", ""]
            lines += _md_blocks(b.blocks, where, everything)
            lines += ["</details>", ""]
    return lines


def render_markdown(blocks: list, where: Path) -> str:
    """The same blocks as Markdown; images are linked relative to ``where`` (the Markdown file's folder)."""
    return "\n".join(_md_blocks(blocks, where, blocks)).rstrip() + "\n"
