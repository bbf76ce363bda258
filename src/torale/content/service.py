"""One check of one source: fetch politely, short-circuit what did not change, extract passages,
embed only new ones, store the snapshot, and hand a changed snapshot to detection.

Every outcome, failures included, is written to `source_checks` and `monitored_sources`
before anything is enqueued, so the database is the truth and a lost message is re-driven.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import numpy as np
import structlog
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from torale.ai.embeddings import Embedder, get_embedder
from torale.content.extract import Document, Passage, UnsupportedContent, extract
from torale.db.session import as_service
from torale.net.fetch import Fetcher, FetchError, FetchResult
from torale.queue import DetectChanges, enqueue
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


async def claim(session: AsyncSession, check_id: uuid.UUID) -> ClaimedCheck | None:
    """queued -> running, atomically; None when the check is not (or no longer) queued."""
    row = (
        await session.execute(
            text(
                "update source_checks c set status = 'running', started_at = now(),"
                " attempts = c.attempts + 1"
                " from monitored_sources s"
                " where c.id = :id and c.status = 'queued' and s.id = c.monitored_source_id"
                " returning c.id, s.id as source_id, s.user_id, s.url, s.etag, s.last_modified,"
                " s.last_body_hash, s.last_content_hash"
            ),
            {"id": check_id},
        )
    ).first()
    if row is None:
        return None
    return ClaimedCheck(row.id, row.source_id, row.user_id, row.url, row.etag,
                        row.last_modified, row.last_body_hash, row.last_content_hash)  # fmt: skip


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
    structlog.contextvars.bind_contextvars(source_id=str(source_id), check_id=str(check_id))
    try:
        return await _check(runtime, check_id)
    finally:
        structlog.contextvars.unbind_contextvars("source_id", "check_id")


async def _check(runtime: WorkerRuntime, check_id: uuid.UUID) -> str | None:
    settings = runtime.settings
    async with as_service(runtime.sessions) as session:
        check = await claim(session, check_id)
    if check is None:
        log.info("check not queued; nothing to do")
        return None

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

    if result.not_modified:
        async with as_service(runtime.sessions) as session:
            await finish(session, check, outcome="not_modified", http_status=304, result=result)
        return "not_modified"

    body_hash = hashlib.blake2b(result.body, digest_size=16).hexdigest()
    if body_hash == check.last_body_hash:
        async with as_service(runtime.sessions) as session:
            await finish(
                session, check, outcome="unchanged", http_status=result.status, result=result
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
        async with as_service(runtime.sessions) as session:
            await finish(session, check, outcome="unchanged", http_status=result.status,
                         result=result, body_hash=body_hash)  # fmt: skip
        return "unchanged"

    embedder = get_embedder(settings)
    async with as_service(runtime.sessions) as session:
        passages = await new_passages(session, embedder, check, document)
    # embedding is CPU work: no transaction is held open meanwhile
    vectors = await embedder.embed([p.text for p in passages]) if passages else np.zeros((0, 0))
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
        enqueue(
            runtime.celery, DetectChanges(check_id=check.check_id, scraped_content_id=snapshot_id)
        )
    return "changed"
