"""From fetched bodies to normalised, hashed passages (torale.content.extract)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from torale.content.extract import (
    PASSAGE_KINDS,
    Document,
    UnsupportedContent,
    classify,
    extract,
    passage_hash,
)

DATA = Path(__file__).parent / "data" / "extract"
CHANGEBENCH = Path("/work/shared/changebench/dev/cases")
HTML = "text/html; charset=utf-8"


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


def page(body_html: str, title: str = "Test page") -> bytes:
    """A small but complete HTML page around the given main content."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><nav><a href='/'>Home</a><a href='/about'>About</a></nav>"
        f"<main>{body_html}</main><footer>&copy; 2024 Example</footer></body></html>"
    ).encode()


def texts(doc: Document, kind: str | None = None) -> list[str]:
    return [p.text for p in doc.passages if kind is None or p.kind == kind]


def assert_well_formed(doc: Document) -> None:
    assert [p.index for p in doc.passages] == list(range(len(doc.passages)))
    assert doc.text == "\n\n".join(p.text for p in doc.passages)
    for p in doc.passages:
        assert p.kind in PASSAGE_KINDS
        assert p.text and p.text == p.text.strip()
        assert p.hash == passage_hash(p.text)
    assert doc.text_hash == passage_hash(doc.text)


# --------------------------------------------------------------------------- structure


def test_headings_lists_and_tables_become_separate_passages() -> None:
    doc = extract(fixture("changelog.html"), HTML)

    assert_well_formed(doc)
    assert doc.title == "Changelog | Widget"
    assert texts(doc, "heading") == [
        "Changelog",
        "Version 2.1.0",
        "Version 2.0.0",
        "Support schedule",
    ]
    assert "Released 2024-05-02" in texts(doc, "paragraph")
    items = texts(doc, "list_item")
    assert "Drop support for Python 3.8, which reached its end of life in October 2024." in items
    assert "Rename the timeout argument to read_timeout for clarity." in items
    assert texts(doc, "table_row") == [
        "Branch | Status | First release | End of life",
        "2.x | bugfix | 2024-01-15 | 2026-01",
        "1.x | security | 2022-03-01 | 2025-03",
    ]
    # navigation, footer, scripts and styles are not content
    assert "Docs" not in doc.text and "Privacy" not in doc.text
    assert "analytics" not in doc.text and "font-family" not in doc.text


def test_order_is_preserved() -> None:
    doc = extract(fixture("changelog.html"), HTML)
    order = texts(doc)
    assert order.index("Version 2.1.0") < order.index("Released 2024-05-02")
    assert order.index("Released 2024-05-02") < order.index("Version 2.0.0")
    assert order.index("Version 2.0.0") < order.index("Support schedule")


def test_tiny_fragments_merge_but_headings_and_rows_stay_alone() -> None:
    doc = extract(
        page(
            "<h1>Specs</h1><p>An introduction that is comfortably longer than forty characters.</p>"
            "<ul><li>Weight: 280 g</li><li>Drop: 6 mm</li><li>Colour: red</li></ul>"
            "<h2>Sizes</h2><table><tr><td>EU</td><td>42</td></tr><tr><td>US</td><td>9</td></tr>"
            "</table>"
        ),
        HTML,
    )
    assert "Weight: 280 g\nDrop: 6 mm\nColour: red" in texts(doc, "list_item")
    assert texts(doc, "heading") == ["Specs", "Sizes"]
    assert texts(doc, "table_row") == ["EU | 42", "US | 9"]


def test_long_paragraphs_are_cut_at_sentence_boundaries() -> None:
    sentence = "The council met again on Tuesday to discuss the bridge budget in detail. "
    doc = extract(page(f"<h1>Minutes</h1><p>{sentence * 30}</p>"), HTML)
    paragraphs = texts(doc, "paragraph")
    assert len(paragraphs) >= 3
    assert all(len(p) <= 800 for p in paragraphs)
    assert all(p.endswith("in detail.") for p in paragraphs)
    assert " ".join(paragraphs) == (sentence * 30).strip()


# --------------------------------------------------------------------------- hashing


