"""Checks of sources: fetch politely, short-circuit what did not change, extract passages,
embed only new ones, store the snapshot, and hand a changed snapshot to detection.

A batch of checks is claimed in one statement and run concurrently on the worker's loop; the
checks' embeddings share forward passes and their quick outcomes (304, unchanged) are written
together. Every outcome, failures included, is written to `source_checks` and
`monitored_sources` for that check alone, so the database is the truth and a lost check is
re-driven by the scheduler's sweep. Once the batch is done, one `DetectSnapshots` message
carries its changed snapshots to detection (one queue hop per batch, not per page); until
detection records its outcome a check stays `running` with its snapshot, so a lost message or
a failed detection is re-driven by the sweep.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from torale.ai.embeddings import Embedder, get_embedder, shape_memo
from torale.coalesce import Coalescer
from torale.content.extract import Document, Passage, UnsupportedContent, extract
from torale.db.session import as_service
from torale.net.fetch import Fetcher, FetchError, FetchResult
from torale.queue import DetectSnapshots, SnapshotRef, enqueue
from torale.worker_runtime import WorkerRuntime

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ClaimedCheck:
    check_id: uuid.UUID
    source_id: uuid.UUID
    user_id: uuid.UUID
    url: str
    etag: str | None
    last_modified: str | None
    last_body_hash: str | None
    last_content_hash: str | None


def fetcher_for(runtime: WorkerRuntime) -> Fetcher:
    """The process's one fetcher (one HTTP client, robots cache and domain gate)."""
    if "fetcher" not in runtime.extras:
        runtime.extras["fetcher"] = Fetcher(runtime.settings, redis=runtime.redis)
    fetcher: Fetcher = runtime.extras["fetcher"]
    return fetcher


_CLAIM = text(
    "update source_checks c set status = 'running', started_at = now(),"
    " attempts = c.attempts + 1"
    " from monitored_sources s"
    " where c.id = any(:ids) and c.status = 'queued' and s.id = c.monitored_source_id"
    " returning c.id, s.id as source_id, s.user_id, s.url, s.etag, s.last_modified,"
    " s.last_body_hash, s.last_content_hash"
)


async def claim_many(session: AsyncSession, check_ids: Sequence[uuid.UUID]) -> list[ClaimedCheck]:
    """queued -> running, atomically, for those of `check_ids` still queued (others are skipped)."""
    rows = (await session.execute(_CLAIM, {"ids": list(check_ids)})).all()
    return [
        ClaimedCheck(row.id, row.source_id, row.user_id, row.url, row.etag, row.last_modified,
                     row.last_body_hash, row.last_content_hash)
        for row in rows
    ]  # fmt: skip


async def claim(session: AsyncSession, check_id: uuid.UUID) -> ClaimedCheck | None:
    """queued -> running, atomically; None when the check is not (or no longer) queued."""
    claimed = await claim_many(session, [check_id])
    return claimed[0] if claimed else None


@dataclass(frozen=True)
class QuickFinish:
    """A check that ended before extraction or without a new snapshot (304, unchanged)."""

    check: ClaimedCheck
    outcome: str
    http_status: int
    etag: str | None
    last_modified: str | None
    body_hash: str | None = None


_FINISH_MANY = text(
    """
    with done as (
      select * from unnest(cast(:checks as uuid[]), cast(:sources as uuid[]),
                           cast(:outcomes as text[]), cast(:statuses as int[]),
                           cast(:etags as text[]), cast(:last_modifieds as text[]),
                           cast(:body_hashes as text[]))
        as d(check_id, source_id, outcome, http_status, etag, last_modified, body_hash)
    ), finished as (
      update source_checks c set status = 'succeeded', outcome = d.outcome, finished_at = now(),
        http_status = d.http_status, scraped_content_id = null, error = null, error_class = null
      from done d where c.id = d.check_id
    )
    update monitored_sources s set last_checked_at = now(), consecutive_failures = 0,
      last_error = null, etag = coalesce(d.etag, s.etag),
      last_modified = coalesce(d.last_modified, s.last_modified),
      last_body_hash = coalesce(d.body_hash, s.last_body_hash)
    from done d where s.id = d.source_id
    """
)


