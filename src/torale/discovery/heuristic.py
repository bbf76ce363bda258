"""Offline reading of a monitor sentence: condition, keywords, constraints, URLs, check interval.

No model and no network: filler ("tell me when", "alert me if") is stripped, the constraints
that make a condition precise (prices with their direction, versions, dates and time limits,
percentages) are found by pattern and protected, named things are chunked from capitalisation
and digits, and the category picks a check interval. Every other provider's refinement is
completed with these hints, and it is the fallback that never fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from torale.discovery.schemas import Category, PriceDirection, PriceThreshold

HOUR = 3600
DAY = 86400
DEFAULT_INTERVAL = 6 * HOUR
MAX_KEYWORDS = 15

CATEGORY_INTERVALS: dict[Category, int] = {
    "price": HOUR,
    "availability": HOUR,
    "security": HOUR,
    "release": DAY,
    "policy": DAY,
    "schedule": DAY,
    "new_item": DEFAULT_INTERVAL,
    "general": DEFAULT_INTERVAL,
}

# --- patterns -------------------------------------------------------------------------------

_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_BARE_DOMAIN = re.compile(
    r"(?<![@/\w.-])(?:www\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?:com|org|net|io|dev|co|uk|de|fr|eu|gov|edu|app|ai|shop|store|info|tech|us|ca|jp|nl|es|"
    r"it|ch|at|se|no|pl|be|au|in)(?![\w-])(?:/[^\s<>\"'`]*)?",
    re.IGNORECASE,
)
_URL_TRAILING = ".,;:!?)]}'\"»”\u2019"
_URL_LIST = r"\ue000\d+\ue001(?:\s*(?:,|and|or|&|\+)\s*\ue000\d+\ue001)*"
_URL_CONTEXT = [
    re.compile(p, re.IGNORECASE)
    for p in (
        rf"^\s*(?:please\s+)?(?:watch|monitor|track|check|keep\s+an\s+eye\s+on|look\s+at)\s+"
        rf"(?:the\s+)?(?:pages?\s+|sites?\s+|urls?\s+)?{_URL_LIST}\s*,?\s*(?:for\s+|and\s+)?",
        rf"\s*\(\s*{_URL_LIST}\s*\)",
        rf"\s*\b(?:at|on|from|in|via|of|to|over\s+at)\s+(?:the\s+)?"
        rf"(?:pages?\s+|sites?\s+|urls?\s+|shops?\s+|stores?\s+)?{_URL_LIST}",
        rf"\s*[:\-\u2013\u2014]\s*{_URL_LIST}\s*$",
    )
]

_NUM = r"\d{1,3}(?:[,.\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_CODES = r"USD|EUR|GBP|JPY|CHF|CAD|AUD|INR"
_PRICE_PREFIX = re.compile(
    rf"(?<![\w$€£¥₹])(?P<cur>US\$|C\$|A\$|[$€£¥₹]|(?:{_CODES})\s?)\s?(?P<num>{_NUM})"
    rf"(?:\s?(?P<mult>[kKmM])(?![\w]))?"
)
_PRICE_SUFFIX = re.compile(
    rf"(?<![\w.,$€£¥₹])(?P<num>{_NUM})(?:\s?(?P<mult>[kK]))?\s?"
    rf"(?P<cur>[$€£¥₹]|(?:{_CODES}|dollars?|euros?|pounds?|bucks)(?![\w]))",
    re.IGNORECASE,
)
_CURRENCIES = {
    "$": "USD",
    "us$": "USD",
    "usd": "USD",
    "dollar": "USD",
    "dollars": "USD",
    "bucks": "USD",
    "c$": "CAD",
    "cad": "CAD",
    "a$": "AUD",
    "aud": "AUD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "¥": "JPY",
    "jpy": "JPY",
    "₹": "INR",
    "inr": "INR",
    "chf": "CHF",
}
_BELOW = re.compile(
    r"(?:below|under|less\s+than|lower\s+than|cheaper\s+than|beneath|at\s+most|no\s+more\s+than|"
    r"<=?|(?:drops?|dropped|falls?|fell|goes\s+down|comes\s+down|is\s+reduced)\s+to)"
    r"\s*(?:the\s+|a\s+)?$",
    re.IGNORECASE,
)
_ABOVE = re.compile(
    r"(?:above|over|more\s+than|higher\s+than|greater\s+than|exceeds?|exceeding|at\s+least|"
    r">=?|(?:rises?|rose|climbs?|jumps?|goes\s+up)\s+to|tops?)\s*(?:the\s+|a\s+)?$",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)?\s?(?:%|percent\b|per\s+cent\b)", re.IGNORECASE)
_VERSION = re.compile(
    r"(?<![\w$€£¥₹.,/-])(?:v\d+(?:\.\d+){0,3}|\d+(?:\.\d+){1,3})(?:-[0-9A-Za-z.]+)?(?![\w%/-]|\.\d)"
)

_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?"
)
_DAY_NUM = r"\d{1,2}(?:st|nd|rd|th)?"
_YEAR = r"(?:19[5-9]\d|20[0-4]\d)"
_TIME_PREFIX = (
    r"(?i:(?:before|by|until|till|after|on|in|from|since|during|within|between|through|"
    r"no\s+later\s+than|prior\s+to|ahead\s+of|starting)\s+(?:the\s+)?)?"
)
_DATE_CORES = [
    rf"(?:{_DAY_NUM}\s+(?:of\s+)?)?{_MONTH}(?![A-Za-z])(?:\s+{_DAY_NUM}(?![\d]))?(?:,?\s+{_YEAR})?",
    rf"{_YEAR}-\d{{2}}-\d{{2}}",
    rf"\d{{1,2}}[/.]\d{{1,2}}[/.]{_YEAR}(?![\d.])",
    r"\d{1,2}/\d{1,2}/\d{2}(?![\d/])",
    rf"(?:Q[1-4]|H[12])\s+{_YEAR}",
    r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    r"(?i:today|tonight|tomorrow|this\s+(?:week|weekend|month|year|morning|evening|afternoon)|"
    r"next\s+(?:week|weekend|month|year)|(?:the\s+)?end\s+of\s+(?:the\s+)?(?:day|week|month|year|quarter)"
    r"(?:\s+" + _YEAR + r")?)",
    r"(?i:\d+\s+(?:hours?|days?|weeks?|months?|years?))",
    r"(?i:\d{1,2}(?::\d{2})?\s?(?:am|pm))",
    rf"(?<![\w$€£¥₹.,-]){_YEAR}(?![\w%]|[.,]\d)",
]
_DATE = re.compile(rf"(?<![\w]){_TIME_PREFIX}(?:{'|'.join(_DATE_CORES)})(?![\w])")
_TIME_PREPOSITION = re.compile(
    r"^(?:before|by|until|till|after|on|in|from|since|during|within|between|through|"
    r"no\s+later\s+than|prior\s+to|ahead\s+of|starting)\s+(?:the\s+)?",
    re.IGNORECASE,
)

_LEADING = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"^(?:hey|hi|hello|ok|okay|yo)\b[,!.]?\s*",
        r"^(?:please|kindly|pls)\b,?\s*",
        r"^(?:can|could|would|will)\s+you\s+(?:please\s+)?",
        r"^i\s*(?:want|would\s+like|'d\s+like|\u2019d\s+like|wanna|need|wish)\s+(?:you\s+)?(?:to\s+)?",
        r"^(?:i\s+)?(?:want\s+to\s+|would\s+like\s+to\s+)?(?:know|be\s+(?:notified|alerted|told|"
        r"informed|warned|pinged|emailed))\b,?\s*",
        r"^(?:tell|let|notify|alert|email|e-mail|ping|text|message|remind|inform|warn|update|show)"
        r"\s+(?:me|us)(?:\s+know)?(?:\s+(?:by|via)\s+(?:email|e-mail|sms|text))?\b,?\s*",
        r"^(?:send|give)\s+(?:me\s+|us\s+)?(?:an?\s+)?(?:alert|notification|email|e-mail|message|"
        r"ping|heads[- ]up)s?\b,?\s*",
        r"^(?:keep\s+(?:an\s+)?eye\s+on|watch\s+(?:out\s+)?for|look\s+out\s+for|keep\s+track\s+of|"
        r"check\s+(?:whether|if)|monitor|track|watch)\b\s*",
        r"^(?:immediately|right\s+away|asap|as\s+soon\s+as\s+possible)\b,?\s*",
        r"^[:,;\-\u2013\u2014]+\s*",
    )
]
_CONJUNCTION = re.compile(
    r"^(?:when(?:ever)?|if|whether|once|as\s+soon\s+as|the\s+(?:moment|minute|second|day)|"
    r"in\s+case|in\s+the\s+event\s+that|every\s+time|each\s+time|any\s+time|anytime|that)\b\s*",
    re.IGNORECASE,
)
_TOPIC = re.compile(r"^(?:about|of|on|regarding|concerning|for)\b\s*", re.IGNORECASE)
_QUESTION = re.compile(
    r"^(?:when|what|which|who|where|will|is|are|has|have|does|did|do|can)\b", re.IGNORECASE
)
_TRAILING = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"[\s,;:.!-]*\b(?:please|thanks|thank\s+you|thx|asap|right\s+away|immediately)[\s.!]*$",
        r"[\s,;:-]*\b(?:and\s+)?(?:let|tell|notify|alert|email|ping)\s+(?:me|us)(?:\s+know)?[\s.!]*$",
        r"\s+(?:at|on|from|in|across)\s+(?:these|those|the\s+following|the\s+listed|my|our)\s+"
        r"(?:shops?|stores?|sites?|websites?|pages?|urls?|links?|retailers?|sellers?)[\s.!:]*$",
        r"\s+(?:here|there)[\s.!]*$",
        r"[\s.!,;:]+$",
    )
]
_URGENT = re.compile(
    r"\b(?:as\s+soon\s+as|immediately|right\s+away|asap|the\s+(?:moment|minute|second))\b",
    re.IGNORECASE,
)
_RECURRING = re.compile(
    r"\b(?:whenever|every\s+time|each\s+time|any\s+time|anytime|each\s+new|every\s+new|any\s+new)\b",
    re.IGNORECASE,
)

_CATEGORY_RULES: list[tuple[Category, re.Pattern[str]]] = [
    (
        "availability",
        re.compile(
            r"\b(?:tickets?|in\s+stock|back\s+in\s+stock|out\s+of\s+stock|sold\s+out|restock(?:ed|s)?|"
            r"availab(?:le|ility)|pre-?orders?|go(?:es)?\s+on\s+sale|registration|sign-?ups?|"
            r"bookings?|book(?:able)?|reservations?|waitlist|appointments?|slots?|seats?|"
            r"vacanc(?:y|ies)|opens?\s+for)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "price",
        re.compile(
            r"\b(?:prices?|pricing|costs?|cheaper|cheapest|discount(?:ed|s)?|deals?|price\s+drops?)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "security",
        re.compile(
            r"\b(?:cve(?:-\d{4}-\d+)?|vulnerabilit(?:y|ies)|security|advisor(?:y|ies)|exploits?|"
            r"breach(?:es)?|zero-?day|patch(?:es|ed)?|malware|ransomware)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "policy",
        re.compile(
            r"\b(?:polic(?:y|ies)|terms|regulations?|regulatory|laws?|rules?|guidelines?|act|"
            r"compliance|legislation|bill|directive|interest\s+rates?|rates?|tariffs?|ban(?:s|ned)?|"
            r"sanctions?|privacy)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "schedule",
        re.compile(
            r"\b(?:schedules?|timetables?|fixtures?|calendar|opening\s+hours|deadlines?|agenda|"
            r"programme|program|line-?up|end\s+of\s+life|eol|kick-?off|itinerary|dates)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "release",
        re.compile(
            r"\b(?:release[sd]?|releasing|launch(?:es|ed)?|announce(?:s|d|ment)?|unveil(?:s|ed)?|"
            r"versions?|updates?|ships?|shipping|comes?\s+out|out\s+now|drops?\s+on|"
            r"available\s+for\s+download|ga|general\s+availability)\b",
            re.IGNORECASE,
        ),
    ),
    (
        "new_item",
        re.compile(
            r"\b(?:new|latest)\s+(?:\w+\s+)?(?:posts?|articles?|episodes?|videos?|jobs?|listings?|"
            r"papers?|chapters?|issues?|entr(?:y|ies)|items?|openings?|blog|podcasts?|reviews?|"
            r"comments?|products?|models?|filings?)\b",
            re.IGNORECASE,
        ),
    ),
]

_TOKEN = re.compile(r"[A-Za-z0-9$€£¥₹][\w'\u2019.,+#&-]*[\w+#]|[A-Za-z0-9]")

STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any anything are aren't as at be
    because been before being below between both but by can could did do does doing down during
    each either every few for from further get gets getting go goes going gone got had has have
    having he her here hers herself him himself his how i if in into is it its itself just
    know let like me more most my myself need no nor not now of off on once only or other our
    ours ourselves out over own please same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up upon us very
    was we were what whatever when whenever where whether which while who whom why will with
    would you your yours yourself yourselves tell notify alert alerts ping email inform remind
    warn want wants wish soon possible asap immediately right away something somebody someone
    anyone every everything thing things via per ever really actually just still yet
    happen happens happened become becomes became gets getting make makes made look looking
    """.split()
)
_DIRECTION_WORDS = frozenset(
    "below under above over less more than lower higher greater cheaper beneath exceeds "
    "exceeding least most".split()
)
_KEEP_IN_QUERY = _DIRECTION_WORDS | frozenset(
    "before after by until till within since during between not no new".split()
)
_WEAK_WORDS = frozenset({"new", "latest", "next", "first", "last"})
_CONNECTORS = frozenset({"of", "de", "and", "&", "for", "the", "von", "der", "la", "le", "du"})


