"""What a query asks for, read from its words: anchors (versions, numbers), a price threshold,
content terms, and whether planned/unreleased things count. Pure functions, no I/O."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_VERSION = re.compile(r"(?<![\w.])v?(\d+(?:\.\d+)+)(?![\w]|\.\d)")
_NAMED_NUMBER = re.compile(
    r"\b([A-Z][\w.+-]*(?:\s+[A-Z][\w.+-]*)*)\s+(\d{1,3})\b(?!\s*(?:%|percent|\$|€|£|per|/))"
)
_PRICE = re.compile(
    r"(?P<cur>[$€£])\s?(?P<a>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"|(?P<b>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s?(?P<code>USD|EUR|GBP|dollars?|euros?)\b",
    re.IGNORECASE,
)
_BELOW = re.compile(
    r"\b(below|under|less than|cheaper than|drops? (?:below|under)|at most)\b", re.I
)
_ABOVE = re.compile(r"\b(above|over|more than|exceeds?|rises? (?:above|over)|at least)\b", re.I)
_WORD = re.compile(r"[a-z][a-z0-9+#-]*(?:\.\d+)*|\d+(?:\.\d+)*")  # "gpt-5.4" is one word
_PLANNED = re.compile(
    r"\b(unreleased|upcoming|planned|tbd|tba|to be (?:announced|determined)|coming soon|"
    r"pre-?release|release candidate|rc\d*|beta\d*|alpha\d*|preview\d*|draft|expected|scheduled|"
    r"opens? (?:on|in)|"
    r"not (?:yet )?(?:released|available|open)|will (?:open|launch|start|begin|go on sale|be "
    r"(?:released|available|published|announced)))\b|\?\?",
    re.IGNORECASE,
)

# "a new third-party subprocessor to ...", "whenever a new OpenAI model is added": the kind of
# entry asked about, up to the verb or preposition that ends the noun phrase
_TARGET = re.compile(
    r"(?<!the )\bnew ((?:[\w.+-]+\s+){0,3}?[\w.+-]+?)(?=\s*(?:[.,;:()!?]|$)|\s+"
    r"(?:to|is|are|on|in|for|from|of|at|gets?|was|were|be|being|has|have|appears?|and|or|that|"
    r"which|with)\b)",
    re.IGNORECASE,
)
_RELEASE_EVENT = re.compile(
    r"\b(releas\w*|publish\w*|announc\w*|launch\w*|availab\w*|ship\w*|on sale|opens?|goes live)\b"
)
_REMOVAL_EVENT = re.compile(
    r"\b(drop\w*|remov\w*|discontinu\w*|retir\w*|delist\w*|sunset\w*|no longer|taken down|"
    r"pulled|withdrawn)\b"
)
_ID = re.compile(r"\b(?=[a-z0-9-]*\d)(?=[a-z0-9-]*[a-z])[a-z0-9][a-z0-9-]+\b")  # "16gb", "m3"
_RECURRING = re.compile(r"\b(chang\w*|updat\w*|each|every|always|any time|again)\b")

STOPWORDS = frozenset(
    """a an the and or of to in on at for from by with about into is are was were be been being
    it its this that these those as if when whenever once me my i you your us we our let know
    tell notify alert ping email message please any new some all there their them then than go
    changes change changed update updated updates get gets got has have had do does did will would
    can could should may might is not no yes what which who whom how why where also just only
    officially official announce announced announces announcement publish published publishes
    release released releases available becomes become made make adds added add
    list lists table tables page pages site website section""".split()
)
# words that say "the thing happened" rather than name the thing: they may match, never required
EVENT_WORDS = frozenset(
    """release released releases releasing announce announced announcing announcement publish
    published available availability becomes added adds launch launched opens open new reach
    reaches reached hit hits drop drops dropped remove removes removed discontinue discontinues
    discontinued retire retires retired delist delists delisted""".split()
)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


# past forms a condition is often met in ("sold out" for "sell out", "went live")
_IRREGULAR = {
    "sold": "sell", "went": "go", "gone": "go", "began": "begin", "begun": "begin",
    "became": "becom", "rose": "rise", "risen": "rise", "fell": "fall", "fallen": "fall",
    "bought": "buy", "held": "hold", "left": "leave", "made": "make", "took": "take",
}  # fmt: skip


def stem(word: str) -> str:
    """A light suffix stripper: enough to match 'announcing' with 'announced'."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    for suffix in ("ements", "ement", "ing", "ers", "ied", "ies", "ed", "es", "er", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)] + ("y" if suffix in ("ied", "ies") else "")
    return word


def stems(text: str) -> set[str]:
    """Stemmed words of a text, hyphenated words also by their parts ("third-party")."""
    found = set()
    for word in tokens(text):
        found.add(stem(word))
        if "-" in word:
            found.update(stem(part) for part in word.split("-") if part)
    return found