async def finish_many(session: AsyncSession, done: Sequence[QuickFinish]) -> None:
    """`finish` for many checks in one statement (each check and source is its own row)."""
    await session.execute(
        _FINISH_MANY,
        {
            "checks": [d.check.check_id for d in done],
            "sources": [d.check.source_id for d in done],
            "outcomes": [d.outcome for d in done],
            "statuses": [d.http_status for d in done],
            "etags": [d.etag for d in done],
            "last_modifieds": [d.last_modified for d in done],
            "body_hashes": [d.body_hash for d in done],
        },
    )


def _quick_finisher(runtime: WorkerRuntime) -> Coalescer[QuickFinish, None]:
    """This loop's writer of quick outcomes: checks that end together share one transaction."""
    if "quick_finisher" not in runtime.extras:

        async def write(done: list[QuickFinish]) -> list[None]:
            async with as_service(runtime.sessions) as session:
                await finish_many(session, done)
            return [None] * len(done)

        runtime.extras["quick_finisher"] = Coalescer(write, max_batch=500)
    finisher: Coalescer[QuickFinish, None] = runtime.extras["quick_finisher"]
    return finisher


async def finish(
    session: AsyncSession,
    check: ClaimedCheck,
    *,
    outcome: str,
    http_status: int | None,
    result: FetchResult | None = None,
    body_hash: str | None = None,
    content_hash: str | None = None,
    snapshot_id: uuid.UUID | None = None,
    detection_pending: bool = False,
) -> None:
    """A successful fetch: the source is healthy again and remembers what it saw. With detection
    pending the check stays `running` until the detector has decided (it finishes the check)."""
    await session.execute(
        text(
            "update source_checks set status = case when :pending then 'running' else 'succeeded' end,"
            " outcome = :outcome, finished_at = case when :pending then null else now() end,"
            " http_status = :http_status, scraped_content_id = :snapshot, error = null,"
            " error_class = null where id = :id"
        ),
        {
            "outcome": outcome,
            "http_status": http_status,
            "snapshot": snapshot_id,
            "pending": detection_pending,
            "id": check.check_id,
        },
    )
    await session.execute(
        text(
            "update monitored_sources set last_checked_at = now(), consecutive_failures = 0,"
            " last_error = null, etag = coalesce(:etag, etag),"
            " last_modified = coalesce(:last_modified, last_modified),"
            " last_body_hash = coalesce(:body_hash, last_body_hash),"
            " last_content_hash = coalesce(:content_hash, last_content_hash)"
            " where id = :id"
        ),
        {
            "etag": result.etag if result else None,
            "last_modified": result.last_modified if result else None,
            "body_hash": body_hash,
            "content_hash": content_hash,
            "id": check.source_id,
        },
    )


async def fail(
    session: AsyncSession,
    check: ClaimedCheck,
    *,
    error_class: str,
    message: str,
    http_status: int | None,
    max_failures: int,
) -> None:
    """A failed check: recorded with its cause; the source errors out after too many in a row,
    and a robots.txt refusal parks it at once (retrying would not change the answer)."""
    await session.execute(
        text(
            "update source_checks set status = 'failed', outcome = 'error', finished_at = now(),"
            " http_status = :http_status, error_class = :error_class, error = :error where id = :id"
        ),
        {"http_status": http_status, "error_class": error_class, "error": message[:2000],
         "id": check.check_id},
    )  # fmt: skip
    await session.execute(
        text(
            "update monitored_sources set last_checked_at = now(),"
            " consecutive_failures = consecutive_failures + 1, last_error = :error,"
            " status = case"
            "   when :disallowed then 'disallowed'"
            "   when consecutive_failures + 1 >= :max and status = 'active' then 'errored'"
            "   else status end"
            " where id = :id"
        ),
        {
            "error": f"{error_class}: {message}"[:2000],
            "disallowed": error_class == "robots_disallowed",
            "max": max_failures,
            "id": check.source_id,
        },
    )


