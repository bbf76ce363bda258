"""From a fetched body to normalised text split into hashed passages.

Pure functions, no I/O: `classify` decides what a body is, `extract` turns it into a
`Document` whose passages are the unit of change detection (see ARCHITECTURE.md,
"Change detection"). Identical passage text gives an identical hash on every machine.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import feedparser
import lxml.etree
import lxml.html
from trafilatura import bare_extraction

__all__ = [
    "PASSAGE_KINDS",
    "Document",
    "Passage",
    "UnsupportedContent",
    "classify",
    "extract",
    "normalize_text",
    "passage_hash",
]

MIN_FRAGMENT = 40
"""Fragments shorter than this are merged with their tiny neighbours of the same kind."""
MAX_PASSAGE = 800
"""Longer passages are cut at sentence boundaries."""
MIN_MAIN_TEXT = 200
"""Below this much main text (when the page holds much more) the whole-body fallback runs."""

PASSAGE_KINDS = ("heading", "paragraph", "list_item", "table_row", "entry", "json", "text")
"""Every value of `Passage.kind`."""

_Fragment = tuple[str, str]  # (kind, normalised text), before merging and cutting


@dataclass(frozen=True)
class Passage:
    """One unit of comparison: a heading, paragraph, list item, table row, feed entry..."""

    index: int
    text: str
    hash: str
    kind: str
    level: int = 0  # a heading's level (1 for h1), 0 when unknown or not a heading

    @property
    def label(self) -> str:
        """The kind as stored with a snapshot: `heading:2` for an h2, else the kind."""
        return f"{self.kind}:{self.level}" if self.level else self.kind


@dataclass(frozen=True)
class Document:
    """The normalised text of a body, its passages in order, and its title."""

    text: str
    text_hash: str
    passages: tuple[Passage, ...]
    title: str | None


class UnsupportedContent(ValueError):
    """The body is not something we can extract text from (image, PDF, invalid JSON...)."""


# --------------------------------------------------------------------------- normalising

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u200e\u200f\u2060\u2061\ufeff\u00ad"))
_LIGHT_PUNCT = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2013": "-",
        "\u2212": "-",
        "\u2015": "\u2014",
    }
)
_MULTI_NL = re.compile(r"\n{3,}")


def _clean(text: str) -> str:
    """NFKC, drop zero-width characters, straighten quotes and hyphen-like dashes."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text)
    return text.translate(_ZERO_WIDTH).translate(_LIGHT_PUNCT)


def normalize_text(text: str) -> str:
    """Normalise one line of text: `_clean` plus whitespace collapsed to single spaces."""
    return " ".join(_clean(text).split())


def _normalize_lines(text: str) -> str:
    """Normalise keeping line breaks: spaces collapsed per line, blank runs squeezed."""
    lines = (" ".join(line.split()) for line in _clean(text).splitlines())
    return _MULTI_NL.sub("\n\n", "\n".join(lines)).strip()


def passage_hash(text: str) -> str:
    """Stable hash of text, insensitive to whitespace, case and Unicode form (blake2b-128)."""
    return _hash_normalized(normalize_text(text))


def _hash_normalized(text: str) -> str:
    """`passage_hash` of text that already went through `_clean`."""
    key = " ".join(text.split()).casefold()
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


# --------------------------------------------------------------------------- classifying

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/vnd.wap.xhtml+xml"})
_FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/x-rss+xml",
        "application/x-atom+xml",
        "text/rss+xml",
    }
)
_JSON_TYPES = frozenset({"application/json", "text/json", "application/x-json"})
_XML_TYPES = frozenset({"text/xml", "application/xml"})
_TEXTUAL_APPLICATION_TYPES = frozenset(
    {
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "application/yaml",
        "application/x-yaml",
        "application/toml",
        "application/csv",
        "application/x-ndjson",
        "application/markdown",
    }
)
_GENERIC_TYPES = frozenset(
    {
        "",
        "*/*",
        "application/octet-stream",
        "binary/octet-stream",
        "application/unknown",
        "unknown/unknown",
        "application/x-unknown-content-type",
    }
)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"RIFF", "a RIFF (WebP/WAV/AVI) file"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"BZh", "bzip2-compressed data"),
    (b"\x7fELF", "an executable"),
    (b"wOFF", "a web font"),
    (b"wOF2", "a web font"),
    (b"OggS", "an Ogg media file"),
    (b"ID3", "an MP3 file"),
    (b"\x00\x00\x01\x00", "an icon"),
)
_FEED_ROOT = re.compile(rb"<(?:[a-z0-9]+:)?(?:rss|feed|rdf)[\s>/]", re.IGNORECASE)
_HTML_MARKERS = re.compile(
    rb"<(?:!doctype\s+html|html|head|body|meta|title|div|p|h[1-6]|table|ul|script|style|link)[\s>/]",
    re.IGNORECASE,
)
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """Split a Content-Type header into (lowercased media type, charset or None)."""
    if not content_type:
        return "", None
    media, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return media.strip().lower(), charset


