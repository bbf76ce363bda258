"""Scoring changed passages against a query, severity, and the fingerprint of what is reported.
Pure functions: the service gathers passages and embeddings, this decides."""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from torale.detection.signals import (
    QuerySignals,
    mentions_planned,
    prices,
    stem,
    stems,
    tokens,
    version_matches,
    versions,
)

ChangeKind = Literal["added", "modified", "removed"]
Severity = Literal["low", "medium", "high"]

# the score a change needs, by the monitor's sensitivity (high sensitivity = lower bar)
THRESHOLDS: dict[str, float] = {"high": 0.46, "medium": 0.54, "low": 0.64}
MODIFIED_SIMILARITY = 0.72  # nearest old passage at least this close: "modified", else "added"
SEMANTIC_WEIGHT = 0.5
TYPO_SIMILARITY = 0.8  # a word this close to the one it replaced is a spelling fix


@dataclass(frozen=True)
class Change:
    """One changed passage, with the heading above it for context."""

    kind: ChangeKind
    before: str | None
    after: str | None
    context: str = ""
    semantic: float = 0.0  # cosine(query, context + focus), filled in by the service
    # the lines of `after` not seen in the source's recent snapshots (None: not computed, the
    # whole text is new), and how many of them are new entries rather than edits of old lines
    novel: tuple[str, ...] | None = None
    new_entries: int | None = None
    section: str = ""  # the release heading it falls under, with its status line
    headings: str = ""  # every heading above it, the page title included
    columns: str = ""  # a table row's column headers
    section_before: str | None = None  # its release section in the previous snapshot, if any

    @property
    def text(self) -> str:
        return self.after if self.after is not None else (self.before or "")

    @property
    def focus(self) -> str:
        """What is new in this passage: its unseen lines (all of it for a removal)."""
        if self.novel is None or self.after is None:
            return self.text
        return "\n".join(self.novel)

    @property
    def cells_changed(self) -> str:
        """A modified table row as the cells that changed, under their column headers
        ("3.12 — Status: stable"); empty when there are no headers or the row changed shape."""
        if self.kind != "modified" or not (self.columns and self.before and self.after):
            return ""
        rows = [t.split(" | ") for t in (self.after, self.before, self.columns) if "\n" not in t]
        if len(rows) != 3 or len({len(r) for r in rows}) != 1 or rows[0][0] != rows[1][0]:
            return ""
        new, old, names = rows
        changed = [f"{name}: {value}" for name, value, was in zip(names, new, old, strict=True)
                   if value != was]  # fmt: skip
        return f"{new[0]} — {'; '.join(changed)}" if changed else ""

    @property
    def with_context(self) -> str:
        """What the change is read as: its headings, then a table row's changed cells under
        their column headers, or the table's columns and what is new."""
        cells = self.cells_changed
        columns = self.columns if self.columns not in self.context else ""
        parts = (self.context, cells) if cells else (self.context, columns, self.focus)
        return "\n".join(p for p in parts if p)

    @property
    def is_new_entry(self) -> bool:
        if self.new_entries is not None:
            return self.new_entries > 0
        return self.kind == "added" or bool(_new_lines(self))


@dataclass(frozen=True)
class Scored:
    change: Change
    relevance: float
    reasons: tuple[str, ...] = field(default=())


_GENERIC = {
    "version": versions,
    "release": versions,
    "price": prices,
    "pric": prices,  # "pricing"
    "cost": prices,
}


def lexical(signals: QuerySignals, text: str, page: str = "") -> float:
    """Share of the query's subject terms found (stemmed) in the text; a term only found
    elsewhere on the page (its title, say: the page is about it) counts half, and generic
    nouns like "version" or "price" are met by a version number or a price."""
    subject = signals.terms - signals.event_terms
    if not subject:
        return 0.0
    here = {stem(w) for w in tokens(text)}
    on_page = _page_words(page)
    total = 0.0
    for term in subject:
        finder = _GENERIC.get(term)
        if term in here or (finder is not None and finder(text)):
            total += 1.0
        elif term in on_page:
            total += 0.5
    return total / len(subject)


@functools.lru_cache(maxsize=16)
def _page_words(page: str) -> frozenset[str]:
    """The page's stemmed words (every change of a check is scored against the same page)."""
    return frozenset(stem(w) for w in tokens(page))


