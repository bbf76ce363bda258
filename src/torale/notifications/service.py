"""Delivering notifications: fan an alert out to deliveries, send each one at least once,
retry with backoff, and sweep up what is due, lost or waiting for a digest.

State lives in `notification_deliveries`; the queue only says "look at this row now". A row
is claimed atomically (`pending|retrying` and due -> `sending`, attempts + 1) before anything is
sent, and every attempt's outcome is written back, so a redelivered task never repeats a send
that succeeded. A worker killed between sending and recording leaves the row in `sending`;
after `TORALE_NOTIFY_LOST_AFTER` seconds the sweep retries it. Delivery is therefore
at-least-once, and a resend carries the same message id (`webhook-id`, email Message-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import httpx
import structlog
from celery import Celery
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from torale.config import Settings
from torale.db.models import (
    ChangeAlert,
    MonitoredSource,
    NotificationChannel,
    NotificationDelivery,
    NotificationPreference,
    UserQuery,
)
from torale.db.session import as_service
from torale.errors import Conflict, NotFound
from torale.net.fetch import create_http_client
from torale.net.retry import RetryPolicy
from torale.notifications import links, messages, preferences, repository
from torale.notifications.messages import AlertView, Message
from torale.notifications.senders import DeliveryError, Destination, SendResult
from torale.notifications.senders.apprise import send_apprise
from torale.notifications.senders.email import send_email
from torale.notifications.senders.webhook import send_webhook
from torale.queue import DeliverNotification, enqueue

__all__ = [
    "NotifyRuntime",
    "create_test_delivery",
    "deliver",
    "dispatch",
    "notify_alert",
    "sweep_notifications",
]

log = structlog.get_logger(__name__)

INLINE_RETRY_MAX = 60.0  # retries due sooner are enqueued with a countdown; later ones by the sweep
COUNTDOWN_SLACK = 0.5  # seconds past next_retry_at, so the task never arrives before it is due
MAX_RETRY_AFTER = 86_400.0
SWEEP_BATCH = 500
DIGEST_LOOKBACK = timedelta(days=7)
_HTTP_CLIENT = "notifications.http"


class NotifyRuntime(Protocol):
    """What the notification service needs of its process (a `WorkerRuntime` fits)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]: ...
    @property
    def redis(self) -> Redis: ...
    @property
    def celery(self) -> Celery: ...
    @property
    def extras(self) -> dict[str, Any]: ...


def _http(runtime: NotifyRuntime) -> httpx.AsyncClient:
    client = runtime.extras.get(_HTTP_CLIENT)
    if client is None:
        client = runtime.extras[_HTTP_CLIENT] = create_http_client(runtime.settings)
    assert isinstance(client, httpx.AsyncClient)
    return client


async def close(runtime: NotifyRuntime) -> None:
    """Close this process's HTTP client (it is created again on next use)."""
    client = runtime.extras.pop(_HTTP_CLIENT, None)
    if client is not None:
        await client.aclose()


# ------------------------------------------------------------------ the queue


def _queued_key(delivery_id: uuid.UUID) -> str:
    return f"torale:notify:queued:{delivery_id}"


async def dispatch(
    celery: Celery,
    redis: Redis,
    settings: Settings,
    delivery_ids: Sequence[uuid.UUID],
    *,
    countdown: float | None = None,
) -> int:
    """Enqueue a `DeliverNotification` per row not already on the queue; returns how many.

    A Redis marker (expiring after `TORALE_NOTIFY_LOST_AFTER` + countdown) says "on the queue",
    so the sweep does not pile duplicates onto a backlog; a message the broker loses is sent
    again once the marker expires. Failures are logged: the rows stay due for the sweep.
    """
    sent = 0
    ttl = settings.notify_lost_after + int(countdown or 0)
    options: dict[str, Any] = {"countdown": countdown} if countdown else {}
    for delivery_id in delivery_ids:
        key = _queued_key(delivery_id)
        try:
            if not await redis.set(key, "1", nx=True, ex=ttl):
                continue
            await asyncio.to_thread(
                enqueue, celery, DeliverNotification(delivery_id=delivery_id), **options
            )
        except Exception as exc:
            log.warning(
                "could not enqueue a delivery; the sweep will",
                delivery_id=str(delivery_id),
                error=type(exc).__name__,
            )
            with contextlib.suppress(RedisError):
                await redis.delete(key)
            continue
        sent += 1
    return sent


async def _unmark(redis: Redis, delivery_id: uuid.UUID) -> None:
    try:
        await redis.delete(_queued_key(delivery_id))
    except RedisError:
        log.warning("could not clear the queued marker", delivery_id=str(delivery_id))


