"""Detection for one changed snapshot: passage diff against the source's recent snapshots,
relevance to the query, optional LLM judgment, one de-duplicated alert, then notification.

The check stays `running` from the content step until this finishes it (`changed` or
`alerted`), so a caller waiting on the check sees the whole decision.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from torale.ai.embeddings import Embedder, get_embedder
from torale.db.session import as_service
from torale.detection.decide import (
    _DATE,
    MODIFIED_SIMILARITY,
    THRESHOLDS,
    Change,
    ChangeKind,
    Scored,
    SeenLines,
    already_reported,
    extractive_summary,
    facts,
    fingerprint,
    lost_lines,
    magnitude,
    new_sentences,
    release_key,
    score,
    severity,
)
from torale.detection.judge import LLMJudge
from torale.detection.signals import mentions_planned, read_query, stems, versions
from torale.queue import NotifyAlert, enqueue
from torale.worker_runtime import WorkerRuntime

log = structlog.get_logger(__name__)

PAGE_COSINE_THRESHOLD = 0.85
STATUS_LINE_MAX = 60
HEADING_MAX = 100
HEADER_MAX = 200
MAX_CANDIDATES = 12
QUERY_VECTOR_TTL = 7 * 86400


@dataclass(frozen=True)
class Snapshot:
    id: uuid.UUID
    hashes: list[str]
    kinds: list[str]
    content: str


@dataclass(frozen=True)
class Job:
    check_id: uuid.UUID
    source_id: uuid.UUID
    query_id: uuid.UUID
    user_id: uuid.UUID
    url: str
    raw_query: str
    refined_query: str | None
    condition: str | None
    sensitivity: str
    current: Snapshot
    window: list[Snapshot]  # newest first


_LOAD = text(
    """
    select c.id as check_id, c.monitored_source_id, c.user_query_id, c.user_id, s.url,
           q.raw_query, q.refined_query, q.condition, q.sensitivity,
           sc.id as snapshot_id, sc.passage_hashes, sc.passage_kinds, sc.content, sc.fetched_at
    from source_checks c
    join scraped_contents sc on sc.id = c.scraped_content_id
    join monitored_sources s on s.id = c.monitored_source_id
    join user_queries q on q.id = c.user_query_id
    where c.id = :check and c.scraped_content_id = :snapshot and c.status = 'running'
    """
)

_WINDOW = text(
    """
    select id, passage_hashes, passage_kinds, content from scraped_contents
    where monitored_source_id = :source and fetched_at < :at and id <> :current
    order by fetched_at desc limit :window
    """
)

_TEXTS = text(
    """
    select passage_hash, passage_text from content_embeddings
    where monitored_source_id = :source and model_name = :model and passage_hash = any(:hashes)
    """
)

# the nearest passage of the previous snapshot for each new passage, by pgvector cosine distance
_NEAREST = text(
    """
    select n.passage_hash as new_hash, o.passage_hash as old_hash,
           1 - (n.embedding <=> o.embedding) as similarity
    from content_embeddings n
    cross join lateral (
      select e.passage_hash, e.embedding from content_embeddings e
      where e.monitored_source_id = :source and e.model_name = :model
        and e.passage_hash = any(:old)
      order by e.embedding <=> n.embedding limit 1
    ) o
    where n.monitored_source_id = :source and n.model_name = :model and n.passage_hash = any(:new)
    """
)

_INSERT_ALERT = text(
    """
    insert into change_alerts (user_id, user_query_id, monitored_source_id, check_id, severity,
                               score, summary, details, fingerprint)
    values (:user, :query, :source, :check, :severity, :score, :summary, cast(:details as jsonb),
            :fingerprint)
    on conflict (user_query_id, fingerprint) do nothing
    returning id
    """
)

_REPORTED = text(
    "select details -> 'facts' from change_alerts where user_query_id = :query"
    " order by created_at desc limit 200"
)

_FINISH = text(
    """
    update source_checks set status = 'succeeded', outcome = :outcome, finished_at = now()
    where id = :check and status = 'running'
    """
)


async def load(
    session: AsyncSession, check_id: uuid.UUID, snapshot_id: uuid.UUID, window: int
) -> Job | None:
    row = (await session.execute(_LOAD, {"check": check_id, "snapshot": snapshot_id})).first()
    if row is None:
        return None
    previous = (
        await session.execute(
            _WINDOW,
            {
                "source": row.monitored_source_id,
                "at": row.fetched_at,
                "current": row.snapshot_id,
                "window": window,
            },
        )
    ).all()
    return Job(
        check_id=row.check_id,
        source_id=row.monitored_source_id,
        query_id=row.user_query_id,
        user_id=row.user_id,
        url=row.url,
        raw_query=row.raw_query,
        refined_query=row.refined_query,
        condition=row.condition,
        sensitivity=row.sensitivity,
        current=Snapshot(
            row.snapshot_id, list(row.passage_hashes), list(row.passage_kinds), row.content
        ),
        window=[
            Snapshot(p.id, list(p.passage_hashes), list(p.passage_kinds), p.content)
            for p in previous
        ],
    )


@dataclass(frozen=True)
class Where:
    """Where a passage stands: its heading path ("Changelog > 0.28.0 (28th November) > Added
    — Released"), and its release section (the innermost heading that names a version, a date
    or a plan, with the status line under it), which the version and plan gates read."""

    context: str
    section: str
    headings: str = ""  # every heading above, the page title included
    columns: str = ""  # for a table row, the table's first row (its column headers)


def _heading(kind: str) -> tuple[bool, int]:
    name, _, level = kind.partition(":")
    return name == "heading", int(level) if level.isdigit() else 0


def _is_release(heading: str) -> bool:
    return bool(versions(heading) or mentions_planned(heading) or _DATE.search(heading))


def _path(stack: list[tuple[int, str, str, bool]], title: int) -> str:
    """The headings above, without the page's title (its one h1, unless a release): every
    passage is under it, so it says nothing about this one (the page counts half anyway)."""
    return " > ".join(h[1][:HEADING_MAX] for h in stack if h[0] != title or h[3])


def _section(stack: list[tuple[int, str, str, bool]]) -> str:
    inner = next((h for h in reversed(stack) if h[3]), None)
    return " — ".join(p for p in (inner[1], inner[2]) if p) if inner else ""


def headings_above(snapshot: Snapshot, texts: dict[str, str]) -> list[Where]:
    """For each passage, the headings it falls under (by level; a heading of unknown level
    is a release section when it names a version, date or plan, else a subsection of one),
    and the short status line under its release heading ("Released 2024-06-01"). A heading's
    own context is its parents and the status line below it."""
    kinds = [
        snapshot.kinds[i] if i < len(snapshot.kinds) else "" for i in range(len(snapshot.hashes))
    ]
    lines = [texts.get(h, "") for h in snapshot.hashes]
    stack: list[tuple[int, str, str, bool]] = []  # (level, heading, status line, is release)
    found: list[Where] = []
    header = ""  # the first row of the table being read
    title = 1 if kinds.count("heading:1") == 1 else 0  # several h1s are sections, not a title
    for index, text_ in enumerate(lines):
        is_heading, level = _heading(kinds[index])
        columns = header if kinds[index] == "table_row" and header else ""
        if kinds[index] != "table_row":
            header = ""
        elif not header:
            header = text_[:HEADER_MAX]
        if is_heading:
            following = lines[index + 1] if index + 1 < len(lines) else ""
            next_is_heading = index + 1 < len(kinds) and _heading(kinds[index + 1])[0]
            below = following if not next_is_heading and len(following) <= STATUS_LINE_MAX else ""
            release = _is_release(text_)
            if not level:
                level = 2 if release else 3
            while stack and stack[-1][0] >= level:
                stack.pop()
            parents = _path(stack, title)
            found.append(
                Where(
                    " — ".join(p for p in (parents, below) if p),
                    " — ".join(p for p in (text_, below) if p) if release else _section(stack),
                    " > ".join(h[1] for h in stack),
                )
            )
            stack.append((level, text_, below, release))
            continue
        path = _path(stack, title)
        inner = next((h for h in reversed(stack) if h[3]), None)
        status = inner[2] if inner else (stack[-1][2] if stack else "")
        found.append(
            Where(
                " — ".join(p for p in (path, status) if p and p != text_),
                _section(stack),
                " > ".join(h[1] for h in stack),
                columns,
            )
        )
    return found  # fmt: skip


@dataclass(frozen=True)
class Diff:
    changes: list[Change]
    heading_words: frozenset[str]  # stemmed words of the page's section headings


def _replacements(
    fresh: list[str],
    gone: list[str],
    nearest: dict[str, tuple[str, float]],
    slot: dict[str, tuple[str, str]],
    old_slot: dict[str, tuple[str, str]],
) -> dict[str, str]:
    """Which vanished passage each new one replaced: its nearest old passage when close
    (cosine >= MODIFIED_SIMILARITY), else the one vanished passage of the same kind that
    stood in the same place (same headings) when it alone was replaced there ("Registration
    will open in December" -> "Registration is now open"). `slot`: (headings, kind)."""
    replaced: dict[str, str] = {}
    for new_hash in fresh:
        old_hash, similarity = nearest.get(new_hash, ("", 0.0))
        if similarity >= MODIFIED_SIMILARITY and old_hash in gone:
            replaced[new_hash] = old_hash
    taken = set(replaced.values())
    places: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for new_hash in fresh:
        if new_hash not in replaced and slot.get(new_hash, ("", ""))[0]:
            places.setdefault(slot[new_hash], ([], []))[0].append(new_hash)
    for old_hash in gone:
        if old_hash not in taken and old_slot.get(old_hash, ("", ""))[0]:
            places.setdefault(old_slot[old_hash], ([], []))[1].append(old_hash)
    for added, vanished in places.values():
        if len(added) == 1 and len(vanished) == 1:
            replaced[added[0]] = vanished[0]
    return replaced


def _before(sections: dict[frozenset[str], str], section: str) -> str | None:
    """The same release section (by the versions its heading names) in the previous snapshot."""
    key = release_key(section)
    return sections.get(key) if key else None


def _change(kind: ChangeKind, before: str | None, after: str | None, place: Where,
            **found: Any) -> Change:  # fmt: skip
    """A change read where it stands on its page."""
    return Change(kind, before, after, place.context, section=place.section,
                  headings=place.headings, columns=place.columns, **found)  # fmt: skip


async def diff(session: AsyncSession, embedder: Embedder, job: Job) -> Diff:
    """New passages (not seen in the recent window) as added/modified; vanished ones as removed."""
    seen = {h for snap in job.window for h in snap.hashes}
    previous = job.window[0] if job.window else None
    new_hashes = [h for h in dict.fromkeys(job.current.hashes) if h not in seen]
    old_hashes = list(dict.fromkeys(previous.hashes)) if previous else []
    gone = [h for h in old_hashes if h not in set(job.current.hashes)]
    params = {"source": job.source_id, "model": embedder.model_name}
    texts: dict[str, str] = dict(
        (await session.execute(_TEXTS, {**params, "hashes": [*job.current.hashes, *old_hashes]}))
        .tuples()
        .all()
    )
    nearest: dict[str, tuple[str, float]] = {}
    if new_hashes and old_hashes:
        for new_hash, old_hash, similarity in await session.execute(
            _NEAREST, {**params, "new": new_hashes, "old": old_hashes}
        ):
            nearest[new_hash] = (old_hash, float(similarity))
    where = dict(zip(job.current.hashes, headings_above(job.current, texts), strict=False))
    nowhere = Where("", "")
    seen_lines = SeenLines([snap.content for snap in job.window])
    kinds = dict(zip(job.current.hashes, job.current.kinds, strict=False))
    old_places = headings_above(previous, texts) if previous else []
    old_where = dict(zip(previous.hashes, old_places, strict=False)) if previous else {}
    sections_before: dict[frozenset[str], str] = {}
    for place in old_places:
        sections_before.setdefault(release_key(place.section), place.section)
    fresh = [h for h in new_hashes if h in texts]
    old_kinds = dict(zip(previous.hashes, previous.kinds, strict=False)) if previous else {}
    slot = {h: (where[h].context, kinds.get(h, "")) for h in fresh if h in where}
    old_slot = {h: (old_where[h].context, old_kinds.get(h, "")) for h in gone if h in old_where}
    replaced = _replacements(fresh, gone, nearest, slot, old_slot)
    changes: list[Change] = []
    for new_hash in fresh:
        after = texts[new_hash]
        novel, entries = seen_lines.novelty(after)
        old_hash = replaced.get(new_hash)
        if not novel:
            # every line was on the page recently (re-cut, reordered or restored); what it
            # lost may still be news: "macOS Monterey (12)" dropped from a merged list
            lost = lost_lines(texts.get(old_hash or ""), job.current.content)
            if lost:
                changes.append(
                    _change("removed", "\n".join(lost), None, where.get(new_hash, nowhere))
                )
            continue
        if kinds.get(new_hash, "").startswith("heading") and not _is_release(after):
            entries = 0  # a new heading alone is structure; a release heading is an entry
        if old_hash and old_hash in texts:  # a changed paragraph: only its new sentences
            novel = tuple(new_sentences(line, texts[old_hash]) for line in novel)
        place = where.get(new_hash, nowhere)
        changes.append(
            _change("modified" if old_hash else "added", texts.get(old_hash or ""), after, place,
                    novel=novel, new_entries=entries,
                    section_before=_before(sections_before, place.section))
        )  # fmt: skip
    matched_old = set(replaced.values())
    for old_hash in gone:
        if old_hash not in matched_old and old_hash in texts:
            changes.append(_change("removed", texts[old_hash], None, old_where[old_hash]))
    heading_words = {
        word
        for h, kind in zip(job.current.hashes, job.current.kinds, strict=False)
        if kind.startswith("heading") and kind != "heading:1"
        for word in stems(texts.get(h, ""))
    }
    return Diff(changes, frozenset(heading_words))


async def query_vector(runtime: WorkerRuntime, embedder: Embedder, job: Job) -> np.ndarray:
    """The query's embedding, cached in Redis per query text and model."""
    text_ = " ".join(t for t in (job.refined_query or job.raw_query, job.condition) if t)
    key = (
        "torale:qvec:"
        + hashlib.blake2b(f"{embedder.model_name}\n{text_}".encode(), digest_size=16).hexdigest()
    )
    cached = await runtime.redis.get(key)
    if cached:
        return np.frombuffer(cached, dtype=np.float32)
    vector = (await embedder.embed([text_]))[0].astype(np.float32)
    await runtime.redis.set(key, vector.tobytes(), ex=QUERY_VECTOR_TTL)
    return vector


async def decide_passages(
    runtime: WorkerRuntime, embedder: Embedder, job: Job, found: Diff
) -> tuple[list[Scored], str] | None:
    """(relevant changes, summary) when the condition is met, else None."""
    signals = read_query(job.raw_query, job.refined_query, job.condition)
    changes = found.changes
    considered = (
        changes if signals.wants_removal else [c for c in changes if c.kind != "removed"] or changes
    )
    if not considered:
        return None
    settings = runtime.settings
    threshold = THRESHOLDS.get(job.sensitivity, THRESHOLDS["medium"])
    page = job.current.content[:3000]

    def weigh(change: Change, semantic: float) -> Scored:
        return score(signals, dataclasses.replace(change, semantic=semantic), page=page,
                     elsewhere=found.heading_words)  # fmt: skip

    # the score only grows with meaning: a change that cannot pass even at cosine 1 (a view
    # counter, a spelling fix) is not embedded; the LLM, when there is one, sees them all
    hopeful = [
        i
        for i, c in enumerate(considered)
        if LLMJudge.configured(settings) or weigh(c, 1.0).relevance >= threshold
    ]
    semantic = dict.fromkeys(range(len(considered)), 0.0)
    if hopeful:
        qvec = await query_vector(runtime, embedder, job)
        vectors = await embedder.embed([considered[i].with_context[:2000] for i in hopeful])
        semantic.update((i, float(np.dot(qvec, v))) for i, v in zip(hopeful, vectors, strict=True))
    scored = sorted(
        (weigh(c, semantic[i]) for i, c in enumerate(considered)),
        key=lambda s: s.relevance,
        reverse=True,
    )
    log.debug(
        "detection scores",
        threshold=threshold,
        top=[(round(s.relevance, 3), round(s.change.semantic, 3), s.change.kind, s.reasons,
              s.change.with_context[:120]) for s in scored[:4]],
    )  # fmt: skip
    passing = [s for s in scored if s.relevance >= threshold]
    if LLMJudge.configured(settings):
        candidates = scored[:5]
        verdict = await LLMJudge(settings).judge(job.condition or job.raw_query, candidates)
        if verdict is not None:
            if not (verdict.relevant and verdict.condition_met):
                return None
            return (passing or candidates[:1]), verdict.summary or extractive_summary(candidates)
    if not passing:
        return None
    return passing, extractive_summary(passing)


def baseline_decision(mode: str, job: Job, similarity: float | None) -> bool:
    if mode == "any_text_change":
        return bool(job.window) and job.current.content != job.window[0].content
    return similarity is not None and similarity < PAGE_COSINE_THRESHOLD


async def detect_changes(
    runtime: WorkerRuntime, check_id: uuid.UUID, snapshot_id: uuid.UUID
) -> str | None:
    """Decide on one changed snapshot; returns the check's outcome, None when nothing to do."""
    structlog.contextvars.bind_contextvars(check_id=str(check_id))
    try:
        return await _detect(runtime, check_id, snapshot_id)
    finally:
        structlog.contextvars.unbind_contextvars("check_id")


async def _detect(
    runtime: WorkerRuntime, check_id: uuid.UUID, snapshot_id: uuid.UUID
) -> str | None:
    settings = runtime.settings
    embedder = get_embedder(settings)
    async with as_service(runtime.sessions) as session:
        job = await load(session, check_id, snapshot_id, settings.detection_window)
        if job is None:
            log.info("check not awaiting detection; nothing to do")
            return None
        found = await diff(session, embedder, job)
        changes = found.changes

    mode = settings.detection_mode
    decision: tuple[list[Scored], str] | None
    if mode == "passages":
        decision = await decide_passages(runtime, embedder, job, found)
    else:
        similarity = None
        if mode == "page_cosine" and job.window:
            pages = await embedder.embed([job.current.content[:4000], job.window[0].content[:4000]])
            similarity = float(np.dot(pages[0], pages[1]))
        met = baseline_decision(mode, job, similarity)
        top = [Scored(c, 1.0) for c in changes[:3]]
        decision = (
            (
                top or [Scored(Change("modified", None, job.current.content[:500]), 1.0)],
                "The page changed.",
            )
            if met
            else None
        )

    alert_id = None
    async with as_service(runtime.sessions) as session:
        if decision is not None:
            alert_id = await record_alert(session, job, *decision, mode=mode)
        await session.execute(
            _FINISH, {"check": check_id, "outcome": "alerted" if alert_id else "changed"}
        )
    if alert_id is not None:
        enqueue(runtime.celery, NotifyAlert(alert_id=alert_id))
        log.info("alert created", alert_id=str(alert_id))
        return "alerted"
    return "changed"


async def record_alert(
    session: AsyncSession, job: Job, relevant: list[Scored], summary: str, *, mode: str
) -> uuid.UUID | None:
    """One alert per check; None when these facts were already reported for this query."""
    top = relevant[:MAX_CANDIDATES]
    best = top[0]
    reported_facts = facts([s.change for s in top[:3]])
    if mode == "passages":
        earlier = list(await session.scalars(_REPORTED, {"query": job.query_id}))
        if earlier and not read_query(job.raw_query).recurring:
            # "tell me when X happens" is met once; "whenever"/"if it changes" asks for more
            log.info("the query's one-time condition was already reported; no new alert")
            return None
        dates_matter = read_query(job.raw_query, job.refined_query, job.condition).allows_planned
        if already_reported(
            [list(f) for f in earlier if f], reported_facts, dates_matter=dates_matter
        ):
            log.info("facts already reported for this query; no new alert")
            return None
        key = fingerprint([s.change for s in top[:3]])
    else:
        key = hashlib.blake2b(job.current.content.encode(), digest_size=16).hexdigest()
    details: dict[str, Any] = {
        "url": job.url,
        "facts": reported_facts,
        "changes": [
            {"kind": s.change.kind, "before": s.change.before, "after": s.change.after,
             "section": s.change.context or None, "relevance": round(s.relevance, 3),
             "new_lines": list(s.change.novel) if s.change.novel is not None else None,
             "reasons": list(s.reasons)}
            for s in top
        ],
    }  # fmt: skip
    return await session.scalar(
        _INSERT_ALERT,
        {
            "user": job.user_id,
            "query": job.query_id,
            "source": job.source_id,
            "check": job.check_id,
            "severity": severity(best.relevance, magnitude(best.change)),
            "score": round(best.relevance, 4),
            "summary": summary,
            "details": json.dumps(details),
            "fingerprint": key,
        },
    )