def _binary_kind(body: bytes) -> str | None:
    """Name the binary format the body starts with, if any (magic bytes or NULs)."""
    for magic, name in _MAGIC:
        if body.startswith(magic):
            return name
    if body[4:12] in (b"ftypisom", b"ftypmp42", b"ftypavif", b"ftypheic"):
        return "an ISO media file"
    if body.startswith(_BOMS[1:]):
        return None  # UTF-16 text has NULs by design
    if b"\x00" in body[:1024]:
        return "binary data"
    return None


def _head(body: bytes, size: int = 2048) -> bytes:
    """The start of the body without BOM and leading whitespace, for sniffing."""
    head = body[:size]
    if head.startswith(_BOMS[0]):
        head = head[3:]
    elif head.startswith(_BOMS[1:]):
        try:
            head = head.decode("utf-16", errors="ignore").encode("utf-8")
        except UnicodeError:
            return b""
    return head.lstrip()


def _looks_like_json(body: bytes) -> bool:
    head = _head(body, 64)
    if not head.startswith((b"{", b"[")):
        return False
    try:
        json.loads(_decode_plain(body, None))
    except ValueError:
        return False
    return True


def _sniff_markup(head: bytes) -> str | None:
    """'feed' or 'html' for markup bodies, None when the body is not markup."""
    if not head.startswith(b"<"):
        return None
    if _FEED_ROOT.search(head) and not re.search(rb"<html[\s>]", head, re.IGNORECASE):
        return "feed"
    if _HTML_MARKERS.search(head):
        return "html"
    return None


def _unsupported(content_type: str | None, why: str) -> UnsupportedContent:
    return UnsupportedContent(f"unsupported content type {content_type or '(none)'!r}: {why}")


def classify(content_type: str | None, body: bytes) -> str:
    """Return "html", "text", "json" or "feed"; raise UnsupportedContent for anything else.

    The header is trusted when it is specific; when it is missing or generic (or XML that
    might be RSS/Atom) the body is sniffed. Binary magic bytes always win over the header.
    """
    media, _ = _media_type(content_type)
    binary = _binary_kind(body)
    if binary:
        raise _unsupported(content_type, f"body is {binary}")
    head = _head(body)
    if media in _HTML_TYPES:
        if head.startswith((b"{", b"[")) and _looks_like_json(body):
            return "json"
        return "html"
    if media in _FEED_TYPES:
        return "feed"
    if media in _JSON_TYPES or media.endswith("+json"):
        return "json"
    if media in _XML_TYPES or media.endswith("+xml"):
        return _sniff_markup(head) or "text"
    if media.startswith("text/") or media in _TEXTUAL_APPLICATION_TYPES:
        return "text"
    if media in _GENERIC_TYPES:
        markup = _sniff_markup(head)
        if markup:
            return markup
        if _looks_like_json(body):
            return "json"
        if _is_text(body):
            return "text"
        raise _unsupported(content_type, "body is not recognisable text")
    raise _unsupported(content_type, "not HTML, text, JSON or an RSS/Atom feed")


def _is_text(body: bytes) -> bool:
    """True when the start of the body is UTF-8 (or a declared BOM text) with few controls."""
    sample = body[:4096]
    if sample.startswith(_BOMS):
        return True
    text = sample.decode("utf-8", errors="replace")
    if len(sample) == 4096:
        text = text[:-3]  # a multi-byte character cut at the sample's end
    if not text:
        return True
    bad = sum(1 for ch in text if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\t\n\r\f"))
    return bad / len(text) < 0.02


# --------------------------------------------------------------------------- decoding

_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+\-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]+encoding\s*=\s*["']([A-Za-z0-9_.+\-]+)""", re.I)
_WINDOWS_1252_ALIASES = frozenset({"iso8859-1", "latin-1", "ascii", "cp819"})


