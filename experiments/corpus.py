"""Seed documents → paragraphs.

``segment_text`` turns one document into paragraph records; ``build_corpus``
does it for every document in ``seeds/`` and writes ``data/paragraphs.jsonl``.
The rules are generic (they describe web-page boilerplate, not the lines of
particular files), deterministic and idempotent: segmenting the same bytes
twice gives the same records, and a paragraph's text is only
whitespace-normalised.

>>> [p["text"] for p in segment_text("Home News Big Story\\n\\nBig Story\\n\\nIt rained.\\nLeave a Reply", "d")]
['Big Story', 'It rained.']
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import paths
from experiments.annotations import annotation_files, derive_gold, load_paragraphs, now
from experiments.errors import UserError
from experiments.io import append_jsonl, locked, read_jsonl, read_yaml, write_jsonl_atomic

DOCUMENT_SUFFIXES = (".txt", ".md")

# A headline or teaser title is short and does not end like a sentence.
MAX_TITLE_WORDS = 30

_SENTENCE_END = re.compile(r"[.!?…:;][\"'”’)\]]*$")
_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
    r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_WEEKDAY = r"(?:(?:Mon|Tues?|Wed(?:nes)?|Thu(?:rs)?|Fri|Sat(?:ur)?|Sun)(?:day)?\.?,?\s+)?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_TIME = r"(?:,?\s+(?:at\s+)?\d{1,2}:\d{2}(?:\s*[ap]\.?m\.?)?(?:\s+[A-Z]{2,4})?)?"
_STANDALONE_DATE = re.compile(
    rf"^{_WEEKDAY}(?:{_MONTH}\s+{_DAY},?\s+\d{{4}}|{_DAY}\s+{_MONTH},?\s+\d{{4}}"
    rf"|\d{{4}}-\d{{2}}-\d{{2}}|\d{{1,2}}[./]\d{{1,2}}[./]\d{{2,4}}){_TIME}$",
    re.IGNORECASE,
)
# Interface text of web pages and of comment sections.
_PAGE_FURNITURE = re.compile(
    r"^(?:exit mobile version|skip to (?:main )?content|toggle navigation|advertisement|sponsored"
    r"|(?:share|tweet|print|email)(?: this(?: article| story| post)?)?:?"
    r"|leave a (?:reply|comment)|cancel reply|(?:post|submit) comment"
    r"|your email address will not be published\b.*|required fields are marked\b.*"
    r"|save my name, email, and website\b.*"
    r"|(?:no|\d+) comments?(?: yet)?|comments? \(\d+\)|be the first to comment\.?)$",
    re.IGNORECASE,
)
# Headings that introduce a list of other articles' titles.
_TEASER_HEADING = re.compile(
    r"^(?:more from (?:the )?author|more stories|related(?: posts| articles| stories)?"
    r"|you (?:may|might) also like|recommended(?: for you)?|read (?:more|next|also)"
    r"|most (?:read|popular)|latest (?:news|posts|stories)|trending(?: now)?)$",
    re.IGNORECASE,
)
_CRUMB_ROOT = re.compile(r"^Home(?=[A-Z\s»›>/|])")
_CRUMB_SEPARATOR = re.compile(r"\s[»›>/|]\s")


@dataclass(frozen=True)
class Document:
    """One seed document as described by the manifest (or by its file name)."""

    id: str
    file: str
    title: str | None = None
    author: str | None = None
    date: str | None = None
    genre: str | None = None


def normalize_whitespace(text: str) -> str:
    """Collapse every run of Unicode whitespace (no-break spaces included) to one space.

    >>> normalize_whitespace("  a\\u00a0\\u00a0b\\tc ")
    'a b c'
    """
    return " ".join(text.split())


def text_hash(text: str) -> str:
    """The 16-hex-digit SHA-256 prefix that annotations use to pin a paragraph's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def ends_like_sentence(text: str) -> bool:
    """True when ``text`` ends with sentence punctuation, optionally inside closing quotes."""
    return bool(_SENTENCE_END.search(text))


def is_title_like(text: str) -> bool:
    return len(text.split()) <= MAX_TITLE_WORDS and not ends_like_sentence(text)


def boilerplate_reason(text: str, later: list[str]) -> str | None:
    """Why a (whitespace-normalised) line is page boilerplate, or None when it is content.

    ``later`` holds the lines that follow it in the document; a breadcrumb
    trail is recognised because it ends with the page title printed below it.

    - ``furniture``: interface text such as "Exit mobile version", a comment
      form ("Leave a Reply", "Your email address will not be published") or
      an empty comment counter ("No comments yet", "0 Comments");
    - ``date``: a date standing alone ("Wednesday, April 17, 2024");
    - ``breadcrumb``: a navigation trail starting at "Home" and ending with the
      title, or joined by separators such as "»";
    - ``teaser_heading``: a heading such as "More From Author" that introduces
      other articles' titles (``segment_text`` drops the titles after it).
    """
    if _PAGE_FURNITURE.match(text):
        return "furniture"
    if _STANDALONE_DATE.match(text):
        return "date"
    if _TEASER_HEADING.match(text):
        return "teaser_heading"
    if _CRUMB_ROOT.match(text) and not ends_like_sentence(text):
        if _CRUMB_SEPARATOR.search(text) or any(
            len(other) < len(text) and text.endswith(other) for other in later
        ):
            return "breadcrumb"
    return None