def _names_id(model: str, text: str) -> bool:
    """ "16gb" in "Raspberry Pi 5 16GB" or "16 GB"."""
    return model in re.sub(r"\s+", "", text.lower())


def _names_number(number: str, text: str) -> bool:
    """ "22" in "Node.js 22", "22.x" or "v22", not in "2024-10-22" or "1.22"."""
    return re.search(rf"(?<![\w.-])v?{re.escape(number)}(?![\w-]|\.\d)", text) is not None


def _released(section: str) -> bool:
    """A release section that says it is out: a date, or "released", and no plan."""
    said = _DATE.search(section) or re.search(r"\breleased\b", section, re.IGNORECASE)
    return bool(said) and not mentions_planned(section)


def _was_planned(change: Change) -> bool:
    """Planned before, done now: a passage that said "Unreleased"/"beta" and no longer does,
    or a release section that had no date or a plan and now is released."""
    if change.kind == "modified" and change.before is not None and mentions_planned(change.before):
        return True
    return (
        change.section_before is not None
        and _released(change.section)
        and not _released(change.section_before)
    )


def lost_lines(before: str | None, now: str | None) -> list[str]:
    """Lines of `before` that `now` (a passage, or the whole page) no longer has."""
    if before is None or now is None:
        return []
    kept = {line_key(line) for line in now.splitlines()}
    return [line for line in before.splitlines() if line.strip() and line_key(line) not in kept]


def release_key(section: str) -> frozenset[str]:
    """The versions a release section's heading names ("0.28.0 (28th November) — Released")."""
    return frozenset(versions(section.split(" — ")[0]))


def _brought_words(signals: QuerySignals, change: Change) -> set[str]:
    """The query's subject words a modification brought in (not in the text it replaced)."""
    old = stems(change.before or "")
    now = stems(change.cells_changed or change.focus)
    return set((signals.terms - signals.event_terms) & (now - old))


def _own_heading_terms(signals: QuerySignals, change: Change) -> set[str]:
    """The query's subject words in the heading right above a change."""
    own = change.headings.rsplit(" > ", 1)[-1]
    return set((signals.terms - signals.event_terms) & stems(own)) if own else set()


def _is_a(target: str, change: Change) -> bool:
    """Whether a new entry is the kind of thing asked about: its headings or its own words
    name it, or, for a version or release, it names a version."""
    if target in _GENERIC:
        return bool(_GENERIC[target](f"{change.section}\n{change.focus}"))
    return target in stems(f"{change.headings}\n{change.columns}\n{change.focus}")


@dataclass
class _Tally:
    """A relevance being worked out, with the reasons for each step."""

    relevance: float
    reasons: list[str] = field(default_factory=list)

    def add(self, amount: float, why: str) -> None:
        self.relevance += amount
        self.reasons.append(why)

    def scale(self, factor: float, why: str) -> None:
        self.relevance *= factor
        self.reasons.append(why)


def score(
    signals: QuerySignals, change: Change, page: str = "", elsewhere: frozenset[str] = frozenset()
) -> Scored:
    """Relevance of one change to the query: meaning plus words, then what the query's wording
    says about entries, then its hard facts (a named version, a price threshold, planned vs
    done) gate it. `elsewhere`: the words of the page's section headings."""
    text = change.with_context
    semantic = SEMANTIC_WEIGHT * change.semantic
    tally = _Tally(semantic + (1 - SEMANTIC_WEIGHT) * lexical(signals, text, page))
    _weigh_entry(signals, change, elsewhere, tally)
    if signals.versions:
        # the passage and its own release section, not the section before it
        if not any(
            version_matches(v, versions(f"{change.section}\n{change.text}"))
            for v in signals.versions
        ):
            return Scored(change, 0.0, ("does not name the version asked about",))
        _weigh_version(signals, change, text, tally)
    if signals.ids and not any(_names_id(i, text) for i in signals.ids):
        tally.scale(0.3, "does not name the model asked about")
    if signals.numbers and not any(_names_number(n, text) for n in signals.numbers):
        tally.scale(0.5, "does not name the number asked about")
    elif signals.numbers and signals.wants_release and _DATE.search(change.focus):
        tally.add(0.1, "dated")  # "18 | 18.0 | September 25, 2025" for "PostgreSQL 18"
    if signals.wants_price:
        if not _price_met(signals, change.after or ""):
            return Scored(change, 0.0, ("no price meets the threshold",))
        was_met = _price_met(signals, change.before or "")
        tally.relevance = max(tally.relevance, 0.9 if not was_met else 0.3)
        tally.reasons.append("price meets the threshold")
    elif signals.about_price and set(prices(change.after or "")) != set(
        prices(change.before or "")
    ):
        tally.add(0.1, "a price changed")  # "if the pricing changes": a new or changed price
    _weigh_state(signals, change, tally)
    if _spelling_only(change):
        tally.scale(0.2, "a spelling or punctuation fix")
    if (
        _only_numbers_changed(change)
        and not (signals.about_price and prices(change.after or "") != prices(change.before or ""))
        and not signals.allows_planned
        and "newly names the version asked about" not in tally.reasons
    ):
        tally.scale(0.3, "only numbers changed")  # clocks, counters: the words did not change
    if change.kind == "removed" and not signals.wants_removal:
        tally.relevance *= 0.3  # a disappearance rarely meets a condition (and flips back)
    elif (
        signals.wants_removal
        and change.kind != "removed"
        and not lost_lines(change.before, change.after)
    ):
        tally.scale(0.3, "nothing removed, and the query asks for a removal")
    return Scored(change, max(0.0, min(1.0, tally.relevance)), tuple(tally.reasons))