def _codec(label: str | None) -> str | None:
    """A Python codec name for a charset label, None when unknown (latin-1 means cp1252)."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    return "cp1252" if name in _WINDOWS_1252_ALIASES else name


def _decode_with(body: bytes, codec: str) -> str:
    text = body.decode(codec, errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def _decode_plain(body: bytes, charset: str | None) -> str:
    """Decode by BOM, then the declared charset, then UTF-8, then a guess."""
    if body.startswith(_BOMS[0]):
        return body[3:].decode("utf-8", errors="replace")
    if body.startswith(_BOMS[1:]):
        return _decode_with(body, "utf-16")
    codec = _codec(charset)
    if codec:
        return _decode_with(body, codec)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - optional
        return body.decode("utf-8", errors="replace")
    best = from_bytes(body[:65536]).best()
    codec = _codec(best.encoding) if best is not None else None
    return _decode_with(body, codec or "utf-8")


def _decode_markup(body: bytes, charset: str | None) -> str:
    """Decode HTML/XML: BOM, header charset, then the meta charset or XML declaration."""
    if charset is None and not body.startswith(_BOMS):
        head = body[:4096]
        match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
        if match:
            declared = match.group(1).decode("ascii", errors="ignore")
            if _codec(declared) not in (None, "utf-16", "utf-16-le", "utf-16-be"):
                charset = declared
    return _decode_plain(body, charset)


# --------------------------------------------------------------------------- passages


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?;:])\s+(?=\S)", text) if s]


def _cut(text: str, limit: int = MAX_PASSAGE) -> list[str]:
    """Cut text longer than limit at sentence boundaries (then at spaces, then hard)."""
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for sentence in _sentences(text):
        while len(sentence) > limit:
            cut = sentence.rfind(" ", limit // 2, limit)
            cut = cut if cut > 0 else limit
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > limit:
            chunks.append(current)
            current = piece
        else:
            current = f"{current} {piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


_MERGEABLE = frozenset({"paragraph", "list_item", "text"})


def _build_passages(fragments: list[_Fragment]) -> tuple[Passage, ...]:
    """Cut long fragments, merge runs of tiny same-kind ones, number and hash the result."""
    pieces: list[_Fragment] = []
    for kind, text in fragments:
        if kind in ("json", "entry"):
            pieces.append((kind, text))
        else:
            pieces.extend((kind, chunk) for chunk in _cut(text))
    merged: list[_Fragment] = []
    open_run = False  # whether merged[-1] is a run of tiny fragments that may grow
    for kind, text in pieces:
        tiny = kind in _MERGEABLE and len(text) < MIN_FRAGMENT
        if (
            tiny
            and open_run
            and merged[-1][0] == kind
            and len(merged[-1][1]) + 1 + len(text) <= MAX_PASSAGE
        ):
            merged[-1] = (kind, f"{merged[-1][1]}\n{text}")
            continue
        merged.append((kind, text))
        open_run = tiny
    return tuple(
        Passage(index=i, text=text, hash=_hash_normalized(text), kind=kind.split(":")[0],
                level=int(kind.split(":")[1]) if ":" in kind else 0)
        for i, (kind, text) in enumerate(merged)
    )  # fmt: skip


def _document(fragments: list[_Fragment], title: str | None, text: str | None = None) -> Document:
    passages = _build_passages(fragments)
    whole = text if text is not None else "\n\n".join(p.text for p in passages)
    return Document(text=whole, text_hash=_hash_normalized(whole), passages=passages, title=title)


# --------------------------------------------------------------------------- tree walking

# Roles of elements for the block walker; tags not listed are inline.
_HEADING, _ITEM, _ROW, _CELL, _BLOCK, _PRE, _CODE, _BREAK, _SKIP = (
    "heading",
    "item",
    "row",
    "cell",
    "block",
    "pre",  # preformatted: one fragment per line
    "code",  # preformatted when multi-line outside a paragraph, else inline
    "break",
    "skip",
)
_HTML_ROLES: dict[str, str] = {
    **dict.fromkeys(("h1", "h2", "h3", "h4", "h5", "h6"), _HEADING),
    "li": _ITEM,
    "tr": _ROW,
    "td": _CELL,
    "th": _CELL,
    "br": _BREAK,
    "pre": _PRE,
    **dict.fromkeys(
        (
            "html body main article section div p blockquote figure figcaption address "
            "ul ol dl dt dd table thead tbody tfoot caption header footer nav aside form "
            "fieldset legend details summary center hgroup hr menu dialog"
        ).split(),
        _BLOCK,
    ),
    **dict.fromkeys(
        (
            "head script style noscript template svg math iframe object embed canvas video "
            "audio picture img button select option input textarea map"
        ).split(),
        _SKIP,
    ),
}
# trafilatura's XML output: head, p, list/item, table/row/cell, quote, code, lb, hi, ref...
_TRAFILATURA_ROLES: dict[str, str] = {
    "head": _HEADING,
    "item": _ITEM,
    "row": _ROW,
    "cell": _CELL,
    "lb": _BREAK,
    "code": _CODE,
    "graphic": _SKIP,
    "comments": _SKIP,
    **dict.fromkeys("doc main body div p list table quote".split(), _BLOCK),
}
_MAX_DEPTH = 250


def _flatten(el: Any, roles: dict[str, str], depth: int = 0) -> str:
    """All text under el, with a space wherever a block or line break separates it."""
    if depth > _MAX_DEPTH:
        return " ".join(el.itertext())
    parts: list[str] = [el.text or ""]
    for child in el:
        tag = child.tag
        if isinstance(tag, str):
            role = roles.get(tag)
            if role != _SKIP:
                if role is None or role == _CODE:
                    parts.append(_flatten(child, roles, depth + 1))
                else:
                    parts.extend((" ", _flatten(child, roles, depth + 1), " "))
        parts.append(child.tail or "")
    return "".join(parts)


_INLINE_PARENTS = frozenset({"p", "head", "cell", "hi", "ref"})


def _is_multiline(el: Any) -> bool:
    return "\n" in "".join(el.itertext()).strip()


class _Walker:
    """Turn a tree into (kind, text) fragments: one per heading, paragraph, item, row."""

    def __init__(self, roles: dict[str, str]) -> None:
        self.roles = roles
        self.fragments: list[_Fragment] = []

    def emit(self, kind: str, text: str) -> None:
        text = normalize_text(text)
        if text:
            self.fragments.append((kind, text))

    def row(self, el: Any) -> None:
        cells = [
            normalize_text(_flatten(c, self.roles))
            for c in el
            if isinstance(c.tag, str) and self.roles.get(c.tag) == _CELL
        ]
        if any(cells):
            self.emit("table_row", " | ".join(cells))

    def walk(self, el: Any, kind: str = "paragraph", depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            self.emit(kind, _flatten(el, self.roles))
            return
        buf: list[str] = [el.text or ""]
        for child in el:
            tag = child.tag
            role = self.roles.get(tag) if isinstance(tag, str) else _SKIP
            if role == _CODE:
                role = _PRE if el.tag not in _INLINE_PARENTS and _is_multiline(child) else None
            if role is None:
                buf.append(_flatten(child, self.roles))
            elif role != _SKIP:
                self.emit(kind, "".join(buf))
                buf = []
                if role == _HEADING:
                    self.emit(_heading_kind(child), _flatten(child, self.roles))
                elif role == _ROW:
                    self.row(child)
                elif role == _ITEM:
                    self.walk(child, "list_item", depth + 1)
                elif role == _PRE:
                    for line in _flatten(child, self.roles).splitlines():
                        self.emit(kind, line)
                elif role != _BREAK:
                    self.walk(child, kind, depth + 1)
            buf.append(child.tail or "")
        self.emit(kind, "".join(buf))


def _heading_kind(el: Any) -> str:
    """`heading:N` for an hN (trafilatura keeps the level as rend="hN"), else `heading`."""
    name = el.get("rend") or el.tag
    if isinstance(name, str) and len(name) == 2 and name[0] == "h" and name[1] in "123456":
        return f"heading:{name[1]}"
    return "heading"


def _fragments(el: Any, roles: dict[str, str]) -> list[_Fragment]:
    walker = _Walker(roles)
    role = roles.get(el.tag) if isinstance(el.tag, str) else None
    if role == _HEADING:
        walker.emit(_heading_kind(el), _flatten(el, roles))
    elif role == _ROW:
        walker.row(el)
    else:
        walker.walk(el, "list_item" if role == _ITEM else "paragraph")
    return walker.fragments


# --------------------------------------------------------------------------- HTML

_PARSERS = threading.local()


def _html_parser() -> Any:
    """This thread's lxml HTML parser (parsers must not be shared between threads)."""
    parser = getattr(_PARSERS, "html", None)
    if parser is None:
        parser = _PARSERS.html = lxml.html.HTMLParser(
            collect_ids=False, default_doctype=False, remove_comments=True, remove_pis=True
        )
    return parser