@dataclass(frozen=True)
class _Span:
    start: int
    end: int
    kind: str  # price | percent | date | version
    text: str


@dataclass(frozen=True)
class SentenceAnalysis:
    """Everything the heuristic reads from one sentence."""

    clause: str
    condition: str
    refined_query: str
    keywords: list[str]
    entities: list[str]
    urls: list[str]
    category: Category
    check_interval_seconds: int
    price_threshold: PriceThreshold | None = None
    prices: list[str] = field(default_factory=list)
    percentages: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    time_constraints: list[str] = field(default_factory=list)
    recurring: bool = False

    @property
    def constraint_keywords(self) -> list[str]:
        """Prices, percentages, versions and dates as a page would show them."""
        dates = [_TIME_PREPOSITION.sub("", t) for t in self.time_constraints]
        return [*self.prices, *self.percentages, *self.versions, *dates]


def analyse(raw_query: str) -> SentenceAnalysis:
    """Read a monitor sentence into a condition, keywords, constraints and named URLs."""
    text = " ".join(raw_query.split())
    urls, text = _extract_urls(text)
    clause, topic = _strip_filler(text)
    question = clause.endswith("?") and bool(_QUESTION.match(clause))
    clause = clause.rstrip(" ?.!")
    if not clause:
        clause = text.rstrip(" ?.!") or raw_query.strip()

    spans = _constraint_spans(clause)
    tokens = [(m.start(), m.end(), _clean_token(m.group())) for m in _TOKEN.finditer(clause)]
    entities = _entities(clause, tokens, spans)
    prices = [s.text for s in spans if s.kind == "price"]
    percentages = [s.text for s in spans if s.kind == "percent"]
    versions = [s.text for s in spans if s.kind == "version"]
    times = [s.text for s in spans if s.kind == "date"]
    price_threshold = _price_threshold(clause, spans)

    category = _category(raw_query, price_threshold is not None)
    interval = CATEGORY_INTERVALS[category]
    if _URGENT.search(raw_query):
        interval = min(interval, HOUR)

    keywords = _keywords(entities, spans, tokens, category)
    return SentenceAnalysis(
        clause=clause,
        condition=_condition(clause, question=question, topic=topic),
        refined_query=_refined_query(clause, tokens, spans),
        keywords=keywords,
        entities=entities,
        urls=urls,
        category=category,
        check_interval_seconds=interval,
        price_threshold=price_threshold,
        prices=prices,
        percentages=percentages,
        versions=versions,
        time_constraints=times,
        recurring=bool(_RECURRING.search(raw_query)),
    )