def test_hashes_are_stable_and_ignore_whitespace_case_and_unicode_form() -> None:
    # pinned: identical text must hash identically on every machine and in every release
    assert passage_hash("Hello   World") == "e9a804b2e527fd3601d2ffc0bb023cd6"
    assert passage_hash("hello world") == passage_hash("  HELLO\n\tworld ")
    assert passage_hash("Caf\u00e9") == passage_hash("Cafe\u0301")  # NFC vs NFD
    assert passage_hash("price\u00a0\u200b19") == passage_hash("price 19")
    assert passage_hash("\u201cquoted\u201d \u2013 text") == passage_hash('"quoted" - text')
    assert passage_hash("hello world") != passage_hash("hello word")


def test_same_content_with_different_whitespace_and_case_gives_same_passage_hashes() -> None:
    a = extract(
        page("<h1>Release notes</h1><p>Version 2.0 is out now, with faster uploads.</p>"), HTML
    )
    b = extract(
        page(
            "<h1>RELEASE   notes</h1>\n<p>\n  version 2.0 is out   now, with faster uploads.\n</p>"
        ),
        HTML,
    )
    assert [p.hash for p in a.passages] == [p.hash for p in b.passages]
    assert a.text_hash == b.text_hash


def test_one_word_change_changes_exactly_one_passage_hash() -> None:
    before = fixture("changelog.html")
    after = before.replace(b"idle connections are closed", b"idle connections are dropped")
    assert after != before
    a, b = extract(before, HTML), extract(after, HTML)

    assert len(a.passages) == len(b.passages)
    changed = [
        (x.text, y.text) for x, y in zip(a.passages, b.passages, strict=True) if x.hash != y.hash
    ]
    assert len(changed) == 1
    assert "dropped" in changed[0][1]
    assert a.text_hash != b.text_hash


def test_changing_footer_sidebar_ads_and_banners_leave_main_passages_unchanged() -> None:
    a = extract(fixture("news_a.html"), HTML)
    b = extract(fixture("news_b.html"), HTML)

    assert [p.hash for p in a.passages] == [p.hash for p in b.passages]
    assert a.text_hash == b.text_hash
    assert "Council approves new bridge budget" in texts(a, "heading")
    assert any("hearing on the final design" in t for t in texts(a))
    for noise in ("Page generated", "Trending", "Advertisement", "cookies", "reading this"):
        assert noise not in a.text


# --------------------------------------------------------------------------- JSON-LD


def test_jsonld_product_facts_become_a_passage() -> None:
    doc = extract(fixture("product_jsonld.html"), HTML)
    facts = texts(doc, "json")
    assert facts == [
        "Product: Trail Runner 3 | brand: Summit | sku: TR3-42 | price: 129.99 EUR"
        " | availability: OutOfStock"
    ]
    assert "Drop: 6 mm" in doc.text


def test_jsonld_price_change_changes_the_facts_passage() -> None:
    before = fixture("product_jsonld.html")
    after = before.replace(b'"129.99"', b'"99.00"').replace(b"OutOfStock", b"InStock")
    old = {p.hash for p in extract(before, HTML).passages}
    new = [p for p in extract(after, HTML).passages if p.hash not in old]
    assert [p.text for p in new] == [
        "Product: Trail Runner 3 | brand: Summit | sku: TR3-42 | price: 99.00 EUR"
        " | availability: InStock"
    ]


def test_jsonld_offers_lists_and_events() -> None:
    ld = {
        "@context": "https://schema.org",
        "@type": "Event",
        "name": "Write the Docs Portland",
        "startDate": "2024-04-14",
        "location": {"@type": "Place", "name": "Portland, Oregon"},
        "offers": [
            {"@type": "Offer", "price": 200, "priceCurrency": "USD", "availability": "SoldOut"},
            {"@type": "AggregateOffer", "lowPrice": 25, "highPrice": 125, "priceCurrency": "USD"},
        ],
    }
    body = page(
        f"<script type='application/ld+json'>{json.dumps(ld)}</script>"
        "<h1>Portland 2024</h1><p>A conference about software documentation and community.</p>"
    )
    assert texts(extract(body, HTML), "json") == [
        "Event: Write the Docs Portland | startDate: 2024-04-14 | location: Portland, Oregon"
        " | price: 200 USD | availability: SoldOut | price: 25-125 USD"
    ]