# ------------------------------------------------------------------ fan-out


async def notify_alert(runtime: NotifyRuntime, alert_id: uuid.UUID) -> int:
    """Create the alert's deliveries its owner's preferences select; enqueue those due now."""
    bound = log.bind(alert_id=str(alert_id))
    async with as_service(runtime.sessions) as session:
        alert = await session.get(ChangeAlert, alert_id)
        if alert is None:
            bound.info("alert no longer exists; nothing to notify")
            return 0
        default, overrides = await preferences.load(session, alert.user_id)
        prefs = preferences.effective(default, overrides.get(alert.user_query_id))
        if not prefs.wants(alert.severity):
            bound.info("alert below the minimum severity", severity=alert.severity)
            return 0
        if prefs.mode == "digest":
            bound.info("digest mode: the alert waits for the daily digest")
            return 0
        channels = (
            await session.scalars(
                select(NotificationChannel).where(
                    NotificationChannel.user_id == alert.user_id,
                    NotificationChannel.enabled.is_(True),
                )
            )
        ).all()
        now = await session.scalar(select(func.now()))
        assert now is not None
        quiet_end = preferences.quiet_until(now, prefs)
        rows: list[tuple[uuid.UUID, str, str | None, datetime | None]] = []
        for channel in channels:
            if not prefs.picks(channel.id):
                continue
            if channel.kind == "email" and channel.verified_at is None:
                rows.append((channel.id, "skipped", "the email address is not verified", None))
            else:
                rows.append((channel.id, "pending", None, quiet_end))
        await repository.insert_alert_deliveries(
            session, user_id=alert.user_id, alert_id=alert.id, rows=rows
        )
        due = await repository.due_alert_deliveries(session, alert.id)
    if quiet_end is not None:
        bound.info("quiet hours: deliveries wait", until=quiet_end.isoformat())
    bound.info("alert fanned out", channels=len(rows), due=len(due))
    return await dispatch(runtime.celery, runtime.redis, runtime.settings, due)


async def create_test_delivery(
    session: AsyncSession, user_id: uuid.UUID, channel_id: uuid.UUID
) -> NotificationDelivery:
    """A `test` delivery to one of the user's channels (as the service)."""
    channel = (
        await session.scalars(
            select(NotificationChannel).where(
                NotificationChannel.id == channel_id, NotificationChannel.user_id == user_id
            )
        )
    ).one_or_none()
    if channel is None:
        raise NotFound(f"notification channel {channel_id} not found")
    if not channel.enabled:
        raise Conflict("this channel is disabled; enable it before testing it")
    if channel.kind == "email" and channel.verified_at is None:
        raise Conflict("confirm this email address before sending to it")
    delivery = await repository.create_delivery(
        session, user_id=user_id, channel_id=channel.id, kind="test"
    )
    assert delivery is not None
    return delivery


# ------------------------------------------------------------------ one delivery


@dataclass(frozen=True)
class _Work:
    destination: Destination
    message: Message | None
    skip: str | None  # why nothing is sent


async def _alert_views(session: AsyncSession, alerts: Sequence[ChangeAlert]) -> list[AlertView]:
    query_ids = {a.user_query_id for a in alerts}
    source_ids = {a.monitored_source_id for a in alerts if a.monitored_source_id}
    queries: dict[uuid.UUID, str] = {
        row.id: row.raw_query
        for row in await session.execute(
            select(UserQuery.id, UserQuery.raw_query).where(UserQuery.id.in_(query_ids))
        )
    }
    sources: dict[uuid.UUID, str] = {}
    if source_ids:
        sources = {
            row.id: row.url
            for row in await session.execute(
                select(MonitoredSource.id, MonitoredSource.url).where(
                    MonitoredSource.id.in_(source_ids)
                )
            )
        }
    return [
        AlertView(
            alert=messages.alert_out(alert),
            query=queries.get(alert.user_query_id, ""),
            source_url=sources.get(alert.monitored_source_id)
            if alert.monitored_source_id
            else None,
        )
        for alert in alerts
    ]