_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
# Whole class/id tokens (split on spaces, '-' and '_') that mark ads and consent banners.
_BOILERPLATE_TOKENS = frozenset(
    (
        "ad ads advert adverts advertisement advertisements advertising adsbygoogle adslot "
        "adunit adbox adsense sponsored cookie cookies cookiebar cookiebanner consent gdpr"
    ).split()
)
_TOKEN_SPLIT = re.compile(r"[\s_\-]+")
_MAX_BOILERPLATE_TEXT = 1500
_MAIN_REGIONS = "//main | //article | //*[@role='main']"
_CHROME = ("nav", "header", "footer", "aside")
_FALLBACK_DROP = ("nav", "footer", "aside")


def _parse_html(text: str) -> Any:
    """Parse decoded HTML into an lxml tree (None when there is nothing to parse)."""
    text = _XML_DECLARATION.sub("", text, count=1)
    if not text.strip():
        return None
    try:
        return lxml.html.document_fromstring(text, parser=_html_parser())
    except (lxml.etree.ParserError, ValueError):
        return None


def _is_boilerplate(el: Any) -> bool:
    if el.tag in ("main", "article"):
        return False
    attrs = f"{el.get('class', '')} {el.get('id', '')}".lower()
    if not _BOILERPLATE_TOKENS.intersection(_TOKEN_SPLIT.split(attrs)):
        return False
    return len(el.text_content()) <= _MAX_BOILERPLATE_TEXT