async def new_passages(
    session: AsyncSession, embedder: Embedder, check: ClaimedCheck, document: Document
) -> list[Passage]:
    """Passages this source has no embedding of yet (for this model), each once."""
    hashes = [p.hash for p in document.passages]
    known = set(
        (
            await session.execute(
                text(
                    "select passage_hash from content_embeddings where monitored_source_id = :s"
                    " and model_name = :m and passage_hash = any(:hashes)"
                ),
                {"s": check.source_id, "m": embedder.model_name, "hashes": hashes},
            )
        ).scalars()
    )
    fresh: dict[str, Passage] = {}
    for passage in document.passages:
        if passage.hash not in known:
            fresh.setdefault(passage.hash, passage)
    return list(fresh.values())


async def store_snapshot(
    session: AsyncSession,
    embedder: Embedder,
    check: ClaimedCheck,
    document: Document,
    result: FetchResult,
    passages: list[Passage],
    vectors: np.ndarray,
) -> uuid.UUID:
    """The snapshot row plus the embeddings of its new passages."""
    snapshot_id = (
        await session.execute(
            text(
                "insert into scraped_contents (user_id, monitored_source_id, check_id, content,"
                " content_hash, content_type, passage_hashes, passage_kinds, http_status)"
                " values (:user, :source, :check, :content, :hash, :ctype, :hashes, :kinds, :status)"
                " returning id"
            ),
            {
                "user": check.user_id,
                "source": check.source_id,
                "check": check.check_id,
                "content": document.text,
                "hash": document.text_hash,
                "ctype": result.content_type,
                "hashes": [p.hash for p in document.passages],
                "kinds": [p.label for p in document.passages],
                "status": result.status,
            },
        )
    ).scalar_one()
    if passages:
        await session.execute(
            text(
                "insert into content_embeddings (user_id, monitored_source_id, scraped_content_id,"
                " passage_index, passage_hash, passage_text, model_name, dims, embedding)"
                " select :user, :source, :snapshot, i, h, t, :model, :dims, cast(v as vector)"
                " from unnest(cast(:indexes as int[]), cast(:hashes as text[]),"
                "  cast(:texts as text[]), cast(:vectors as text[])) as x(i, h, t, v)"
                " on conflict (monitored_source_id, model_name, passage_hash) do nothing"
            ),
            {
                "user": check.user_id,
                "source": check.source_id,
                "snapshot": snapshot_id,
                "model": embedder.model_name,
                "dims": embedder.dims,
                "indexes": [p.index for p in passages],
                "hashes": [p.hash for p in passages],
                "texts": [p.text for p in passages],
                "vectors": ["[" + ",".join(f"{x:.6g}" for x in row) + "]" for row in vectors],
            },
        )
    log.info("snapshot stored", passages=len(document.passages), embedded=len(passages))
    return snapshot_id


async def check_source(
    runtime: WorkerRuntime, source_id: uuid.UUID, check_id: uuid.UUID
) -> str | None:
    """Run one check; returns its outcome, or None when there was nothing to do (idempotent)."""
    return (await check_sources(runtime, [check_id]))[check_id]