async def _prepare(
    session: AsyncSession, settings: Settings, delivery: NotificationDelivery
) -> _Work:
    channel = await session.get(NotificationChannel, delivery.channel_id)
    if channel is None:
        raise DeliveryError("the channel no longer exists", retryable=False)
    destination = Destination(channel.id, channel.kind, dict(channel.config or {}), channel.secret)
    if not channel.enabled:
        return _Work(destination, None, "the channel is disabled (switched off or unsubscribed)")
    if delivery.kind == "verification":
        if channel.verified_at is not None:
            return _Work(destination, None, "the address is already verified")
        code = links.verification_code(settings, channel.id, delivery.message_id)
        message = messages.render_verification(
            settings, channel.id, delivery.message_id, code, delivery.created_at
        )
        return _Work(destination, message, None)
    if channel.kind == "email" and channel.verified_at is None:
        return _Work(destination, None, "the email address is not verified")
    if delivery.kind == "test":
        message = messages.render_test(
            settings, channel.id, delivery.message_id, delivery.created_at
        )
        return _Work(destination, message, None)
    if delivery.kind == "alert":
        alert = await session.get(ChangeAlert, delivery.alert_id) if delivery.alert_id else None
        if alert is None:
            return _Work(destination, None, "the alert was deleted")
        (view,) = await _alert_views(session, [alert])
        return _Work(
            destination,
            messages.render_alert(settings, view, channel.id, delivery.message_id),
            None,
        )
    alerts = (
        await session.scalars(
            select(ChangeAlert)
            .where(ChangeAlert.id.in_(delivery.alert_ids or []))
            .order_by(ChangeAlert.created_at, ChangeAlert.id)
        )
    ).all()
    if not alerts:
        return _Work(destination, None, "the alerts of this digest were deleted")
    views = await _alert_views(session, alerts)
    message = messages.render_digest(
        settings, views, channel.id, delivery.message_id, delivery.created_at
    )
    return _Work(destination, message, None)


async def _send(runtime: NotifyRuntime, destination: Destination, message: Message) -> SendResult:
    settings = runtime.settings
    if destination.kind == "email":
        return await send_email(_http(runtime), settings, destination, message)
    if destination.kind == "webhook":
        return await send_webhook(_http(runtime), settings, destination, message)
    if destination.kind == "apprise":
        return await send_apprise(settings, destination, message)
    raise DeliveryError(f"unknown channel kind {destination.kind!r}", retryable=False)


def _address(destination: Destination) -> str:
    """The recipient the per-address cap counts (hashed; never stored in the clear)."""
    value = destination.config.get("address") or destination.config.get("url") or ""
    return hashlib.sha256(str(value).strip().lower().encode()).hexdigest()


async def _over_cap(
    redis: Redis, settings: Settings, delivery: NotificationDelivery, destination: Destination
) -> str | None:
    """Count this delivery against the daily caps; the reason it must be skipped, if any."""
    day = datetime.now(UTC).strftime("%Y%m%d")
    user_key = f"torale:notify:cap:user:{delivery.user_id}:{day}"
    address_key = f"torale:notify:cap:address:{_address(destination)}:{day}"
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(user_key)
            pipe.expire(user_key, 2 * 86400)
            pipe.incr(address_key)
            pipe.expire(address_key, 2 * 86400)
            user_count, _, address_count, _ = await pipe.execute()
        scope, limit = None, 0
        if user_count > settings.notify_daily_cap_per_user:
            scope, limit = "user", settings.notify_daily_cap_per_user
        elif address_count > settings.notify_daily_cap_per_address:
            scope, limit = "address", settings.notify_daily_cap_per_address
        if scope is None:
            return None
        async with redis.pipeline(transaction=True) as pipe:
            pipe.decr(user_key)
            pipe.decr(address_key)
            await pipe.execute()
    except RedisError as exc:
        log.warning("daily caps unavailable; sending anyway", error=type(exc).__name__)
        return None
    log.warning(
        "notification limit reached; delivery skipped",
        scope=scope,
        limit=limit,
        user_id=str(delivery.user_id),
        channel_id=str(delivery.channel_id),
        delivery_id=str(delivery.id),
    )
    return f"the daily limit of {limit} notifications per {scope} was reached"


def _retry_delay(settings: Settings, error: DeliveryError, attempts: int) -> float | None:
    """Seconds until the next attempt, or None to give up (permanent error or out of attempts)."""
    if not error.retryable or attempts >= settings.notify_max_attempts:
        return None
    if error.retry_after is not None:
        return min(max(error.retry_after, 0.0), MAX_RETRY_AFTER)
    policy = RetryPolicy(
        retries=settings.notify_max_attempts - 1,
        base=settings.notify_retry_base,
        cap=settings.notify_retry_cap,
    )
    return policy.backoff(attempts - 1)