# --- steps ----------------------------------------------------------------------------------


def _extract_urls(text: str) -> tuple[list[str], str]:
    """URLs named in the sentence (bare domains get https://), removed from the text.

    "Watch <url> for X" and "X at <url>" lose the URL and its preposition; elsewhere the URL
    is replaced by its host so the sentence still reads.
    """
    urls: list[str] = []

    def mark(match: re.Match[str], *, bare: bool) -> str:
        value = match.group().rstrip(_URL_TRAILING)
        tail = match.group()[len(value) :]
        url = f"https://{value}" if bare else value
        if url not in urls:
            urls.append(url)
        return f"\ue000{urls.index(url)}\ue001{tail}"

    text = _URL.sub(lambda m: mark(m, bare=False), text)
    text = _BARE_DOMAIN.sub(lambda m: mark(m, bare=True), text)
    if not urls:
        return urls, text
    for pattern in _URL_CONTEXT:
        text = pattern.sub("", text)

    def host(match: re.Match[str]) -> str:
        url = urls[int(match.group(1))]
        return (urlsplit(url).hostname or url).removeprefix("www.")

    text = re.sub("\ue000(\\d+)\ue001", host, text)
    return urls, " ".join(text.split())


def _strip_filler(text: str) -> tuple[str, bool]:
    """Drop the request wrapped around the condition; True when a topic ("about X") follows."""
    clause = text.strip()
    topic = False
    for _ in range(8):
        before = clause
        for pattern in _LEADING:
            clause = pattern.sub("", clause, count=1)
        if clause != before and _TOPIC.match(clause):
            clause = _TOPIC.sub("", clause, count=1)
            topic = True
        if not (clause.endswith("?") and _QUESTION.match(clause)):
            clause = _CONJUNCTION.sub("", clause, count=1)
        if clause == before:
            break
    for _ in range(4):
        before = clause
        for pattern in _TRAILING:
            clause = pattern.sub("", clause)
        if clause == before:
            break
    return clause.strip(), topic