def _weigh_entry(
    signals: QuerySignals, change: Change, elsewhere: frozenset[str], tally: _Tally
) -> None:
    """ "Whenever a new X": a new entry is the kind of thing asked about, more so under a
    heading naming X; an edit is not. For other queries, a new entry under a heading with the
    query's words ("Speakers") counts a little. An entry in another section than the one the
    query names ("a new OpenAI model" in the xAI table) counts half."""
    if signals.whenever and change.is_new_entry:
        tally.add(0.1, "a new entry")
        if signals.target and _is_a(signals.target, change):
            tally.add(0.15, f"a new {signals.target}")
    elif signals.target and change.kind != "removed" and not _was_planned(change):
        tally.scale(0.6, f"not a new {signals.target}")
    elif change.kind == "added" and change.is_new_entry:
        about = _own_heading_terms(signals, change)
        if about:
            tally.add(0.1, "new under a heading about " + ", ".join(sorted(about)))
    if change.kind == "modified" and not signals.whenever:
        brought = _brought_words(signals, change)
        if brought:  # "Status: Draft" -> "Status: Accepted" for "when ... is accepted"
            tally.add(0.1, "now says " + ", ".join(sorted(brought)))
    if signals.qualifiers and elsewhere:
        other = signals.qualifiers & elsewhere - stems(f"{change.headings}\n{change.focus}")
        if other:
            tally.scale(0.5, "in another section than " + ", ".join(sorted(other)))


def _weigh_version(signals: QuerySignals, change: Change, text: str, tally: _Tally) -> None:
    """The change names the version asked about: more so dated, or named for the first time;
    less when it only mentions it in the notes of another release ("removed in 1.0")."""
    release = release_key(change.section)
    if release and not any(version_matches(v, set(release)) for v in signals.versions):
        tally.scale(0.5, "mentioned under another release")
        return
    tally.add(0.15, "names the version asked about")
    if release and _released(change.section):
        tally.add(0.1, "its release section is dated")  # "1.0.0 (2nd March, 2025)"
    elif _DATE.search(text):
        tally.add(0.05, "dated")
    if change.kind == "modified" and not any(
        version_matches(v, versions(change.before or "")) for v in signals.versions
    ):
        tally.add(0.1, "newly names the version asked about")


def _weigh_state(signals: QuerySignals, change: Change, tally: _Tally) -> None:
    """Planned is not done; planned-then-done is the news; a named version with no release
    date is not released yet."""
    if signals.allows_planned:
        return
    if change.after is not None and mentions_planned(f"{change.section}\n{change.after}"):
        tally.scale(0.25, "planned or unreleased, not done")
    elif signals.wants_release and _was_planned(change):
        tally.add(0.2, "was planned, now is not")
    elif (
        signals.wants_release
        and signals.versions
        and change.section
        and not _released(change.section)
        and not _DATE.search(change.focus)
    ):
        tally.scale(0.6, "no release date yet")  # "Version 3.1.0" with entries, no date