def _prune_boilerplate(tree: Any) -> None:
    """Drop ad and cookie-consent blocks, recognised by whole class/id tokens."""
    for el in tree.xpath("//body//*[@class or @id]"):
        if el.getparent() is not None and _is_boilerplate(el):
            el.drop_tree()


def _in_chrome(el: Any) -> bool:
    return any(a.tag in _CHROME for a in el.iterancestors())


def _unwrap_content_links(tree: Any) -> None:
    """Replace links by their text in data tables and in lists of the main region.

    trafilatura drops link-dense tables and lists as navigation; on the pages we watch
    these are often the content itself (release tables, post indexes, changelogs).
    """
    links: list[Any] = []
    for region in tree.xpath(_MAIN_REGIONS):
        links.extend(region.xpath(".//li//a | .//td//a | .//th//a"))
    for table in tree.xpath("//table[not(.//table)]"):
        rows = table.xpath(".//tr")
        if len(rows) >= 2 and not _in_chrome(table):
            links.extend(table.xpath(".//td//a | .//th//a"))
    for link in links:
        if link.getparent() is not None:
            link.drop_tag()


def _flatten_listing(tree: Any) -> None:
    """Turn sibling `<article>` elements into sections.

    trafilatura takes the first `<article>` as the main content; when it has sibling
    articles the page is a listing (advisories, posts, releases) and the content is all
    of them.
    """
    first = tree.find(".//article")
    parent = first.getparent() if first is not None else None
    if parent is None:
        return
    siblings = [el for el in parent if el.tag == "article"]
    if len(siblings) >= 2:
        for el in siblings:
            el.tag = "section"


def _mark_preformatted(tree: Any) -> None:
    """Wrap `<pre>` content in `<code>` so trafilatura keeps it as a code block, lines intact."""
    for pre in tree.xpath("//pre[not(.//code)]"):
        code = lxml.html.Element("code")
        code.text, pre.text = pre.text, None
        for child in list(pre):
            code.append(child)
        pre.append(code)