async def deliver(runtime: NotifyRuntime, delivery_id: uuid.UUID) -> str | None:
    """Make one attempt at a delivery if it is due; returns the status it ends in, or None
    when there was nothing to do (already done, being sent elsewhere, or not due yet)."""
    settings = runtime.settings
    bound = log.bind(delivery_id=str(delivery_id))
    async with as_service(runtime.sessions) as session:
        claimed = await repository.claim(session, delivery_id)
    if claimed is None:
        bound.info("delivery not claimable: done, in flight, or not due")
        await _unmark(runtime.redis, delivery_id)
        return None
    bound = bound.bind(
        channel_id=str(claimed.channel_id), kind=claimed.kind, attempt=claimed.attempts
    )
    started = time.monotonic()
    status, error, retry_in = "succeeded", None, None
    result = SendResult()
    try:
        async with as_service(runtime.sessions) as session:
            work = await _prepare(session, settings, claimed)
        skip = work.skip
        if skip is None and claimed.attempts == 1:
            skip = await _over_cap(runtime.redis, settings, claimed, work.destination)
        if skip is not None:
            status, error = "skipped", skip
        else:
            assert work.message is not None
            bound = bound.bind(channel_kind=work.destination.kind)
            result = await _send(runtime, work.destination, work.message)
    except DeliveryError as exc:
        result = SendResult(exc.response_code, exc.excerpt)
        error = exc.message
        retry_in = _retry_delay(settings, exc, claimed.attempts)
        status = "retrying" if retry_in is not None else "failed"
    except Exception as exc:  # a bug or a library's surprise: retried like a transient failure
        bound.exception("delivery attempt crashed")
        error = f"internal error: {type(exc).__name__}"
        retry_in = _retry_delay(settings, DeliveryError(error, retryable=True), claimed.attempts)
        status = "retrying" if retry_in is not None else "failed"
    duration_ms = int((time.monotonic() - started) * 1000)
    entry = {
        "attempt": claimed.attempts,
        "at": datetime.now(UTC).isoformat(),
        "outcome": status,
        "response_code": result.response_code,
        "error": error,
        "duration_ms": duration_ms,
    }
    async with as_service(runtime.sessions) as session:
        recorded = await repository.record(
            session,
            claimed,
            status=status,
            entry=entry,
            response_code=result.response_code,
            response_excerpt=result.excerpt,
            error=error,
            retry_in=retry_in,
        )
    if not recorded:
        bound.warning("attempt outcome not recorded: the delivery was declared lost and retaken")
    details = {
        "status": status,
        "response_code": result.response_code,
        "duration_ms": duration_ms,
        "retry_in": round(retry_in, 3) if retry_in is not None else None,
    }
    if status == "succeeded":
        bound.info("notification delivered", **details)
    elif status == "skipped":
        bound.info("notification skipped", reason=error, **details)
    else:
        bound.warning("notification attempt failed", error=error, **details)
    await _unmark(runtime.redis, claimed.id)
    if status == "retrying" and retry_in is not None and retry_in <= INLINE_RETRY_MAX:
        # a short wait is the queue's (ETA); a longer one is left to the sweep
        await dispatch(
            runtime.celery,
            runtime.redis,
            settings,
            [claimed.id],
            countdown=retry_in + COUNTDOWN_SLACK,
        )
    return status


# ------------------------------------------------------------------ the sweep


def _digest_message_id(day: date, channel_id: uuid.UUID) -> str:
    return f"digest_{day.isoformat()}_{channel_id.hex}"


def _digest_done_key(user_id: uuid.UUID, day: date) -> str:
    return f"torale:notify:digest-done:{user_id}:{day.isoformat()}"