_DATE = re.compile(
    r"\b(19|20)\d\d-\d\d-\d\d\b|\b\d{1,2}(st|nd|rd|th)?\s+[A-Z][a-z]{2,8},?\s+(19|20)\d\d\b"
    r"|\b[A-Z][a-z]{2,8}\.?\s+\d{1,2}(st|nd|rd|th)?,?\s+(19|20)\d\d\b"
)


def _spelling_only(change: Change) -> bool:
    """A modification that only fixes spelling, case or punctuation: the words pair up one to
    one, each close to its old spelling ("relased" -> "released"), no number moved and nothing
    went from planned to done or back."""
    if change.kind != "modified" or not change.before or not change.after:
        return False
    if mentions_planned(change.before) != mentions_planned(change.after):
        return False
    before, after = tokens(change.before), tokens(change.after)
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag != "replace" or i2 - i1 != j2 - j1:
            return False
        for old, new in zip(before[i1:i2], after[j1:j2], strict=True):
            if old[0].isdigit() or new[0].isdigit() or old[0] != new[0]:
                return False
            if difflib.SequenceMatcher(a=old, b=new).ratio() < TYPO_SIMILARITY:
                return False
    return True


def _only_numbers_changed(change: Change) -> bool:
    if change.kind != "modified" or not change.before or not change.after:
        return False
    before, after = tokens(change.before), tokens(change.after)
    words = [w for w in before if not w[0].isdigit()] == [w for w in after if not w[0].isdigit()]
    return words and before != after


def _new_lines(change: Change) -> list[str]:
    """Lines of a modified passage that were not there before (items added to a list)."""
    if change.kind != "modified" or not change.before or not change.after:
        return []
    before = {line.strip() for line in change.before.splitlines()}
    return [
        line for line in change.after.splitlines() if line.strip() and line.strip() not in before
    ]


def line_key(line: str) -> str:
    return " ".join(line.lower().split())


EDIT_OVERLAP = 0.5


class SeenLines:
    """The lines of a source's recent snapshots, to tell what in a changed passage is new:
    a line seen before is not news (a passage re-cut, reordered or merged differently), a
    line that shares most of its words with a seen one is an edit (a renamed entry, a
    corrected date), anything else is a new entry."""

    def __init__(self, texts: Sequence[str]) -> None:
        raw = {line for t in texts for line in t.splitlines()}  # snapshots share most lines
        self.keys = {key for key in map(line_key, raw) if key}

    @functools.cached_property
    def _names(self) -> list[set[str]]:
        return [set(tokens(_entry_name(k))) - LEGAL_FORMS for k in self.keys]

    @functools.cached_property
    def _versions(self) -> set[str]:
        return versions("\n".join(self.keys))

    def novelty(self, text: str) -> tuple[tuple[str, ...], int]:
        """(the unseen lines of `text`, how many of them are new entries)."""
        novel = []
        entries = 0
        for line in text.splitlines():
            key = line_key(line)
            if not key or key in self.keys:
                continue
            novel.append(line.strip())
            entries += not self._is_edit(key)
        return tuple(novel), entries

    def _is_edit(self, key: str) -> bool:
        if versions(key) - self._versions:
            return False  # names a version never seen here: a new entry
        words = set(tokens(_entry_name(key)))
        if not words:
            return True
        if " | " in key:
            return _renamed(words - LEGAL_FORMS, self._names)
        return any(
            len(words & seen) / len(words | seen) >= EDIT_OVERLAP
            for seen in self._names
            if seen & words
        )


LEGAL_FORMS = frozenset("inc llc ltd limited corp corporation co gmbh ag plc bv sa pty aka".split())


def _renamed(words: set[str], names: Sequence[set[str]]) -> bool:
    """A row name that is an earlier one renamed, shortened or re-ordered ("Grok 3 Mini" after
    "Grok 3 Mini Beta"), or two earlier ones merged ("Twilio (SendGrid)"); not one extended
    with a new word ("GPT-5.4 Mini" after "GPT-5.4" is a new model)."""
    if not words or any(words <= seen for seen in names):
        return True
    inside = [seen for seen in names if seen and seen <= words]
    return len(inside) >= 2 and set().union(*inside) == words


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def new_sentences(line: str, before: str) -> str:
    """The sentences of a changed line that its old passage did not have ("Follow us for
    updates." appended to a paragraph); the whole line when none of it survived."""
    old = {line_key(s) for s in _SENTENCE_END.split(before)}
    parts = _SENTENCE_END.split(line)
    fresh = [p for p in parts if line_key(p) not in old]
    return " ".join(fresh) if fresh and len(fresh) < len(parts) else line