def _title(tree: Any) -> str | None:
    for path in ("//head/title", "//meta[@property='og:title']/@content", "//h1"):
        found = tree.xpath(path)
        if found:
            node = found[0]
            raw = node if isinstance(node, str) else node.text_content()
            title = normalize_text(raw)
            if title:
                return title
    return None


# JSON-LD: facts a product or event page may not show, e.g. price and availability.


_JSONLD_CONTAINERS = ("@graph", "mainEntity", "hasVariant", "itemListElement", "item")


def _jsonld_nodes(data: Any, depth: int = 0) -> Iterator[dict[str, Any]]:
    """Every node of a JSON-LD document, following graphs, lists and variants."""
    if depth > 8:
        return
    if isinstance(data, list):
        for item in data:
            yield from _jsonld_nodes(item, depth + 1)
    elif isinstance(data, dict):
        yield data
        for key in _JSONLD_CONTAINERS:
            if key in data:
                yield from _jsonld_nodes(data[key], depth + 1)


def _types(node: dict[str, Any]) -> list[str]:
    value = node.get("@type")
    values = value if isinstance(value, list) else [value]
    return [v.rsplit("/", 1)[-1] for v in values if isinstance(v, str)]


def _scalar(value: Any) -> str | None:
    """A readable scalar from a JSON-LD value (names of objects, URL tails of enums)."""
    if isinstance(value, list):
        found = [s for s in (_scalar(v) for v in value) if s]
        return ", ".join(found) or None
    if isinstance(value, dict):
        return _scalar(value.get("name") or value.get("@id"))
    if value is None or isinstance(value, bool):
        return None
    text = normalize_text(str(value))
    if text.startswith(("http://schema.org/", "https://schema.org/")):
        text = text.rsplit("/", 1)[-1]
    return text or None


def _offer_facts(offers: Any) -> list[str]:
    facts: list[str] = []
    for offer in offers if isinstance(offers, list) else [offers]:
        if not isinstance(offer, dict):
            continue
        spec = offer.get("priceSpecification")
        spec = spec[0] if isinstance(spec, list) and spec else spec
        spec = spec if isinstance(spec, dict) else {}
        currency = _scalar(offer.get("priceCurrency") or spec.get("priceCurrency"))
        price = _scalar(offer.get("price", spec.get("price")))
        low, high = _scalar(offer.get("lowPrice")), _scalar(offer.get("highPrice"))
        if price is None and (low or high):
            price = f"{low or '?'}-{high or '?'}" if low != high else low
        parts = []
        if price is not None:
            parts.append(f"price: {price}{f' {currency}' if currency else ''}")
        for key in ("availability", "itemCondition", "validFrom", "priceValidUntil"):
            value = _scalar(offer.get(key))
            if value:
                parts.append(f"{key}: {value}")
        if parts:
            facts.append(" | ".join(parts))
    return facts


_ENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "Event": ("startDate", "endDate", "eventStatus", "eventAttendanceMode", "location"),
    "Product": ("brand", "sku", "gtin13", "mpn", "model"),
}
_PRODUCT_TYPES = frozenset({"Product", "ProductGroup", "ProductModel", "Book", "Vehicle"})


def _entity_fact(node: dict[str, Any]) -> str | None:
    types = _types(node)
    if any(t in _PRODUCT_TYPES for t in types):
        label, keys = "Product", _ENTITY_KEYS["Product"]
    elif any(t.endswith("Event") for t in types):
        label, keys = "Event", _ENTITY_KEYS["Event"]
    elif "Offer" in types or "AggregateOffer" in types:
        label, keys = "Offer", ()
    else:
        return None
    parts = [f"{label}: {_scalar(node.get('name')) or '(unnamed)'}"]
    parts.extend(f"{key}: {value}" for key in keys if (value := _scalar(node.get(key))))
    offers = _offer_facts(node if label == "Offer" else node.get("offers"))
    if label == "Offer" and not offers:
        return None
    parts.extend(offers)
    return " | ".join(parts)