def test_broken_jsonld_is_ignored() -> None:
    body = page(
        "<script type='application/ld+json'>{not json</script><h1>Hello</h1>"
        "<p>The page itself still has perfectly good content to extract here.</p>"
    )
    doc = extract(body, HTML)
    assert texts(doc, "json") == []
    assert "Hello" in texts(doc, "heading")


# --------------------------------------------------------------------------- other formats


def test_json_is_pretty_printed_with_stable_key_order() -> None:
    a = extract(b'{"b": 1, "a": {"y": [1, 2], "x": "caf\\u00e9"}}', "application/json")
    b = extract(b'{"a": {"x": "caf\xc3\xa9", "y": [1, 2]},\n "b": 1}', "application/json")

    assert a.text_hash == b.text_hash
    assert a.text == json.dumps(
        {"a": {"x": "café", "y": [1, 2]}, "b": 1}, indent=2, sort_keys=True, ensure_ascii=False
    )
    assert [p.kind for p in a.passages] == ["json", "json"]
    assert [json.loads(p.text) for p in a.passages] == [{"a": {"x": "café", "y": [1, 2]}}, {"b": 1}]


def test_json_array_gives_one_passage_per_element() -> None:
    doc = extract(
        b'[{"model": "gpt-4o", "input": 2.5}, {"model": "o3", "input": 2}]', "application/json"
    )
    assert [json.loads(p.text) for p in doc.passages] == [
        {"input": 2.5, "model": "gpt-4o"},
        {"input": 2, "model": "o3"},
    ]


def test_large_json_values_are_split_further() -> None:
    models = [{"id": f"model-{i}", "input": i / 10, "notes": "x" * 40} for i in range(40)]
    doc = extract(
        json.dumps({"models": models, "updated": "2024-05-01"}).encode(), "application/json"
    )
    assert len(doc.passages) == 41
    assert all(len(p.text) <= 800 for p in doc.passages)
    assert json.loads(doc.passages[3].text) == {"models": [models[3]]}


def test_invalid_json_raises_unsupported_content() -> None:
    with pytest.raises(UnsupportedContent, match="invalid JSON"):
        extract(b'{"a": 1,', "application/json")


def test_rss_feed_gives_one_passage_per_entry() -> None:
    doc = extract(fixture("feed_rss.xml"), "application/rss+xml")
    assert doc.title == "Widget Releases"
    assert [p.kind for p in doc.passages] == ["entry", "entry"]
    assert doc.passages[0].text == (
        "Widget 2.1.0 — 2024-05-02T10:00:00Z — Adds streaming uploads and fixes a crash.\n"
        "https://widget.example/releases/2.1.0"
    )


def test_atom_feed_served_as_generic_xml() -> None:
    body = fixture("feed_atom.xml")
    assert classify("application/xml", body) == "feed"
    doc = extract(body, "application/xml")
    assert doc.title == "Rust Blog"
    assert len(doc.passages) == 2
    first = doc.passages[0].text
    assert first.startswith("Announcing Rust 1.77.0 — 2024-03-21T00:00:00Z — The Rust team")
    assert "C-string literals" in first and "<" not in first
    assert first.endswith("https://blog.rust-lang.example/2024/03/21/Rust-1.77.0.html")


def test_plain_text_paragraphs_headings_and_bullets() -> None:
    body = (
        b"Changelog\n=========\n\n"
        b"## 2.1.0 (2024-05-02)\n\n"
        b"- Add streaming uploads of arbitrarily large files over HTTP/2.\n"
        b"- Fix a crash when the configuration file is empty or has only\n"
        b"  comments in it.\n\n"
        b"Thanks to everyone who reported bugs and sent patches for this release.\n"
    )
    doc = extract(body, "text/plain")
    assert texts(doc, "heading") == ["Changelog", "2.1.0 (2024-05-02)"]
    assert texts(doc, "text") == [
        "- Add streaming uploads of arbitrarily large files over HTTP/2.",
        "- Fix a crash when the configuration file is empty or has only comments in it.",
        "Thanks to everyone who reported bugs and sent patches for this release.",
    ]


def test_json_served_as_text_plain_is_text() -> None:
    assert classify("text/plain", b'{"a": 1}') == "text"
    assert extract(b'{"a": 1}', "text/plain").passages[0].kind == "text"