def _constraint_spans(clause: str) -> list[_Span]:
    """Prices, percentages, dates/time limits and versions, non-overlapping, in text order."""
    spans: list[_Span] = []

    def add(kind: str, start: int, end: int) -> None:
        if any(start < s.end and s.start < end for s in spans):
            return
        spans.append(_Span(start, end, kind, clause[start:end].strip()))

    for pattern in (_PRICE_PREFIX, _PRICE_SUFFIX):
        for match in pattern.finditer(clause):
            add("price", match.start(), match.end())
    for match in _PERCENT.finditer(clause):
        add("percent", match.start(), match.end())
    for match in _DATE.finditer(clause):
        add("date", match.start(), match.end())
    for match in _VERSION.finditer(clause):
        add("version", match.start(), match.end())
    return sorted(spans, key=lambda s: s.start)


def _price_threshold(clause: str, spans: list[_Span]) -> PriceThreshold | None:
    for span in spans:
        if span.kind != "price":
            continue
        match = _PRICE_PREFIX.fullmatch(span.text) or _PRICE_SUFFIX.fullmatch(span.text)
        if match is None:
            continue
        currency = _CURRENCIES.get(match.group("cur").strip().lower(), "USD")
        amount = _amount(match.group("num"), match.group("mult"))
        before = clause[: span.start][-40:]
        direction: PriceDirection = "reaches"
        if _BELOW.search(before):
            direction = "below"
        elif _ABOVE.search(before):
            direction = "above"
        return PriceThreshold(amount=amount, currency=currency, direction=direction, text=span.text)
    return None


