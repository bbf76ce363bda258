"""`/api/v1`: monitors, sources, checks and alerts (shared/API.md). HTTP only: parse, call, shape."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

from torale.auth.dependencies import CurrentUser
from torale.gateway import alerts as alert_service
from torale.gateway import monitors
from torale.gateway.deps import (
    CeleryDep,
    Cursor,
    DatabaseDep,
    Limit,
    SettingsDep,
    limit_by_ip,
    limit_by_user,
)
from torale.gateway.schemas import (
    AlertOut,
    CheckOut,
    CheckQueued,
    Page,
    QueryCreate,
    QueryOut,
    QueryUpdate,
    SourceCreate,
    SourceOut,
    SourceUpdate,
)
from torale.queue import CheckSource, enqueue

router = APIRouter(prefix="/api/v1", dependencies=[Depends(limit_by_ip), Depends(limit_by_user)])
stream_router = APIRouter(prefix="/api/v1", dependencies=[Depends(limit_by_ip)])


# ------------------------------------------------------------------ monitors


@router.post("/queries", status_code=201, tags=["monitors"])
async def create_query(
    body: QueryCreate,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    request: Request,
    background: BackgroundTasks,
) -> QueryOut:
    assert user.user_id
    async with db.as_user(user) as session:
        query = await monitors.create_query(session, settings, user.user_id, body)
        (out,) = await monitors.render_queries(session, [query])
    if query.status == "discovering":
        background.add_task(request.app.state.discovery.start, query.id)
    return out


@router.get("/queries", tags=["monitors"])
async def list_queries(
    user: CurrentUser, db: DatabaseDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[QueryOut]:
    async with db.as_user(user) as session:
        rows, next_cursor = await monitors.list_queries(session, limit, cursor)
        return Page(items=await monitors.render_queries(session, rows), next_cursor=next_cursor)


@router.get("/queries/{query_id}", tags=["monitors"])
async def get_query(query_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> QueryOut:
    async with db.as_user(user) as session:
        query = await monitors.get_query(session, query_id)
        (out,) = await monitors.render_queries(session, [query])
        return out


@router.patch("/queries/{query_id}", tags=["monitors"])
async def update_query(
    query_id: uuid.UUID,
    body: QueryUpdate,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
) -> QueryOut:
    async with db.as_user(user) as session:
        query = await monitors.update_query(session, settings, query_id, body)
        await session.refresh(query)
        (out,) = await monitors.render_queries(session, [query])
        return out


@router.delete("/queries/{query_id}", status_code=204, tags=["monitors"])
async def delete_query(query_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> Response:
    async with db.as_user(user) as session:
        await monitors.delete_query(session, query_id)
    return Response(status_code=204)


@router.post("/queries/{query_id}/pause", tags=["monitors"])
async def pause_query(query_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> QueryOut:
    async with db.as_user(user) as session:
        query = await monitors.set_query_status(session, query_id, paused=True)
        await session.refresh(query)
        (out,) = await monitors.render_queries(session, [query])
        return out


@router.post("/queries/{query_id}/resume", tags=["monitors"])
async def resume_query(query_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> QueryOut:
    async with db.as_user(user) as session:
        query = await monitors.set_query_status(session, query_id, paused=False)
        await session.refresh(query)
        (out,) = await monitors.render_queries(session, [query])
        return out


# ------------------------------------------------------------------ sources


@router.post("/queries/{query_id}/sources", status_code=201, tags=["sources"])
async def add_source(
    query_id: uuid.UUID,
    body: SourceCreate,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
) -> SourceOut:
    async with db.as_user(user) as session:
        return monitors.source_out(await monitors.add_source(session, settings, query_id, body))


@router.get("/sources", tags=["sources"])
async def list_sources(
    user: CurrentUser,
    db: DatabaseDep,
    query_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SourceOut]:
    async with db.as_user(user) as session:
        rows, next_cursor = await monitors.list_sources(session, query_id, limit, cursor)
        return Page(items=[monitors.source_out(s) for s in rows], next_cursor=next_cursor)


@router.get("/sources/{source_id}", tags=["sources"])
async def get_source(source_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> SourceOut:
    async with db.as_user(user) as session:
        return monitors.source_out(await monitors.get_source(session, source_id))


@router.patch("/sources/{source_id}", tags=["sources"])
async def update_source(
    source_id: uuid.UUID,
    body: SourceUpdate,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
) -> SourceOut:
    async with db.as_user(user) as session:
        return monitors.source_out(await monitors.update_source(session, settings, source_id, body))


@router.delete("/sources/{source_id}", status_code=204, tags=["sources"])
async def delete_source(source_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> Response:
    async with db.as_user(user) as session:
        await monitors.delete_source(session, source_id)
    return Response(status_code=204)


@router.post("/sources/{source_id}/check", status_code=202, tags=["checks"])
async def check_now(
    source_id: uuid.UUID, user: CurrentUser, db: DatabaseDep, celery: CeleryDep
) -> CheckQueued:
    async with db.as_user(user) as session:
        check_id, created = await monitors.request_check(session, source_id)
    if created:
        # recorded first; if the broker is down the scheduler's sweep re-drives the check
        await asyncio.to_thread(
            enqueue, celery, CheckSource(source_id=source_id, check_id=check_id)
        )
    return CheckQueued(check_id=check_id)


@router.get("/sources/{source_id}/checks", tags=["checks"])
async def list_checks(
    source_id: uuid.UUID,
    user: CurrentUser,
    db: DatabaseDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[CheckOut]:
    async with db.as_user(user) as session:
        rows, next_cursor = await monitors.list_checks(session, source_id, limit, cursor)
        return Page(items=await monitors.render_checks(session, rows), next_cursor=next_cursor)


@router.get("/checks/{check_id}", tags=["checks"])
async def get_check(check_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> CheckOut:
    async with db.as_user(user) as session:
        (out,) = await monitors.render_checks(
            session, [await monitors.get_check(session, check_id)]
        )
        return out


# ------------------------------------------------------------------ alerts


@router.get("/alerts", tags=["alerts"])
async def list_alerts(
    user: CurrentUser,
    db: DatabaseDep,
    query_id: uuid.UUID | None = None,
    source_id: uuid.UUID | None = None,
    since: datetime | None = None,
    unacknowledged: bool = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertOut]:
    async with db.as_user(user) as session:
        rows, next_cursor = await alert_service.list_alerts(
            session,
            query_id=query_id,
            source_id=source_id,
            since=since,
            unacknowledged=unacknowledged,
            limit=limit,
            cursor=cursor,
        )
        return Page(items=[alert_service.alert_out(a) for a in rows], next_cursor=next_cursor)


@router.get("/alerts/{alert_id}", tags=["alerts"])
async def get_alert(alert_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> AlertOut:
    async with db.as_user(user) as session:
        return alert_service.alert_out(await alert_service.get_alert(session, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", tags=["alerts"])
async def acknowledge_alert(alert_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> AlertOut:
    async with db.as_user(user) as session:
        return alert_service.alert_out(await alert_service.acknowledge(session, alert_id))


@stream_router.get("/alerts/stream", tags=["alerts"], response_class=EventSourceResponse)
async def alert_stream(
    request: Request,
    user: CurrentUser,
    db: DatabaseDep,
    ping: Annotated[int, Query(ge=1, le=60, description="Seconds between keep-alive pings")] = 15,
) -> EventSourceResponse:
    """The caller's new alerts as Server-Sent Events (`event: alert`, data: the alert)."""
    user_id = user.user_id
    assert user_id is not None
    hub: alert_service.AlertHub = request.app.state.alert_hub
    queue = hub.subscribe(user_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            yield ServerSentEvent(event="ready", data=json.dumps({"user_id": str(user.user_id)}))
            while True:
                alert_id = await queue.get()
                async with db.as_user(user) as session:
                    alert = await session.get(alert_service.ChangeAlert, alert_id)
                    if alert is None:  # not the caller's (RLS) or already deleted
                        continue
                    body = alert_service.alert_out(alert).model_dump_json()
                yield ServerSentEvent(event="alert", id=str(alert_id), data=body)
        finally:
            hub.unsubscribe(user_id, queue)

    return EventSourceResponse(events(), ping=ping, headers={"Cache-Control": "no-store"})