# --------------------------------------------------------------------------- decoding


def test_latin1_page_declared_in_meta() -> None:
    body = fixture("latin1.html")
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    doc = extract(body, "text/html")  # no charset in the header: the meta tag says latin-1
    assert doc.title == "Café Müller - Preise"
    assert "Café Müller" in texts(doc, "heading")
    assert "Frühstück kostet jetzt 12,50 £" in doc.text
    assert "\ufffd" not in doc.text


def test_header_charset_wins() -> None:
    body = page("<h1>Prix</h1><p>Le menu du jour coûte désormais 14 € au lieu de 12 €.</p>")
    body = body.replace(b"charset='utf-8'", b"").decode().encode("cp1252")
    doc = extract(body, "text/html; charset=windows-1252")
    assert "coûte désormais 14 €" in doc.text


def test_undeclared_non_utf8_is_guessed_or_replaced() -> None:
    body = "Prices: Überraschung für 5 € — only today, at the Straße market stall.".encode("cp1252")
    doc = extract(body, "text/plain")
    assert doc.passages and "Prices:" in doc.text


def test_utf8_bom_and_missing_content_type() -> None:
    doc = extract(
        b"\xef\xbb\xbf" + page("<h1>Hej</h1><p>Smörgåsbord is served at noon every day.</p>"), None
    )
    assert "Smörgåsbord is served at noon every day." in doc.text


# --------------------------------------------------------------------------- classifying


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("image/png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        ("application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj"),
        ("application/octet-stream", b"\x00\x01\x02\x03binary\x00"),
        ("video/mp4", b"\x00\x00\x00\x18ftypmp42"),
        ("application/zip", b"PK\x03\x04\x14\x00"),
    ],
)
def test_unsupported_types_raise_with_the_type_in_the_message(
    content_type: str, body: bytes
) -> None:
    with pytest.raises(UnsupportedContent, match=content_type):
        extract(body, content_type)
    with pytest.raises(UnsupportedContent):
        classify(content_type, body)


def test_binary_body_behind_a_text_header_is_refused() -> None:
    with pytest.raises(UnsupportedContent, match="PDF"):
        extract(b"%PDF-1.4 ...", "text/html")


@pytest.mark.parametrize(
    ("content_type", "body", "kind"),
    [
        ("text/html; charset=utf-8", b"<p>hi</p>", "html"),
        ("application/xhtml+xml", b"<html><body>hi</body></html>", "html"),
        ("application/json", b'{"a": 1}', "json"),
        ("application/ld+json", b'{"a": 1}', "json"),
        ("application/rss+xml", b"<rss></rss>", "feed"),
        ("text/xml", b"<?xml version='1.0'?><rss version='2.0'><channel/></rss>", "feed"),
        ("application/xml", b"<?xml version='1.0'?><sitemap><url/></sitemap>", "text"),
        ("text/plain", b"just words", "text"),
        ("text/markdown", b"# Title", "text"),
        (None, b"<!doctype html><html><body>hi</body></html>", "html"),
        (None, b'<?xml version="1.0"?>\n<feed xmlns="http://www.w3.org/2005/Atom">', "feed"),
        (None, b'  {"a": [1, 2]}', "json"),
        (None, b"[2024-05-01] release notes", "text"),
        ("application/octet-stream", b"<html><head><title>x</title></head></html>", "html"),
        ("", b"plain words, nothing else", "text"),
    ],
)
def test_classify(content_type: str | None, body: bytes, kind: str) -> None:
    assert classify(content_type, body) == kind


@pytest.mark.parametrize("content_type", [HTML, "application/json", "text/plain", None])
def test_empty_body_gives_an_empty_document(content_type: str | None) -> None:
    for body in (b"", b"  \n\t "):
        doc = extract(body, content_type)
        assert doc.passages == ()
        assert doc.text == ""
        assert doc.text_hash == passage_hash("")