async def check_sources(
    runtime: WorkerRuntime, check_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    """Run a batch of checks concurrently; each id maps to its outcome, None for a check that was
    not queued (already run: idempotent). A failure is recorded for its own check only."""
    async with as_service(runtime.sessions) as session:
        claimed = await claim_many(session, check_ids)
    outcomes: dict[uuid.UUID, str | None] = dict.fromkeys(check_ids)
    if len(claimed) < len(outcomes):
        log.info("checks not queued; nothing to do for them", skipped=len(outcomes) - len(claimed))
    handoff: list[SnapshotRef] = []
    results = await asyncio.gather(*(_run(runtime, check, handoff) for check in claimed))
    outcomes.update(zip((check.check_id for check in claimed), results, strict=True))
    if handoff:
        _hand_to_detection(runtime, handoff)
    return outcomes


def _hand_to_detection(runtime: WorkerRuntime, snapshots: list[SnapshotRef]) -> None:
    """One message for the batch's changed snapshots; if it cannot be sent, their checks stay
    `running` with the snapshot and the sweep hands each to detection."""
    try:
        enqueue(runtime.celery, DetectSnapshots(snapshots=snapshots))
    except Exception:
        log.exception("cannot enqueue detection; the scheduler's sweep re-drives it",
                      checks=[str(ref.check_id) for ref in snapshots])  # fmt: skip


async def _run(runtime: WorkerRuntime, check: ClaimedCheck, handoff: list[SnapshotRef]) -> str:
    """One claimed check; an unexpected error is recorded as this check's failure."""
    with structlog.contextvars.bound_contextvars(
        source_id=str(check.source_id), check_id=str(check.check_id)
    ):
        try:
            return await _check(runtime, check, handoff)
        except Exception as exc:
            log.exception("check crashed")
            try:
                async with as_service(runtime.sessions) as session:
                    await fail(session, check, error_class="internal_error",
                               message=f"{type(exc).__name__}: {exc}", http_status=None,
                               max_failures=runtime.settings.max_consecutive_failures)  # fmt: skip
            except Exception:
                log.exception("cannot record the crash; the scheduler's sweep re-drives the check")
            return "error"


async def _check(runtime: WorkerRuntime, check: ClaimedCheck, handoff: list[SnapshotRef]) -> str:
    """Fetch, short-circuit, extract, embed, store; a snapshot to compare joins `handoff`."""
    settings = runtime.settings
    try:
        result = await fetcher_for(runtime).fetch(
            check.url, etag=check.etag, last_modified=check.last_modified
        )
    except FetchError as exc:
        async with as_service(runtime.sessions) as session:
            await fail(session, check, error_class=exc.error_class, message=exc.message,
                       http_status=exc.status, max_failures=settings.max_consecutive_failures)  # fmt: skip
        log.info("check failed", error_class=exc.error_class, error=exc.message)
        return "error"

    quick = _quick_finisher(runtime)
    if result.not_modified:
        await quick(QuickFinish(check, "not_modified", 304, result.etag, result.last_modified))
        return "not_modified"

    body_hash = hashlib.blake2b(result.body, digest_size=16).hexdigest()
    if body_hash == check.last_body_hash:
        await quick(
            QuickFinish(check, "unchanged", result.status, result.etag, result.last_modified)
        )
        return "unchanged"

    try:
        document = extract(result.body, result.content_type, url=result.url)
    except UnsupportedContent as exc:
        async with as_service(runtime.sessions) as session:
            await fail(session, check, error_class="unsupported_content", message=str(exc),
                       http_status=result.status, max_failures=settings.max_consecutive_failures)  # fmt: skip
        return "error"

    if document.text_hash == check.last_content_hash:
        await quick(QuickFinish(check, "unchanged", result.status, result.etag,
                                result.last_modified, body_hash))  # fmt: skip
        return "unchanged"

    embedder = get_embedder(settings)
    async with as_service(runtime.sessions) as session:
        passages = await new_passages(session, embedder, check, document)
    # embedding is CPU work: no transaction is held open meanwhile
    memo = shape_memo(embedder)  # a passage that differs only in its numbers reuses a vector
    vectors = (
        await memo.embed([p.text for p in passages], scope=str(check.user_id))
        if passages
        else np.zeros((0, 0))
    )
    compare = check.last_content_hash is not None  # the first snapshot is the baseline
    async with as_service(runtime.sessions) as session:
        snapshot_id = await store_snapshot(
            session, embedder, check, document, result, passages, vectors
        )
        await finish(
            session, check, outcome="changed", http_status=result.status, result=result,
            body_hash=body_hash, content_hash=document.text_hash, snapshot_id=snapshot_id,
            detection_pending=compare,
        )  # fmt: skip
    if compare:
        handoff.append(SnapshotRef(check_id=check.check_id, scraped_content_id=snapshot_id))
    return "changed"