async def _digest_for_user(
    session: AsyncSession, default: NotificationPreference, slot: datetime, day: date
) -> int:
    """Today's digest per channel: the user's alerts from before the slot that no earlier
    digest or immediate delivery brought to that channel and that the preferences select."""
    user_id = default.user_id
    channels = [
        channel
        for channel in (
            await session.scalars(
                select(NotificationChannel)
                .where(
                    NotificationChannel.user_id == user_id, NotificationChannel.enabled.is_(True)
                )
                .order_by(NotificationChannel.created_at)
            )
        ).all()
        if channel.kind != "email" or channel.verified_at is not None
    ]
    if not channels:
        return 0
    message_ids = {channel.id: _digest_message_id(day, channel.id) for channel in channels}
    done = set(
        (
            await session.scalars(
                select(NotificationDelivery.channel_id).where(
                    NotificationDelivery.channel_id.in_(message_ids),
                    NotificationDelivery.message_id.in_(message_ids.values()),
                )
            )
        ).all()
    )
    channels = [channel for channel in channels if channel.id not in done]
    if not channels:
        return 0
    alerts = (
        await session.scalars(
            select(ChangeAlert)
            .where(
                ChangeAlert.user_id == user_id,
                ChangeAlert.created_at < slot,
                ChangeAlert.created_at >= slot - DIGEST_LOOKBACK,
            )
            .order_by(ChangeAlert.created_at, ChangeAlert.id)
        )
    ).all()
    if not alerts:
        return 0
    alert_ids = [alert.id for alert in alerts]
    channel_ids = [channel.id for channel in channels]
    sent = await session.execute(
        select(NotificationDelivery.alert_id, NotificationDelivery.channel_id).where(
            NotificationDelivery.kind == "alert",
            NotificationDelivery.alert_id.in_(alert_ids),
            NotificationDelivery.channel_id.in_(channel_ids),
        )
    )
    already: set[tuple[uuid.UUID | None, uuid.UUID]] = {(r[0], r[1]) for r in sent}
    digested = (
        select(
            func.unnest(NotificationDelivery.alert_ids).label("alert_id"),
            NotificationDelivery.channel_id,
        )
        .where(
            NotificationDelivery.kind == "digest",
            NotificationDelivery.channel_id.in_(channel_ids),
            NotificationDelivery.created_at >= slot - DIGEST_LOOKBACK - timedelta(days=1),
        )
        .subquery()
    )
    carried = await session.execute(select(digested.c.alert_id, digested.c.channel_id))
    already |= {(r[0], r[1]) for r in carried}
    _, overrides = await preferences.load(session, user_id)
    applied = {
        alert.id: preferences.effective(default, overrides.get(alert.user_query_id))
        for alert in alerts
    }
    created = 0
    for channel in channels:
        chosen = [
            alert.id
            for alert in alerts
            if (alert.id, channel.id) not in already
            and applied[alert.id].wants(alert.severity)
            and applied[alert.id].picks(channel.id)
        ]
        if not chosen:
            continue
        delivery = await repository.create_delivery(
            session,
            user_id=user_id,
            channel_id=channel.id,
            kind="digest",
            message_id=message_ids[channel.id],
            alert_ids=chosen,
        )
        if delivery is not None:
            created += 1
            log.info(
                "digest created",
                delivery_id=str(delivery.id),
                channel_id=str(channel.id),
                alerts=len(chosen),
            )
    return created


async def _due_digest_users(
    session: AsyncSession, redis: Redis, now: datetime
) -> list[tuple[NotificationPreference, datetime, date]]:
    """Digest-mode users whose digest time has passed today and whose digest is not done."""
    defaults = (
        await session.scalars(
            select(NotificationPreference).where(
                NotificationPreference.user_query_id.is_(None),
                NotificationPreference.mode == "digest",
            )
        )
    ).all()
    due = []
    for default in defaults:
        slot, day = preferences.digest_slot(
            now, preferences.zone(default.timezone), default.digest_hour
        )
        if now >= slot:
            due.append((default, slot, day))
    if not due:
        return []
    keys = [_digest_done_key(default.user_id, day) for default, _, day in due]
    try:
        finished = await redis.mget(keys)
    except RedisError:
        finished = [None] * len(keys)
    return [entry for entry, flag in zip(due, finished, strict=True) if not flag]


async def sweep_notifications(runtime: NotifyRuntime) -> int:
    """The scheduler's notification sweep: retry deliveries lost in `sending`, create the
    digests that are due, and enqueue every due delivery not already on the queue.
    Returns how many deliveries it enqueued."""
    settings = runtime.settings
    async with as_service(runtime.sessions) as session:
        now = await session.scalar(select(func.now()))
        assert now is not None
        lost = await repository.release_lost(
            session,
            lost_after=settings.notify_lost_after,
            max_attempts=settings.notify_max_attempts,
            now=now,
        )
        digest_users = await _due_digest_users(session, runtime.redis, now)
        digests = 0
        for default, slot, day in digest_users:
            digests += await _digest_for_user(session, default, slot, day)
        due = await repository.due_ids(session, SWEEP_BATCH)
    for delivery_id, status in lost:
        log.warning("delivery lost while sending", delivery_id=str(delivery_id), now=status)
        await _unmark(runtime.redis, delivery_id)
    if digest_users:
        try:
            async with runtime.redis.pipeline(transaction=False) as pipe:
                for default, _, day in digest_users:
                    pipe.set(_digest_done_key(default.user_id, day), "1", ex=2 * 86400)
                await pipe.execute()
        except RedisError:
            log.warning("could not remember finished digests; they are re-checked")
    enqueued = await dispatch(runtime.celery, runtime.redis, settings, due)
    if lost or digests or enqueued:
        log.info("notification sweep", lost=len(lost), digests=digests, enqueued=enqueued)
    return int(enqueued)