def _amount(number: str, multiplier: str | None) -> float:
    """Parse 1,500 / 1.500 / 1.299,99 / 1,299.99 / 12.5 the way a reader would."""
    value = re.sub(r"[\s\u00a0\u202f]", "", number)
    if "," in value and "." in value:
        decimal = "," if value.rfind(",") > value.rfind(".") else "."
        thousands = "." if decimal == "," else ","
        value = value.replace(thousands, "").replace(decimal, ".")
    elif "," in value or "." in value:
        separator = "," if "," in value else "."
        groups = value.split(separator)
        if len(groups) > 2 or len(groups[-1]) == 3:
            value = value.replace(separator, "")
        else:
            value = value.replace(separator, ".")
    scale = {"k": 1e3, "m": 1e6}.get((multiplier or "").lower(), 1.0)
    return float(value) * scale


def _clean_token(token: str) -> str:
    for suffix in ("'s", "\u2019s", "'", "\u2019"):
        if token.endswith(suffix) and len(token) > len(suffix):
            return token[: -len(suffix)]
    return token


def _is_function_word(word: str) -> bool:
    """A stopword, unless written as an acronym ("US", "IT")."""
    return word.lower() in STOPWORDS and not (word.isupper() and len(word) >= 2)


def _is_name_like(token: str) -> bool:
    if _is_function_word(token):
        return False
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    return any(c.isupper() for c in token) or (has_digit and has_alpha)


def _in_span(start: int, end: int, spans: list[_Span], kinds: tuple[str, ...]) -> bool:
    return any(s.kind in kinds and start < s.end and s.start < end for s in spans)


