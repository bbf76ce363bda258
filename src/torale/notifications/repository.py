"""Delivery rows: create, claim, record, find what is due or lost. Run inside the caller's
transaction; the writes are the service's (users may only read their deliveries)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, any_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from torale.db.models import NotificationDelivery
from torale.errors import NotFound
from torale.gateway.pagination import newest_first, page_of

CLAIMABLE = ("pending", "retrying")
MAX_LOG_ENTRIES = 20


def new_message_id() -> str:
    """A Standard Webhooks style message id, fixed for the life of a delivery."""
    return f"msg_{uuid.uuid4().hex}"


def _due() -> Any:
    return or_(
        NotificationDelivery.next_retry_at.is_(None),
        NotificationDelivery.next_retry_at <= func.now(),
    )


async def insert_alert_deliveries(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    alert_id: uuid.UUID,
    rows: Sequence[tuple[uuid.UUID, str, str | None, datetime | None]],
) -> None:
    """One row per (alert, channel): (channel_id, status, error, next_retry_at); a repeat is a
    no-op, so a redelivered fan-out task never doubles a delivery."""
    if not rows:
        return
    values = [
        {
            "user_id": user_id,
            "alert_id": alert_id,
            "channel_id": channel_id,
            "kind": "alert",
            "message_id": new_message_id(),
            "status": status,
            "error": error,
            "next_retry_at": next_retry_at,
        }
        for channel_id, status, error, next_retry_at in rows
    ]
    statement = insert(NotificationDelivery).values(values)
    statement = statement.on_conflict_do_nothing(
        index_elements=["alert_id", "channel_id"], index_where=NotificationDelivery.kind == "alert"
    )
    await session.execute(statement)


async def due_alert_deliveries(session: AsyncSession, alert_id: uuid.UUID) -> list[uuid.UUID]:
    statement = select(NotificationDelivery.id).where(
        NotificationDelivery.alert_id == alert_id,
        NotificationDelivery.kind == "alert",
        NotificationDelivery.status.in_(CLAIMABLE),
        _due(),
    )
    return list((await session.scalars(statement)).all())


async def create_delivery(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    channel_id: uuid.UUID,
    kind: str,
    message_id: str | None = None,
    alert_ids: list[uuid.UUID] | None = None,
) -> NotificationDelivery | None:
    """A test, verification or digest delivery; None when `message_id` was already used."""
    statement = (
        insert(NotificationDelivery)
        .values(
            user_id=user_id,
            channel_id=channel_id,
            kind=kind,
            message_id=message_id or new_message_id(),
            alert_ids=alert_ids,
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "message_id"])
        .returning(NotificationDelivery)
    )
    return (await session.scalars(statement)).one_or_none()


async def claim(session: AsyncSession, delivery_id: uuid.UUID) -> NotificationDelivery | None:
    """Take a due delivery for one attempt (`sending`, attempts + 1), or None if it is not
    claimable: already done, being sent by someone else, or not due yet."""
    statement = (
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id == delivery_id,
            NotificationDelivery.status.in_(CLAIMABLE),
            _due(),
        )
        .values(
            status="sending",
            attempts=NotificationDelivery.attempts + 1,
            next_retry_at=None,
        )
        .returning(NotificationDelivery)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()


async def record(
    session: AsyncSession,
    claimed: NotificationDelivery,
    *,
    status: str,
    entry: dict[str, Any],
    response_code: int | None = None,
    response_excerpt: str | None = None,
    error: str | None = None,
    retry_in: float | None = None,
) -> bool:
    """Write one attempt's outcome; False if the row was meanwhile declared lost and retaken."""
    log = [*(claimed.attempt_log or []), entry][-MAX_LOG_ENTRIES:]
    values: dict[str, Any] = {
        "status": status,
        "response_code": response_code,
        "response_excerpt": response_excerpt,
        "error": error,
        "attempt_log": log,
        "next_retry_at": func.now() + timedelta(seconds=retry_in) if retry_in is not None else None,
    }
    if status == "succeeded":
        values["delivered_at"] = func.now()
    statement = (
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id == claimed.id,
            NotificationDelivery.status == "sending",
            NotificationDelivery.attempts == claimed.attempts,
        )
        .values(**values)
        .returning(NotificationDelivery.id)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none() is not None


async def release_lost(
    session: AsyncSession, *, lost_after: int, max_attempts: int, now: datetime
) -> list[tuple[uuid.UUID, str]]:
    """Deliveries stuck in `sending` longer than `lost_after` seconds (a worker died between
    sending and recording): back to `retrying` now, or `failed` when out of attempts."""
    stuck = (
        await session.execute(
            select(
                NotificationDelivery.id,
                NotificationDelivery.attempts,
                NotificationDelivery.attempt_log,
            )
            .where(
                NotificationDelivery.status == "sending",
                NotificationDelivery.updated_at < func.now() - timedelta(seconds=lost_after),
            )
            .with_for_update(skip_locked=True)
        )
    ).all()
    released = []
    for delivery_id, attempts, attempt_log in stuck:
        status = "failed" if attempts >= max_attempts else "retrying"
        message = "lost: the worker stopped before recording this attempt"
        entry = {"attempt": attempts, "at": now.isoformat(), "outcome": "lost", "error": message}
        await session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id)
            .values(
                status=status,
                error=message,
                next_retry_at=func.now() if status == "retrying" else None,
                attempt_log=[*(attempt_log or []), entry][-MAX_LOG_ENTRIES:],
            )
            .execution_options(synchronize_session=False)
        )
        released.append((delivery_id, status))
    return released


async def due_ids(session: AsyncSession, limit: int) -> list[uuid.UUID]:
    """Pending or retrying deliveries whose time has come, oldest first."""
    statement = (
        select(NotificationDelivery.id)
        .where(NotificationDelivery.status.in_(CLAIMABLE), _due())
        .order_by(NotificationDelivery.next_retry_at.asc().nulls_first())
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> NotificationDelivery:
    delivery = await session.get(NotificationDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"delivery {delivery_id} not found")
    return delivery


async def list_deliveries(
    session: AsyncSession,
    *,
    alert_id: uuid.UUID | None,
    channel_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[NotificationDelivery], str | None]:
    """The caller's deliveries (RLS), newest first; `alert_id` also finds digests carrying it."""
    statement = select(NotificationDelivery)
    if alert_id is not None:
        statement = statement.where(
            or_(
                NotificationDelivery.alert_id == alert_id,
                and_(
                    NotificationDelivery.kind == "digest",
                    any_(NotificationDelivery.alert_ids) == alert_id,
                ),
            )
        )
    if channel_id is not None:
        statement = statement.where(NotificationDelivery.channel_id == channel_id)
    statement = newest_first(
        statement, NotificationDelivery.created_at, NotificationDelivery.id, cursor, limit
    )
    rows = list((await session.scalars(statement)).all())
    return page_of(rows, limit, lambda d: (d.created_at, d.id))