def split_paragraphs(raw: str) -> list[tuple[int, str]]:
    """Split a document into ``(line_number, text)`` paragraphs, before any filtering.

    Blank lines separate blocks. Inside a block each line is its own
    paragraph, except that a hard-wrapped line (the previous one does not end
    a sentence and this one starts in lower case) is joined to the previous.
    """
    paragraphs: list[tuple[int, str]] = []
    previous_blank = True
    for lineno, line in enumerate(raw.splitlines(), start=1):
        text = normalize_whitespace(line)
        if not text:
            previous_blank = True
            continue
        if (
            paragraphs
            and not previous_blank
            and text[0].islower()
            and not ends_like_sentence(paragraphs[-1][1])
        ):
            start, before = paragraphs[-1]
            paragraphs[-1] = (start, f"{before} {text}")
        else:
            paragraphs.append((lineno, text))
        previous_blank = False
    return paragraphs


def segment_text(raw: str, doc_id: str) -> list[dict[str, Any]]:
    """Segment one document's text into paragraph records, dropping boilerplate.

    Each record has ``id`` (``<doc_id>-<ordinal>``), ``doc_id``, ``position``
    (1-based among kept paragraphs), ``line`` (where it starts in the file),
    ``kind`` (``headline`` for the title-like lines before the first body
    paragraph, else ``body``), ``text``, ``hash`` and ``n_words``. A paragraph
    repeating an earlier one of the same document (a title printed twice) is
    dropped.
    """
    candidates = split_paragraphs(raw)
    texts = [text for _, text in candidates]
    kept: list[tuple[int, str]] = []
    seen: set[str] = set()
    in_teasers = False
    for index, (lineno, text) in enumerate(candidates):
        reason = boilerplate_reason(text, texts[index + 1 :])
        if reason == "teaser_heading":
            in_teasers = True
            continue
        if in_teasers:
            if reason is None and not is_title_like(text):
                in_teasers = False
            else:
                continue
        if reason is not None or text in seen:
            continue
        seen.add(text)
        kept.append((lineno, text))

    records = []
    in_body = False
    for position, (lineno, text) in enumerate(kept, start=1):
        in_body = in_body or not is_title_like(text)
        records.append(
            {
                "id": f"{doc_id}-{position:03d}",
                "doc_id": doc_id,
                "position": position,
                "line": lineno,
                "kind": "body" if in_body else "headline",
                "text": text,
                "hash": text_hash(text),
                "n_words": len(text.split()),
            }
        )
    return records