def test_page_without_main_content_falls_back_to_the_whole_body() -> None:
    links = "".join(
        f"<li><a href='/releases/{i}'>Release 1.{i} of the widget command-line tool</a></li>"
        for i in range(30)
    )
    body = (
        "<html><head><title>Releases</title></head><body>"
        "<nav><a href='/'>Home</a></nav>"
        f"<div><ul>{links}</ul></div>"
        "<footer>Page generated at 10:00</footer></body></html>"
    ).encode()
    doc = extract(body, HTML)
    assert texts(doc, "list_item")[:2] == [
        "Release 1.0 of the widget command-line tool",
        "Release 1.1 of the widget command-line tool",
    ]
    assert len(texts(doc, "list_item")) == 30
    assert "Page generated" not in doc.text


def test_preformatted_text_keeps_its_lines() -> None:
    lines = [
        f"widget-2.{i}.tar.gz    2024-05-{i + 1:02d} 10:00    1.2M checksum {i:04x}"
        for i in range(8)
    ]
    doc = extract(
        page(
            "<h1>Downloads</h1><p>All release archives of the widget, newest first in this list.</p>"
            f"<pre>{chr(10).join(lines)}</pre>"
        ),
        HTML,
    )
    assert [t for t in texts(doc) if t.startswith("widget-")] == [
        " ".join(x.split()) for x in lines
    ]


# --------------------------------------------------------------------------- changebench pages

CHANGEBENCH_PAGES = sorted(CHANGEBENCH.glob("*/v000.html")) if CHANGEBENCH.is_dir() else []


@pytest.mark.skipif(not CHANGEBENCH_PAGES, reason="changebench dev split not available")
@pytest.mark.parametrize("path", CHANGEBENCH_PAGES, ids=lambda p: p.parent.name)
def test_changebench_pages_yield_passages(path: Path) -> None:
    doc = extract(path.read_bytes(), HTML)
    assert_well_formed(doc)
    assert doc.title
    assert len(doc.passages) >= 5
    for noise in ("Page generated", "We use cookies", "Advertisement"):
        assert noise not in doc.text


def changebench_doc(case: str) -> Document:
    path = CHANGEBENCH / case / "v000.html"
    if not path.is_file():
        pytest.skip("changebench dev split not available")
    return extract(path.read_bytes(), HTML)


def test_changebench_release_headings_and_dates() -> None:
    doc = changebench_doc("dev-flask-3-0-release")
    order = texts(doc)
    assert "Version 2.3.2" in texts(doc, "heading")
    assert order[order.index("Version 2.3.2") + 1] == "Released 2023-05-01"


def test_changebench_schedule_table_rows() -> None:
    doc = changebench_doc("dev-devguide-313-date-change")
    assert "3.8 | PEP 569 | security | 2019-10-14 | 2024-10 | Łukasz Langa" in texts(
        doc, "table_row"
    )


def test_changebench_link_dense_post_index_is_kept() -> None:
    doc = changebench_doc("dev-rustblog-stable-releases")
    assert "2020-12-31 | Announcing Rust 1.49.0" in texts(doc, "table_row")


def test_changebench_listing_of_articles_is_kept_whole() -> None:
    doc = changebench_doc("dev-pysec-django-new-advisory")
    source = (CHANGEBENCH / "dev-pysec-django-new-advisory" / "v000.html").read_text()
    advisories = [t for t in texts(doc, "heading") if t.startswith("PYSEC-")]
    assert len(advisories) == source.count("<article") > 1


def test_changebench_product_price_from_jsonld() -> None:
    doc = changebench_doc("dev-fixture-unifi-below-900")
    assert texts(doc, "json") == [
        "Product: UniFi Express | brand: Ubiquiti | sku: UX | price: 950.95 USD"
        " | availability: InStock"
    ]


def test_ad_and_cookie_blocks_are_matched_by_whole_class_tokens_only() -> None:
    doc = extract(
        page(
            "<h1>Advisories</h1>"
            "<div class='adv'><p>PYSEC-2024-28: denial of service in the intcomma template filter.</p></div>"
            "<div class='add-to-cart shadow'><p>Price: 19.99 USD, ships in two business days.</p></div>"
            "<div class='header-ad'><p>Buy cheap flights now, limited time offer only!</p></div>"
            "<div id='cookie-notice'><p>We use cookies to improve your experience on this site.</p></div>"
        ),
        HTML,
    )
    assert "denial of service in the intcomma template filter" in doc.text
    assert "Price: 19.99 USD" in doc.text
    assert "cheap flights" not in doc.text
    assert "cookies" not in doc.text