def _entry_name(line: str) -> str:
    """What names an entry: a table row's first cell, else the whole line (rows of one table
    share their other columns, so only the first tells a new row from an edited one; a first
    cell with a word no earlier row had, "GPT-5.4 Mini" after "GPT-5.4", is a new row)."""
    return line.split(" | ", 1)[0] if " | " in line else line


def _price_met(signals: QuerySignals, text: str) -> bool:
    amounts = prices(text)
    if signals.price_below is not None:
        return any(a < signals.price_below for a in amounts)
    if signals.price_above is not None:
        return any(a > signals.price_above for a in amounts)
    return False


def severity(relevance: float, magnitude: float) -> Severity:
    """High when clearly relevant and substantial; low when barely over the bar."""
    combined = 0.8 * relevance + 0.2 * magnitude
    if combined >= 0.7:
        return "high"
    if combined >= 0.5:
        return "medium"
    return "low"


def magnitude(change: Change) -> float:
    """How much of the passage changed (0..1), by words."""
    before = set(tokens(change.before or ""))
    after = set(tokens(change.after or ""))
    union = before | after
    return len(before ^ after) / len(union) if union else 0.0


def facts(changes: Sequence[Change]) -> list[str]:
    """The normalised facts reported: the words of what is new (and the version of the release
    section it is in), order, case, punctuation and whitespace ignored."""
    words: set[str] = set()
    for change in changes:
        if change.after is None:
            continue
        words.update(w for w in tokens(change.focus) if len(w) > 1 or w.isdigit())
        words.update(versions(change.section))  # the release the new lines belong to
        words.update(_NAME + "-".join(tokens(line.split(" | ", 1)[0]))
                     for line in change.focus.splitlines() if " | " in line)  # fmt: skip
    return sorted(words)


def fingerprint(changes: Sequence[Change]) -> str:
    return hashlib.blake2b(" ".join(facts(changes)).encode(), digest_size=16).hexdigest()


SAME_FACTS = 0.7
_MONTHS = frozenset(
    """january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec""".split()
)
_NAME = "#"  # facts: "#xai" names a table row by its first cell
_ORDINALS = {"st", "nd", "rd", "th"}


def already_reported(
    reported: Sequence[Sequence[str]], current: Sequence[str], *, dates_matter: bool = False
) -> bool:
    """The same facts, give or take a re-format or a corrected date: word-set overlap, and no
    version number that was not reported before (1.51.0 is news after 1.50.0). When the query
    is about dates, a number not reported before is news too (a date moved again)."""
    names = {w for w in current if w.startswith(_NAME)}
    mine = set(current) - names
    my_versions = {w for w in mine if "." in w and w.replace(".", "").isdigit()}
    if dates_matter:
        names |= {w for w in mine if w.isdigit() or w in _MONTHS}
    my_words = {w for w in mine if w.isalpha() and w not in _ORDINALS}
    for earlier in reported:
        theirs = set(earlier)
        if not (my_versions | names) <= theirs:
            continue  # a version or a table entry that was not reported before
        theirs -= {w for w in theirs if w.startswith(_NAME)}
        their_words = {w for w in theirs if w.isalpha() and w not in _ORDINALS}
        words = my_words | their_words
        if my_versions and words and len(my_words & their_words) / len(words) >= 0.5:
            return True  # the same release again, its date or wording corrected
        union = mine | theirs
        if union and len(mine & theirs) / len(union) >= SAME_FACTS:
            return True
    return False


def extractive_summary(scored: Sequence[Scored], limit: int = 3) -> str:
    """Without an LLM: the most relevant changed passages, before -> after."""
    lines = []
    for item in list(scored)[:limit]:
        change = item.change
        where = f"{change.context}: " if change.context else ""
        after, before = _clip(change.after), _clip(change.before)
        if change.kind == "modified":
            lines.append(f"{where}{before} → {after}")
        elif change.kind == "added":
            lines.append(f"{where}new: {after}")
        else:
            lines.append(f"{where}removed: {before}")
    return "\n".join(lines)


def _clip(text: str | None, limit: int = 240) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