def _jsonld_facts(tree: Any) -> list[_Fragment]:
    """Product, offer and event facts from `<script type="application/ld+json">` blocks."""
    facts: list[_Fragment] = []
    for script in tree.xpath("//script[contains(@type, 'ld+json')]"):
        raw = (script.text or "").strip()
        raw = raw.removeprefix("<!--").removesuffix("-->").strip()
        if not raw:
            continue
        try:
            data = json.loads(raw, strict=False)
        except ValueError:
            continue
        for node in _jsonld_nodes(data):
            fact = _entity_fact(node)
            if fact and ("json", fact) not in facts:
                facts.append(("json", fact))
    return facts


def _fallback_fragments(tree: Any) -> list[_Fragment]:
    """Whole-body text, one fragment per block, without page chrome or scripts."""
    lxml.etree.strip_elements(
        tree,
        "script",
        "style",
        "noscript",
        "template",
        "svg",
        "iframe",
        *_FALLBACK_DROP,
        with_tail=False,
    )
    body = tree.find("body")
    return _fragments(body if body is not None else tree, _HTML_ROLES)


def _text_size(fragments: list[_Fragment]) -> int:
    return sum(len(text) for _, text in fragments)


# Fast mode skips the readability/justext comparison (half the time, same result on our
# pages); recall keeps tables and lists that balanced mode drops; output stays an XML tree.
_TRAFILATURA_OPTIONS: dict[str, Any] = {
    "fast": True,
    "favor_recall": True,
    "include_comments": False,
    "include_tables": True,
    "include_formatting": False,
    "include_links": False,
    "include_images": False,
    "deduplicate": False,
    "with_metadata": False,
    "output_format": "xml",
}


def _extract_html(text: str, url: str | None) -> Document:
    """Main text by trafilatura, with our whole-body walk when it finds (almost) nothing."""
    tree = _parse_html(text)
    if tree is None:
        return _document([], None)
    title = _title(tree)
    facts = _jsonld_facts(tree)
    _prune_boilerplate(tree)
    _unwrap_content_links(tree)
    _flatten_listing(tree)
    _mark_preformatted(tree)
    try:
        result = bare_extraction(tree, url=url, **_TRAFILATURA_OPTIONS)
    except Exception:  # a trafilatura bug on odd markup must not lose the page
        result = None
    body = getattr(result, "body", None) if result is not None else None
    main = _fragments(body, _TRAFILATURA_ROLES) if body is not None else []
    flattened = body is not None and _is_flat_dump(body)
    if flattened or _text_size(main) < MIN_MAIN_TEXT:
        whole = _fallback_fragments(tree)
        if _text_size(whole) > (0 if flattened else max(2 * _text_size(main), MIN_MAIN_TEXT)):
            main = whole
    return _document(facts + main, title)


def _is_flat_dump(body: Any) -> bool:
    """True for trafilatura's baseline rescue: bare paragraphs of newline-joined page text.

    trafilatura falls back to it when its main extractor finds little; the dump loses
    the block structure that our own whole-body fallback keeps.
    """
    children = list(body)
    return bool(children) and all(
        child.tag == "p" and len(child) == 0 and "\n" in (child.text or "") for child in children
    )


# --------------------------------------------------------------------------- text, JSON, feeds

_SETEXT_UNDERLINE = re.compile(r"^([=\-~^*+#`:.'\"_])\1{2,}$")
_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*$")
_BULLET = re.compile(r"^(?:[-*+\u2022]|\d{1,3}[.)])\s+")


def _flush(fragments: list[_Fragment], lines: list[str], kind: str = "text") -> None:
    joined = normalize_text(" ".join(lines))
    if joined:
        fragments.append((kind, joined))
    lines.clear()


def _text_fragments(text: str) -> list[_Fragment]:
    """Paragraphs split on blank lines; Markdown/RST headings and bullets split out."""
    fragments: list[_Fragment] = []
    for block in re.split(r"\n\s*\n", text):
        current: list[str] = []
        for line in (raw.strip() for raw in block.splitlines()):
            if not line:
                continue
            if _SETEXT_UNDERLINE.match(line):
                if len(current) == 1:  # the line above is a heading
                    _flush(fragments, current, "heading")
                continue
            heading = _MD_HEADING.match(line)
            if heading:
                _flush(fragments, current)
                _flush(fragments, [heading.group(2)], f"heading:{len(heading.group(1))}")
            elif _BULLET.match(line):
                _flush(fragments, current)
                current.append(line)
            else:
                current.append(line)
        _flush(fragments, current)
    return fragments