def read_document(path: Path) -> str:
    """Read a document as UTF-8 text, refusing UTF-16, NUL bytes, other non-UTF-8 bytes and empty files.

    A NUL byte is never part of text; the error names the line of the first one.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the file ({exc.strerror}); check it exists and is readable") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UserError(f"{path}: UTF-16 text; convert it to UTF-8, e.g. with iconv -f UTF-16 -t UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise UserError(f"{path}:{line}: NUL byte at offset {nul}; remove the NUL bytes "
                        "(if the file is UTF-16 text, convert it to UTF-8, e.g. with iconv -f UTF-16 -t UTF-8)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "convert it to UTF-8, e.g. with iconv"
        ) from None
    if not text.strip():
        raise UserError(f"{path}: the document is empty; add its text or remove the file")
    return text


_SLUG = re.compile(r"[^a-z0-9]+")


def document_id(path: Path) -> str:
    """The id of a document the manifest does not describe: its file name, slugged.

    >>> document_id(Path("news/Op-Ed 12.txt"))
    'op_ed_12'
    """
    return _SLUG.sub("_", path.stem.lower()).strip("_") or "document"


_FIELDS = ("id", "file", "title", "author", "date", "genre")


def _manifest_entry(manifest_path: Path, i: int, entry: object) -> Document:
    """One ``documents`` entry of the manifest as a ``Document``; a malformed entry is a one-line error."""
    where = f"{manifest_path}: documents.{i}"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: expected a mapping with keys {', '.join(_FIELDS)}, found {entry!r}; fix that entry")
    unknown = [str(k) for k in entry if k not in _FIELDS]
    if unknown:
        raise UserError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(_FIELDS)}")
    values = {k: (None if v is None else str(v)) for k, v in entry.items()}
    if not (values.get("file") or "").strip():
        raise UserError(f"{where}.file: missing; give the name of a document file in {manifest_path.parent}")
    if not (values.get("id") or "").strip():
        raise UserError(f"{where}.id: missing; give the document a unique id, e.g. {document_id(Path(values['file']))}")
    return Document(**values)


def load_documents(seeds_dir: Path = paths.SEEDS) -> list[Document]:
    """Every document file in ``seeds_dir``, described by the manifest where it lists the file.

    A file the manifest does not list is still included, with an id derived
    from its file name, so a new document can simply be dropped in.
    """
    manifest_path = seeds_dir / "manifest.yaml"
    listed: dict[str, Document] = {}
    if manifest_path.exists():
        manifest = read_yaml(manifest_path) or {}
        if not isinstance(manifest, dict):
            raise UserError(f"{manifest_path}: expected a mapping with a 'documents' list")
        entries = manifest.get("documents") or []
        if not isinstance(entries, list):
            raise UserError(f"{manifest_path}: documents: expected a list of entries such as '- id: d1' with 'file: d1.txt'")
        for i, entry in enumerate(entries):
            doc = _manifest_entry(manifest_path, i, entry)
            if doc.file in listed:
                raise UserError(f"{manifest_path}: documents.{i}: file {doc.file!r} is listed twice")
            if not (seeds_dir / doc.file).exists():
                raise UserError(f"{manifest_path}: documents.{i}: file {doc.file!r} is not in {seeds_dir}")
            listed[doc.file] = doc
    documents = []
    ids: set[str] = set()
    for path in sorted(p for p in seeds_dir.iterdir() if p.suffix.lower() in DOCUMENT_SUFFIXES):
        doc = listed.get(path.name) or Document(id=document_id(path), file=path.name)
        if doc.id in ids:
            raise UserError(f"{manifest_path}: document id {doc.id!r} is used twice; give each document its own id")
        ids.add(doc.id)
        documents.append(doc)
    if not documents:
        raise UserError(f"{seeds_dir}: no .txt or .md documents found")
    return documents


def build_corpus(seeds_dir: Path = paths.SEEDS, out: Path = paths.PARAGRAPHS, codebook=None) -> list[dict[str, Any]]:
    """Segment every seed document and write the paragraphs as JSON Lines.

    Paragraphs that the annotation app added from other sources (records
    with a ``source``) are kept after the seed paragraphs, unchanged. Every
    document is read and checked before anything is written, and so are
    the annotation and adjudication files beside ``out``
    (``annotations/*.jsonl``, ``adjudications.jsonl``) against the new
    paragraphs, so one bad file leaves the previous ``paragraphs.jsonl``
    untouched and gold never goes stale behind it. ``codebook`` (default:
    the shipped one) gives the labels the records may use.
    """
    records: list[dict[str, Any]] = []
    for doc in load_documents(seeds_dir):
        records.extend(segment_text(read_document(seeds_dir / doc.file), doc.id))
    with locked(out):
        if out.exists():
            seed_docs = {r["doc_id"] for r in records}
            records.extend(r for _, r in read_jsonl(out, torn_tail_ok=True)
                           if r.get("source") and r["doc_id"] not in seed_docs)
        _check_annotations(records, out.parent, seeds_dir, codebook)
        write_jsonl_atomic(out, records)
    return records


def add_to_corpus(incoming: list[dict], out: Path = paths.PARAGRAPHS) -> list[str]:
    """Append new paragraphs (``inputs.iter_paragraphs`` records) to ``out``; return every one's corpus id.

    A paragraph whose text is already in the corpus (same hash) keeps its
    existing id, so giving the same source twice adds nothing. An id that
    exists with different text is refused: document ids come from file
    names, and two different files must not share one. Each added record
    keeps its ``source`` file, so it can be traced as a seed can. The file
    is locked while it is read and appended to, so two apps adding at once
    neither lose a paragraph nor give one id two texts.
    """
    with locked(out):
        corpus = load_paragraphs(out)
        by_hash = {p["hash"]: pid for pid, p in corpus.items()}
        ids, new = [], []
        stamp = now()
        for paragraph in incoming:
            if paragraph["hash"] in by_hash:
                ids.append(by_hash[paragraph["hash"]])
                continue
            if paragraph["id"] in corpus:
                raise UserError(f"{paragraph['source']}: paragraph id {paragraph['id']!r} already exists in "
                                f"{out} with different text; rename the file so its document id is new")
            record = {"id": paragraph["id"], "doc_id": paragraph["doc_id"], "position": paragraph.get("position"),
                      "kind": paragraph["kind"], "text": paragraph["text"], "hash": paragraph["hash"],
                      "n_words": len(paragraph["text"].split()), "source": paragraph["source"], "added": stamp}
            corpus[record["id"]] = record
            by_hash[record["hash"]] = record["id"]
            new.append(record)
            ids.append(record["id"])
        if new:
            append_jsonl(out, *new)
    return ids


def _check_annotations(records: list[dict[str, Any]], data_dir: Path, seeds_dir: Path, codebook) -> None:
    """Read every annotation and adjudication record of ``data_dir`` against ``records``; the first bad line raises."""
    data = paths.DataDir(data_dir)
    annotations, adjudications = data.annotations, data.adjudications
    if not annotation_files(annotations) and not adjudications.exists():
        return
    if codebook is None:
        from experiments.codebook import load_codebook

        codebook = load_codebook()
    derive_gold(codebook, {r["id"]: r for r in records}, annotations, adjudications,
                unknown_id=f"is not in the corpus built from {seeds_dir}; fix that line")
