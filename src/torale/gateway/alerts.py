"""Alerts: listing, acknowledging, and the live stream fed by Postgres NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from torale.db.migrate import sync_url
from torale.db.models import ChangeAlert
from torale.errors import NotFound
from torale.gateway import schemas
from torale.gateway.pagination import newest_first, page_of

log = structlog.get_logger(__name__)

NOTIFY_CHANNEL = "torale_alerts"


def alert_out(alert: ChangeAlert) -> schemas.AlertOut:
    return schemas.AlertOut(
        id=alert.id,
        query_id=alert.user_query_id,
        source_id=alert.monitored_source_id,
        check_id=alert.check_id,
        severity=alert.severity,
        score=alert.score,
        summary=alert.summary,
        details=dict(alert.details or {}),
        created_at=alert.created_at,
        acknowledged_at=alert.acknowledged_at,
    )


async def get_alert(session: AsyncSession, alert_id: uuid.UUID) -> ChangeAlert:
    alert = await session.get(ChangeAlert, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} not found")
    return alert


async def list_alerts(
    session: AsyncSession,
    *,
    query_id: uuid.UUID | None,
    source_id: uuid.UUID | None,
    since: datetime | None,
    unacknowledged: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[ChangeAlert], str | None]:
    statement = select(ChangeAlert)
    if query_id is not None:
        statement = statement.where(ChangeAlert.user_query_id == query_id)
    if source_id is not None:
        statement = statement.where(ChangeAlert.monitored_source_id == source_id)
    if since is not None:
        statement = statement.where(ChangeAlert.created_at >= since)
    if unacknowledged:
        statement = statement.where(ChangeAlert.acknowledged_at.is_(None))
    statement = newest_first(statement, ChangeAlert.created_at, ChangeAlert.id, cursor, limit)
    rows = list((await session.scalars(statement)).all())
    return page_of(rows, limit, lambda a: (a.created_at, a.id))


async def acknowledge(session: AsyncSession, alert_id: uuid.UUID) -> ChangeAlert:
    alert = await get_alert(session, alert_id)
    if alert.acknowledged_at is None:
        alert.acknowledged_at = await session.scalar(select(func.now()))
        await session.flush()
    return alert


class AlertHub:
    """One LISTEN connection per gateway process, fanned out to each user's open streams."""

    def __init__(self, database_url: str) -> None:
        self._dsn = sync_url(database_url)
        self._subscribers: dict[uuid.UUID, set[asyncio.Queue[uuid.UUID]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="alert-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def subscribe(self, user_id: uuid.UUID) -> asyncio.Queue[uuid.UUID]:
        queue: asyncio.Queue[uuid.UUID] = asyncio.Queue(maxsize=1000)
        self._subscribers.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: uuid.UUID, queue: asyncio.Queue[uuid.UUID]) -> None:
        queues = self._subscribers.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self._subscribers[user_id]

    def _dispatch(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            message = json.loads(payload)
            user_id, alert_id = uuid.UUID(message["user_id"]), uuid.UUID(message["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed alert notification")
            return
        for queue in self._subscribers.get(user_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(alert_id)

    async def _listen(self) -> None:
        delay = 0.5
        while True:
            try:
                conn = await asyncpg.connect(self._dsn)
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("alert hub cannot connect; retrying", error=str(exc), in_seconds=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            try:
                await conn.add_listener(NOTIFY_CHANNEL, self._dispatch)
                self._connected.set()
                delay = 0.5
                while not conn.is_closed():
                    await asyncio.sleep(5)
                    await conn.execute("select 1")  # notices a dead connection
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("alert hub lost its connection; reconnecting", error=str(exc))
            finally:
                self._connected.clear()
                with contextlib.suppress(Exception):
                    await conn.close()
