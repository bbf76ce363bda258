"""Monitors, sources and checks: the domain logic behind the API, run inside the caller's
transaction (RLS applies, so a row that is not the caller's is simply not found)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from torale.config import Settings
from torale.db.models import ChangeAlert, MonitoredSource, SourceCheck, UserQuery
from torale.errors import LimitExceeded, NotFound, ValidationFailed
from torale.gateway import schemas
from torale.gateway.pagination import newest_first, page_of
from torale.net.ssrf import UnsafeURLError, check_url

MAX_INTERVAL = 30 * 24 * 3600
IN_FLIGHT = ("queued", "running")


def validate_interval(settings: Settings, value: int | None, field: str) -> int | None:
    if value is None:
        return None
    if not settings.min_check_interval <= value <= MAX_INTERVAL:
        raise ValidationFailed.field(
            field, f"must be between {settings.min_check_interval} and {MAX_INTERVAL} seconds"
        )
    return value


async def validate_urls(settings: Settings, urls: Sequence[str], field: str) -> list[str]:
    """Normalise, SSRF-check and de-duplicate URLs, naming the offending one on error."""
    seen: dict[str, None] = {}
    for index, raw in enumerate(urls):
        name = f"{field}[{index}]" if len(urls) > 1 or field == "sources" else field
        try:
            safe = await check_url(raw, allow_private=settings.allow_private_urls)
        except UnsafeURLError as exc:
            raise ValidationFailed.field(name, str(exc)) from None
        seen.setdefault(safe.url, None)
    return list(seen)


# ------------------------------------------------------------------ queries


async def get_query(session: AsyncSession, query_id: uuid.UUID) -> UserQuery:
    query = await session.get(UserQuery, query_id)
    if query is None:
        raise NotFound(f"monitor {query_id} not found")
    return query


async def create_query(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, body: schemas.QueryCreate
) -> UserQuery:
    interval = validate_interval(settings, body.check_interval_seconds, "check_interval_seconds")
    urls = await validate_urls(settings, body.sources or [], "sources")
    if len(urls) > settings.max_sources_per_query:
        raise LimitExceeded(f"a monitor can watch at most {settings.max_sources_per_query} sources")
    count = await session.scalar(select(func.count()).select_from(UserQuery))
    if (count or 0) >= settings.max_queries_per_user:
        raise LimitExceeded(
            f"you have reached the limit of {settings.max_queries_per_user} monitors; "
            "delete one to create another"
        )
    query = UserQuery(
        user_id=user_id,
        raw_query=body.raw_query.strip(),
        status="active" if urls else "discovering",
        check_interval_seconds=interval or settings.default_check_interval,
        sensitivity=body.sensitivity,
    )
    session.add(query)
    await session.flush()
    for url in urls:
        session.add(MonitoredSource(user_id=user_id, user_query_id=query.id, url=url))
    await session.flush()
    return query


async def list_queries(
    session: AsyncSession, limit: int, cursor: str | None
) -> tuple[list[UserQuery], str | None]:
    statement = newest_first(select(UserQuery), UserQuery.created_at, UserQuery.id, cursor, limit)
    rows = list((await session.scalars(statement)).all())
    return page_of(rows, limit, lambda q: (q.created_at, q.id))


async def update_query(
    session: AsyncSession, settings: Settings, query_id: uuid.UUID, body: schemas.QueryUpdate
) -> UserQuery:
    query = await get_query(session, query_id)
    changes = body.model_dump(exclude_unset=True)
    if "check_interval_seconds" in changes:
        validate_interval(settings, changes["check_interval_seconds"], "check_interval_seconds")
    for key, value in changes.items():
        if value is None and key in (
            "raw_query",
            "check_interval_seconds",
            "sensitivity",
            "keywords",
        ):
            raise ValidationFailed.field(key, "may not be null")
        setattr(query, key, value)
    await session.flush()
    return query


async def set_query_status(session: AsyncSession, query_id: uuid.UUID, paused: bool) -> UserQuery:
    query = await get_query(session, query_id)
    if paused:
        query.status = "paused"
    else:
        has_sources = await session.scalar(
            select(func.count()).where(MonitoredSource.user_query_id == query_id)
        )
        query.status = "active" if has_sources else "needs_sources"
        query.status_reason = None if has_sources else "add at least one source to watch"
    await session.flush()
    return query


async def delete_query(session: AsyncSession, query_id: uuid.UUID) -> None:
    await session.delete(await get_query(session, query_id))


async def sources_by_query(
    session: AsyncSession, query_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[MonitoredSource]]:
    result: dict[uuid.UUID, list[MonitoredSource]] = {qid: [] for qid in query_ids}
    if not query_ids:
        return result
    rows = await session.scalars(
        select(MonitoredSource)
        .where(MonitoredSource.user_query_id.in_(query_ids))
        .order_by(MonitoredSource.created_at, MonitoredSource.id)
    )
    for source in rows:
        result[source.user_query_id].append(source)
    return result


async def last_alerts(
    session: AsyncSession, query_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, datetime]:
    if not query_ids:
        return {}
    rows = await session.execute(
        select(ChangeAlert.user_query_id, func.max(ChangeAlert.created_at))
        .where(ChangeAlert.user_query_id.in_(query_ids))
        .group_by(ChangeAlert.user_query_id)
    )
    return {row[0]: row[1] for row in rows}


async def render_queries(
    session: AsyncSession, queries: Sequence[UserQuery]
) -> list[schemas.QueryOut]:
    ids = [q.id for q in queries]
    sources = await sources_by_query(session, ids)
    alerts = await last_alerts(session, ids)
    out = []
    for query in queries:
        mine = sources[query.id]
        checked = [s.last_checked_at for s in mine if s.last_checked_at]
        out.append(
            schemas.QueryOut(
                id=query.id,
                raw_query=query.raw_query,
                refined_query=query.refined_query,
                condition=query.condition,
                keywords=list(query.keywords or []),
                status=query.status,
                status_reason=query.status_reason,
                check_interval_seconds=query.check_interval_seconds,
                sensitivity=query.sensitivity,
                config_hints=dict(query.config_hints_json or {}),
                created_at=query.created_at,
                updated_at=query.updated_at,
                last_checked_at=max(checked) if checked else None,
                last_alert_at=alerts.get(query.id),
                sources=[source_out(s) for s in mine],
            )
        )
    return out


# ------------------------------------------------------------------ sources


def source_out(source: MonitoredSource) -> schemas.SourceOut:
    return schemas.SourceOut(
        id=source.id,
        query_id=source.user_query_id,
        url=source.url,
        title=source.title,
        status=source.status,
        check_interval_seconds=source.check_interval_seconds,
        next_check_at=source.next_check_at,
        last_checked_at=source.last_checked_at,
        last_error=source.last_error,
        consecutive_failures=source.consecutive_failures,
        created_at=source.created_at,
        updated_at=source.updated_at,
    )


async def get_source(session: AsyncSession, source_id: uuid.UUID) -> MonitoredSource:
    source = await session.get(MonitoredSource, source_id)
    if source is None:
        raise NotFound(f"source {source_id} not found")
    return source


async def add_source(
    session: AsyncSession, settings: Settings, query_id: uuid.UUID, body: schemas.SourceCreate
) -> MonitoredSource:
    query = await get_query(session, query_id)
    (url,) = await validate_urls(settings, [body.url], "url")
    count = await session.scalar(
        select(func.count()).where(MonitoredSource.user_query_id == query_id)
    )
    if (count or 0) >= settings.max_sources_per_query:
        raise LimitExceeded(f"a monitor can watch at most {settings.max_sources_per_query} sources")
    inserted = await session.scalar(
        insert(MonitoredSource)
        .values(user_id=query.user_id, user_query_id=query.id, url=url, title=body.title)
        .on_conflict_do_nothing(index_elements=["user_query_id", "url"])
        .returning(MonitoredSource.id)
    )
    if inserted is None:
        raise ValidationFailed.field("url", f"{url} is already watched by this monitor")
    if query.status in ("needs_sources", "discovering", "failed"):
        query.status, query.status_reason = "active", None
    await session.flush()
    return await get_source(session, inserted)


async def list_sources(
    session: AsyncSession, query_id: uuid.UUID | None, limit: int, cursor: str | None
) -> tuple[list[MonitoredSource], str | None]:
    statement = select(MonitoredSource)
    if query_id is not None:
        statement = statement.where(MonitoredSource.user_query_id == query_id)
    statement = newest_first(
        statement, MonitoredSource.created_at, MonitoredSource.id, cursor, limit
    )
    rows = list((await session.scalars(statement)).all())
    return page_of(rows, limit, lambda s: (s.created_at, s.id))


async def update_source(
    session: AsyncSession, settings: Settings, source_id: uuid.UUID, body: schemas.SourceUpdate
) -> MonitoredSource:
    source = await get_source(session, source_id)
    changes = body.model_dump(exclude_unset=True)
    if "check_interval_seconds" in changes:
        validate_interval(settings, changes["check_interval_seconds"], "check_interval_seconds")
        source.check_interval_seconds = changes["check_interval_seconds"]
    if "title" in changes:
        source.title = changes["title"]
    if changes.get("status") == "active" and source.status != "active":
        # resuming: an errored or disallowed source gets a fresh start
        source.status = "active"
        source.consecutive_failures = 0
        source.next_check_at = func.now()
    elif changes.get("status") == "paused":
        source.status = "paused"
    elif "status" in changes and changes["status"] is None:
        raise ValidationFailed.field("status", "may not be null")
    await session.flush()
    await session.refresh(source)
    return source


async def delete_source(session: AsyncSession, source_id: uuid.UUID) -> None:
    await session.delete(await get_source(session, source_id))


# ------------------------------------------------------------------ checks


async def request_check(session: AsyncSession, source_id: uuid.UUID) -> tuple[uuid.UUID, bool]:
    """Queue a manual check; returns (check_id, created). An in-flight check is reused."""
    source = await get_source(session, source_id)
    check_id = await session.scalar(
        insert(SourceCheck)
        .values(
            user_id=source.user_id,
            user_query_id=source.user_query_id,
            monitored_source_id=source.id,
            trigger="manual",
        )
        .on_conflict_do_nothing(
            index_elements=["monitored_source_id"],
            # a literal predicate: a parameterised one stops matching the partial unique index
            # once Postgres switches the prepared statement to a generic plan
            index_where=text("status in ('queued', 'running')"),
        )
        .returning(SourceCheck.id)
    )
    if check_id is not None:
        return check_id, True
    existing = await session.scalar(
        select(SourceCheck.id).where(
            SourceCheck.monitored_source_id == source_id, SourceCheck.status.in_(IN_FLIGHT)
        )
    )
    if existing is None:  # finished between the two statements: queue again
        return await request_check(session, source_id)
    return existing, False


async def _alert_ids(session: AsyncSession, check_ids: Sequence[uuid.UUID]) -> dict[Any, list[Any]]:
    found: dict[Any, list[Any]] = {cid: [] for cid in check_ids}
    if check_ids:
        rows = await session.execute(
            select(ChangeAlert.check_id, ChangeAlert.id)
            .where(ChangeAlert.check_id.in_(check_ids))
            .order_by(ChangeAlert.created_at)
        )
        for check_id, alert_id in rows:
            found[check_id].append(alert_id)
    return found


async def render_checks(
    session: AsyncSession, checks: Sequence[SourceCheck]
) -> list[schemas.CheckOut]:
    alerts = await _alert_ids(session, [c.id for c in checks])
    return [
        schemas.CheckOut(
            id=c.id,
            source_id=c.monitored_source_id,
            query_id=c.user_query_id,
            trigger=c.trigger,
            status=c.status,
            outcome=c.outcome,
            queued_at=c.queued_at,
            started_at=c.started_at,
            finished_at=c.finished_at,
            http_status=c.http_status,
            error_class=c.error_class,
            error=c.error,
            alert_ids=alerts[c.id],
        )
        for c in checks
    ]


async def get_check(session: AsyncSession, check_id: uuid.UUID) -> SourceCheck:
    check = await session.get(SourceCheck, check_id)
    if check is None:
        raise NotFound(f"check {check_id} not found")
    return check


async def list_checks(
    session: AsyncSession, source_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[SourceCheck], str | None]:
    await get_source(session, source_id)
    statement = newest_first(
        select(SourceCheck).where(SourceCheck.monitored_source_id == source_id),
        SourceCheck.created_at,
        SourceCheck.id,
        cursor,
        limit,
    )
    rows = list((await session.scalars(statement)).all())
    return page_of(rows, limit, lambda c: (c.created_at, c.id))


async def mark_needs_sources(session: AsyncSession, query_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(UserQuery)
        .where(UserQuery.id == query_id, UserQuery.status == "discovering")
        .values(status="needs_sources", status_reason=reason)
    )
