"""The offline heuristic: what a sentence's condition and keywords must keep, measured on a set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from torale.discovery.heuristic import analyse

SENTENCES = json.loads((Path(__file__).parent / "data" / "discovery_sentences.json").read_text())[
    "sentences"
]


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[\s,]+", text.lower()) if w}


def covered(term: str, keywords: list[str]) -> bool:
    """A term is covered when a keyword contains it, or its words are all among the keywords."""
    lowered = [k.lower() for k in keywords]
    if any(term.lower() in k for k in lowered):
        return True
    return _words(term) <= set().union(*(_words(k) for k in lowered))


@pytest.mark.parametrize("case", SENTENCES, ids=[c["text"][:48] for c in SENTENCES])
def test_condition_and_keywords_keep_entities_and_constraints(case: dict[str, Any]) -> None:
    result = analyse(case["text"])
    condition = result.condition.lower()

    for term in case["entities"] + case["constraints"]:
        assert term.lower() in condition, f"{term!r} missing from condition {result.condition!r}"
        assert covered(term, result.keywords), f"{term!r} missing from keywords {result.keywords}"
    for term in case.get("condition_terms", []):
        assert term.lower() in condition, f"{term!r} missing from condition {result.condition!r}"
    assert result.category == case["category"]
    assert result.check_interval_seconds == case["check_interval_seconds"]
    if "price" in case:
        assert result.price_threshold is not None
        assert result.price_threshold.amount == case["price"]["amount"]
        assert result.price_threshold.currency == case["price"]["currency"]
        assert result.price_threshold.direction == case["price"]["direction"]
    else:
        assert result.price_threshold is None
    for version in case.get("versions", []):
        assert version in result.versions
    for constraint in case.get("time_constraints", []):
        assert constraint in result.time_constraints


def test_quality_over_the_whole_set() -> None:
    """Every entity and constraint of every sentence survives: the score is 100 %, not "most"."""
    kept = total = 0
    for case in SENTENCES:
        result = analyse(case["text"])
        for term in case["entities"] + case["constraints"]:
            total += 1
            kept += term.lower() in result.condition.lower() and covered(term, result.keywords)
    assert total >= 40
    assert kept == total


@pytest.mark.parametrize(
    ("sentence", "condition"),
    [
        (
            "Tell me when the iPhone 17 release date is announced",
            "The iPhone 17 release date is announced.",
        ),
        (
            "Alert me if the RTX 5090 drops below $1,500 at these shops",
            "The RTX 5090 drops below $1,500.",
        ),
        ("I want to know when Python 3.14 is released.", "Python 3.14 is released."),
        ("Please let me know if the EU bans TikTok, thanks", "The EU bans TikTok."),
        ("keep an eye on the Steam summer sale dates", "The Steam summer sale dates."),
    ],
)
def test_filler_is_stripped(sentence: str, condition: str) -> None:
    assert analyse(sentence).condition == condition


def test_urls_named_in_the_sentence_become_sources_and_leave_the_condition() -> None:
    result = analyse(
        "Watch https://shop.example.com/rtx-5090?ref=1 and bestbuy.com for the RTX 5090 "
        "under EUR 1.299,99"
    )
    assert result.urls == ["https://shop.example.com/rtx-5090?ref=1", "https://bestbuy.com"]
    assert "http" not in result.condition and "bestbuy" not in result.condition
    assert "RTX 5090" in result.condition
    assert result.price_threshold is not None
    assert (result.price_threshold.amount, result.price_threshold.currency) == (1299.99, "EUR")


@pytest.mark.parametrize(
    ("text", "amount", "currency"),
    [
        ("under $1,500", 1500.0, "USD"),
        ("under $1.5k", 1500.0, "USD"),
        ("below 1.299,00 €", 1299.0, "EUR"),
        ("below €1.299", 1299.0, "EUR"),
        ("under £49.99", 49.99, "GBP"),
        ("under 300 dollars", 300.0, "USD"),
        ("under CHF 80", 80.0, "CHF"),
    ],
)
def test_prices_are_read_as_written(text: str, amount: float, currency: str) -> None:
    threshold = analyse(f"Tell me when the Widget X costs {text}").price_threshold
    assert threshold is not None
    assert (threshold.amount, threshold.currency, threshold.direction) == (
        amount,
        currency,
        "below",
    )


def test_questions_and_urgency() -> None:
    question = analyse("When will the Nintendo Switch 2 come out?")
    assert question.condition.endswith("When will the Nintendo Switch 2 come out?")
    assert "Nintendo Switch 2" in question.keywords
    urgent = analyse("Tell me as soon as the iPhone 17 release date is announced")
    assert urgent.check_interval_seconds == 3600
    assert analyse("Let me know about Zorblax").check_interval_seconds == 6 * 3600