def _entities(clause: str, tokens: list[tuple[int, int, str]], spans: list[_Span]) -> list[str]:
    """Runs of capitalised / alphanumeric tokens ("RTX 5090", "Bank of England", "Python 3.14")."""
    chunks: list[list[int]] = []
    current: list[int] = []  # token indices

    def close() -> None:
        while current and tokens[current[-1]][2].lower() in _CONNECTORS:
            current.pop()
        while current and _is_function_word(tokens[current[0]][2]):
            current.pop(0)
        if current:
            chunks.append(list(current))
        current.clear()

    for index, (start, end, word) in enumerate(tokens):
        if current and clause[tokens[index - 1][1] : start].strip():
            close()  # punctuation (comma, dash, quote) ends a name
        if _in_span(start, end, spans, ("price", "percent", "date")):
            close()
            continue
        is_version = _in_span(start, end, spans, ("version",))
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        name_part = _is_name_like(word) and not is_version
        number_after_name = bool(current) and (is_version or word.isdigit())
        connector = (
            bool(current)
            and word.lower() in _CONNECTORS
            and following is not None
            and _is_name_like(following[2])
            and not clause[end : following[0]].strip()
        )
        if name_part or number_after_name or connector:
            current.append(index)
        else:
            close()
        if word != clause[start:end]:  # possessive: "Taylor Swift's Eras Tour"
            close()
    close()

    result: list[str] = []
    for chunk in chunks:
        words = [tokens[i][2] for i in chunk]
        if len(words) == 1 and words[0].lower() in _WEAK_WORDS:
            continue
        name = " ".join(words)
        if name.lower() not in {r.lower() for r in result}:
            result.append(name)
    return result


def _category(raw_query: str, has_price: bool) -> Category:
    if has_price:
        return "price"
    for category, pattern in _CATEGORY_RULES:
        if pattern.search(raw_query):
            return category
    if _RECURRING.search(raw_query):
        return "new_item"
    return "general"


def _keywords(
    entities: list[str],
    spans: list[_Span],
    tokens: list[tuple[int, int, str]],
    category: Category,
) -> list[str]:
    """Named things first, then the constraints, then the remaining content words."""
    keywords: list[str] = []
    seen: set[str] = set()

    def add(word: str) -> None:
        key = word.lower()
        if key and key not in seen:
            seen.add(key)
            keywords.append(word)

    for entity in entities:
        add(entity)
    entity_words = {w.lower() for e in entities for w in e.split()}
    for span in spans:
        text = _TIME_PREPOSITION.sub("", span.text) if span.kind == "date" else span.text
        if span.kind == "version" and text.lower() in entity_words:
            continue
        add(text)
    if category == "price" and "price" not in seen and "prices" not in seen:
        add("price")
    for start, end, word in tokens:
        lower = word.lower()
        if (
            lower in STOPWORDS
            or lower in _WEAK_WORDS
            or lower in _DIRECTION_WORDS
            or lower in entity_words
            or _in_span(start, end, spans, ("price", "percent", "date", "version"))
            or (len(lower) < 3 and not any(c.isdigit() for c in lower))
        ):
            continue
        add(lower if not _is_name_like(word) else word)
    return keywords[:MAX_KEYWORDS]


def _refined_query(clause: str, tokens: list[tuple[int, int, str]], spans: list[_Span]) -> str:
    """The clause without function words: what to look for, usable as a search query."""
    parts: list[str] = []
    emitted: set[int] = set()
    for start, end, word in tokens:
        span = next((s for s in spans if start < s.end and s.start < end), None)
        if span is not None:
            if id(span) not in emitted:
                emitted.add(id(span))
                parts.append(span.text)
            continue
        if word.lower() in STOPWORDS and word.lower() not in _KEEP_IN_QUERY:
            continue
        parts.append(word)
    while parts and parts[-1].lower() in _KEEP_IN_QUERY - _DIRECTION_WORDS:
        parts.pop()
    return " ".join(parts) or clause


def _condition(clause: str, *, question: bool, topic: bool) -> str:
    """One sentence saying when to alert."""
    if question:
        return f"New information answers the question: {clause}?"
    if topic:
        return f"New information appears about {clause}."
    first, _, rest = clause.partition(" ")
    if first.islower() and first.isalpha():
        first = first[0].upper() + first[1:]
    sentence = f"{first} {rest}".strip() if rest else first
    return sentence + "."