def _extract_text(text: str) -> Document:
    return _document(_text_fragments(text), None)


def _json_passages(key_path: list[str], value: Any, depth: int) -> Iterator[str]:
    """Pretty-printed JSON per top-level key (or element), split further when too large."""

    def wrap(inner: Any) -> Any:
        for key in reversed(key_path):
            inner = [inner] if key == "[]" else {key: inner}
        return inner

    text = _dump(wrap(value))
    if len(text) <= MAX_PASSAGE or depth >= 3 or not isinstance(value, dict | list) or not value:
        yield text
        return
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _json_passages([*key_path, key], value[key], depth + 1)
    else:
        for item in value:
            yield from _json_passages([*key_path, "[]"], item, depth + 1)


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _extract_json(text: str) -> Document:
    if not text.strip():
        return _document([], None)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UnsupportedContent(f"invalid JSON body: {exc}") from exc
    data = _normalize_json(data)
    pretty = _dump(data)
    if isinstance(data, dict) and data:
        chunks = [c for key in sorted(data) for c in _json_passages([key], data[key], 1)]
    elif isinstance(data, list) and data:
        chunks = [c for item in data for c in _json_passages([], item, 1)]
    else:
        chunks = [pretty]
    return _document([("json", c) for c in chunks], None, text=pretty)


def _normalize_json(value: Any) -> Any:
    """Apply the text normalisation to every string (keys included) of a JSON value."""
    if isinstance(value, str):
        return _normalize_lines(value)
    if isinstance(value, list):
        return [_normalize_json(v) for v in value]
    if isinstance(value, dict):
        return {_normalize_lines(k): _normalize_json(v) for k, v in value.items()}
    return value


_MAX_SUMMARY = 600


def _html_to_text(fragment: str) -> str:
    """Visible text of an HTML fragment (feed summaries), blocks separated by spaces."""
    if "<" not in fragment and "&" not in fragment:
        return normalize_text(fragment)
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div", parser=_html_parser())
    except (lxml.etree.ParserError, ValueError):
        return normalize_text(re.sub(r"<[^>]+>", " ", fragment))
    return normalize_text(_flatten(root, _HTML_ROLES))


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip() + " ..."


def _entry_date(entry: Any) -> str | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if parsed:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed)
    for key in ("published", "updated", "created"):
        if entry.get(key):
            return normalize_text(entry[key])
    return None


def _entry_text(entry: Any) -> str:
    title = _html_to_text(entry.get("title") or "")
    summary_html = entry.get("summary") or ""
    if not summary_html and entry.get("content"):
        summary_html = entry["content"][0].get("value") or ""
    summary = _shorten(_html_to_text(summary_html), _MAX_SUMMARY)
    line = " — ".join(part for part in (title, _entry_date(entry), summary) if part)
    link = normalize_text(entry.get("link") or "")
    return f"{line}\n{link}" if line and link else line or link


def _extract_feed(body: bytes, content_type: str | None) -> Document:
    headers = {"content-type": content_type} if content_type else None
    parsed = feedparser.parse(body, response_headers=headers)
    fragments: list[_Fragment] = []
    for entry in parsed.entries:
        text = _entry_text(entry)
        if text:
            fragments.append(("entry", text))
    title = _html_to_text(parsed.feed.get("title") or "") or None
    return _document(fragments, title)


# --------------------------------------------------------------------------- entry point


def extract(body: bytes, content_type: str | None, *, url: str | None = None) -> Document:
    """Extract normalised text and passages from a fetched body.

    Raises UnsupportedContent for bodies that are not HTML, text, JSON or RSS/Atom, and
    for invalid JSON.
    """
    kind = classify(content_type, body)
    if not body.strip():
        return _document([], None)
    if kind == "feed":
        return _extract_feed(body, content_type)
    _, charset = _media_type(content_type)
    if kind == "json":
        return _extract_json(_decode_plain(body, charset))
    text = _decode_markup(body, charset)
    return _extract_html(text, url) if kind == "html" else _extract_text(text)