def versions(text: str) -> set[str]:
    return {m.group(1) for m in _VERSION.finditer(text)}


def prices(text: str) -> list[float]:
    found = []
    for m in _PRICE.finditer(text):
        raw = m.group("a") or m.group("b")
        try:
            found.append(float(raw.replace(",", "")))
        except ValueError:
            continue
    return found


def mentions_planned(text: str) -> bool:
    return _PLANNED.search(text) is not None


def version_matches(anchor: str, found: set[str]) -> bool:
    """`0.28` is met by 0.28 or 0.28.x; `3.0.0` only by itself."""
    return any(v == anchor or v.startswith(anchor + ".") for v in found)


@dataclass(frozen=True)
class QuerySignals:
    versions: frozenset[str]
    numbers: frozenset[str]  # "Node.js 22": a number naming the thing asked about
    price_below: float | None
    price_above: float | None
    terms: frozenset[str]  # stemmed content words naming the subject
    event_terms: frozenset[str]
    allows_planned: bool  # the query itself is about plans or schedules
    whenever: bool  # "whenever a new X": every new distinct fact counts
    recurring: bool  # "whenever", "every time", "if X changes": not met once and done
    ids: frozenset[str] = frozenset()  # model names mixing letters and digits: "16gb", "m3"
    about_price: bool = False  # "pricing", "cost", "fees": prices are the subject
    wants_release: bool = False  # asks for something to be released, published, launched...
    wants_removal: bool = False  # asks for something to be dropped, removed, discontinued...
    target: str | None = None  # "a new OpenAI model": model (stemmed)
    qualifiers: frozenset[str] = frozenset()  # ... and whose, when named: openai

    @property
    def wants_price(self) -> bool:
        return self.price_below is not None or self.price_above is not None


@functools.lru_cache(maxsize=1024)
def read_query(*texts: str | None) -> QuerySignals:
    """Signals from the raw query (and the refined query / condition when discovery wrote them).

    Memoised: a monitor's query is read on each of its checks, and the signals are immutable."""
    text = " ".join(t for t in texts if t)
    below = above = None
    amounts = prices(text)
    if amounts:
        if _BELOW.search(text):
            below = min(amounts)
        elif _ABOVE.search(text):
            above = max(amounts)
    price_spans = {m.group(0) for m in _PRICE.finditer(text)}
    stripped = text
    for span in price_spans:
        stripped = stripped.replace(span, " ")
    found_versions = versions(stripped)
    numbers = {m.group(2) for m in _NAMED_NUMBER.finditer(stripped)} - {
        v.split(".")[0] for v in found_versions
    }
    words = [w for w in tokens(stripped) if not _VERSION.fullmatch(w) and not w.isdigit()]
    event_stems = {stem(w) for w in EVENT_WORDS}
    stop_stems = {stem(w) for w in STOPWORDS}
    terms = frozenset(
        stem(w) for w in words if w not in STOPWORDS and stem(w) not in stop_stems and len(w) > 1
    )
    events = frozenset(stem(w) for w in words if w in EVENT_WORDS or stem(w) in event_stems)
    lowered = text.lower()
    # "whenever", "a new X", "new sponsors": every new distinct fact counts ("the new X" is one)
    whenever = bool(re.search(r"\b(whenever|every time|each time)\b|(?<!the )\bnew\b", lowered))
    target, qualifiers = None, frozenset[str]()
    phrase = _TARGET.search(text)
    if phrase:
        *described, head = phrase.group(1).split()
        target = stem(head.lower())
        qualifiers = frozenset(  # names ("OpenAI", "Rust"), not descriptions ("security")
            s
            for word in described
            if word[:1].isupper()
            for s in stems(word)
            if s not in stop_stems and len(s) > 1
        )
    return QuerySignals(
        versions=frozenset(found_versions),
        numbers=frozenset(numbers),
        price_below=below,
        price_above=above,
        terms=terms,
        event_terms=events,
        allows_planned=bool(re.search(r"\b(planned|schedul\w*|date|dates|expected)\b", lowered)),
        whenever=whenever,
        recurring=whenever or bool(_RECURRING.search(lowered)),
        ids=frozenset(m.group(0) for m in _ID.finditer(stripped.lower())),
        # "if the pricing changes", not "a new model in the pricing table"
        about_price=bool(
            below or above or (not target and re.search(r"\b(pric\w*|costs?|fees?)\b", lowered))
        ),
        wants_release=bool(_RELEASE_EVENT.search(lowered)),
        wants_removal=bool(_REMOVAL_EVENT.search(lowered)),
        target=target,
        qualifiers=qualifiers,
    )
