"""Notification channels: validation, the owner's CRUD (as the user, RLS), and the two things
only the service may do (it alone reads and writes `secret`, `verified_at` and the code hash):
email verification and the no-login unsubscribe link."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Row, any_, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from torale.config import Settings
from torale.db.models import NotificationChannel, NotificationPreference
from torale.errors import Conflict, LimitExceeded, NotFound, ValidationFailed
from torale.gateway.pagination import newest_first, page_of
from torale.net.ssrf import UnsafeURLError
from torale.notifications import links, repository, schemas
from torale.notifications.senders import apprise as apprise_sender
from torale.notifications.senders import webhook as webhook_sender

log = structlog.get_logger(__name__)

MAX_CHANNELS_PER_USER = 25
VERIFICATION_TTL = timedelta(days=7)
MASK = "********"
_FIELDS_BY_KIND = {"email": {"address"}, "webhook": {"url", "headers"}, "apprise": {"url"}}

# What a user may read of a channel (the column grants leave out secret and the code hash).
PUBLIC_COLUMNS = (
    NotificationChannel.id,
    NotificationChannel.kind,
    NotificationChannel.name,
    NotificationChannel.config,
    NotificationChannel.enabled,
    NotificationChannel.verified_at,
    NotificationChannel.created_at,
    NotificationChannel.updated_at,
)


@dataclass(frozen=True)
class NewChannel:
    kind: str
    name: str
    config: dict[str, Any]
    secret: str | None


def channel_out(row: Row[Any] | NotificationChannel) -> schemas.ChannelOut:
    config: dict[str, Any] = dict(row.config or {})
    kind = row.kind
    return schemas.ChannelOut(
        id=row.id,
        kind=kind,
        name=row.name,
        enabled=row.enabled,
        verified=kind != "email" or row.verified_at is not None,
        verified_at=row.verified_at,
        address=config.get("address") if kind == "email" else None,
        url=config.get("display_url" if kind == "apprise" else "url") if kind != "email" else None,
        headers={name: MASK for name in config.get("headers") or {}} if kind == "webhook" else None,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def validate(settings: Settings, body: schemas.ChannelCreate) -> NewChannel:
    """Check a new channel's fields for its kind; 422 naming the field on any problem."""
    allowed = _FIELDS_BY_KIND[body.kind]
    for field in ("address", "url", "headers"):
        if getattr(body, field) is not None and field not in allowed:
            raise ValidationFailed.field(field, f"is not used by {body.kind} channels")
    name = body.name.strip()
    if body.kind == "email":
        if body.address is None:
            raise ValidationFailed.field("address", "is required for email channels")
        local, _, domain = str(body.address).rpartition("@")
        return NewChannel("email", name, {"address": f"{local}@{domain.lower()}"}, None)
    if not body.url or not body.url.strip():
        raise ValidationFailed.field("url", f"is required for {body.kind} channels")
    url = body.url.strip()
    if body.kind == "webhook":
        try:
            headers = webhook_sender.validate_headers(body.headers or {})
        except ValueError as exc:
            raise ValidationFailed.field("headers", str(exc)) from None
        try:
            safe_url = await webhook_sender.check_target(url, settings)
        except UnsafeURLError as exc:
            raise ValidationFailed.field("url", str(exc)) from None
        config = {"url": safe_url, "headers": headers}
        return NewChannel("webhook", name, config, webhook_sender.new_secret())
    try:
        plugin = apprise_sender.parse_apprise_url(url)
        await apprise_sender.check_apprise_target(plugin, url, settings)
    except (ValueError, UnsafeURLError) as exc:  # UnsafeURLError is a ValueError
        raise ValidationFailed.field("url", str(exc)) from None
    return NewChannel(
        "apprise", name, {"url": url, "display_url": apprise_sender.display_url(plugin)}, None
    )


# ------------------------------------------------------------------ the owner's CRUD (RLS)


async def create_channel(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, body: schemas.ChannelCreate
) -> tuple[schemas.ChannelOut, str | None]:
    """Insert the channel; returns it and, for a webhook, its signing secret (shown once)."""
    new = await validate(settings, body)
    count = await session.scalar(select(func.count()).select_from(NotificationChannel))
    if (count or 0) >= MAX_CHANNELS_PER_USER:
        raise LimitExceeded(f"you can have at most {MAX_CHANNELS_PER_USER} notification channels")
    statement = (
        insert(NotificationChannel)
        .values(user_id=user_id, kind=new.kind, name=new.name, config=new.config, secret=new.secret)
        .returning(*PUBLIC_COLUMNS)
    )
    row = (await session.execute(statement)).one()
    log.info("notification channel created", channel_id=str(row.id), kind=new.kind)
    return channel_out(row), new.secret


async def get_channel(session: AsyncSession, channel_id: uuid.UUID) -> Row[Any]:
    row = (
        await session.execute(select(*PUBLIC_COLUMNS).where(NotificationChannel.id == channel_id))
    ).one_or_none()
    if row is None:
        raise NotFound(f"notification channel {channel_id} not found")
    return row


async def list_channels(
    session: AsyncSession, limit: int, cursor: str | None
) -> tuple[list[Row[Any]], str | None]:
    statement = newest_first(
        select(*PUBLIC_COLUMNS),
        NotificationChannel.created_at,
        NotificationChannel.id,
        cursor,
        limit,
    )
    rows = list((await session.execute(statement)).all())
    return page_of(rows, limit, lambda r: (r.created_at, r.id))


async def update_channel(
    session: AsyncSession, channel_id: uuid.UUID, body: schemas.ChannelUpdate
) -> Row[Any]:
    values: dict[str, Any] = {}
    if body.name is not None:
        values["name"] = body.name.strip()
    if body.enabled is not None:
        values["enabled"] = body.enabled
    if not values:
        return await get_channel(session, channel_id)
    row = (
        await session.execute(
            update(NotificationChannel)
            .where(NotificationChannel.id == channel_id)
            .values(**values)
            .returning(*PUBLIC_COLUMNS)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"notification channel {channel_id} not found")
    return row


async def delete_channel(session: AsyncSession, channel_id: uuid.UUID) -> None:
    """Delete the channel (its deliveries go with it) and drop it from channel picks."""
    deleted = await session.scalar(
        delete(NotificationChannel)
        .where(NotificationChannel.id == channel_id)
        .returning(NotificationChannel.id)
    )
    if deleted is None:
        raise NotFound(f"notification channel {channel_id} not found")
    await session.execute(
        update(NotificationPreference)
        .where(any_(NotificationPreference.channel_ids) == channel_id)
        .values(channel_ids=func.array_remove(NotificationPreference.channel_ids, channel_id))
    )


# ------------------------------------------------------------------ the service's part


async def _own_channel(
    session: AsyncSession, channel_id: uuid.UUID, user_id: uuid.UUID | None
) -> NotificationChannel:
    statement = select(NotificationChannel).where(NotificationChannel.id == channel_id)
    if user_id is not None:
        statement = statement.where(NotificationChannel.user_id == user_id)
    channel = (await session.scalars(statement.with_for_update())).one_or_none()
    if channel is None:
        raise NotFound(f"notification channel {channel_id} not found")
    return channel


async def account_email(session: AsyncSession, user_id: uuid.UUID) -> str | None:
    """The address the user signed up with (as the service)."""
    value = await session.scalar(
        text("select public.torale_account_email(:account)"), {"account": user_id}
    )
    return str(value) if value else None


async def start_verification(
    session: AsyncSession, settings: Settings, user_id: uuid.UUID, channel_id: uuid.UUID
) -> uuid.UUID | None:
    """Verify the account's own address at once; for any other, create the verification
    delivery (whose message id determines the code) and return its id to dispatch."""
    channel = await _own_channel(session, channel_id, user_id)
    if channel.kind != "email":
        raise Conflict("only email channels need verifying")
    if channel.verified_at is not None:
        return None
    address = str(channel.config.get("address", ""))
    own = await account_email(session, user_id)
    now = datetime.now(UTC)
    if own and own.lower() == address.lower():
        channel.verified_at = now
        channel.verification_token_hash = None
        return None
    delivery = await repository.create_delivery(
        session, user_id=user_id, channel_id=channel.id, kind="verification"
    )
    assert delivery is not None  # a fresh message id never conflicts
    code = links.verification_code(settings, channel.id, delivery.message_id)
    channel.verification_token_hash = links.verification_record(
        channel.id, code, now + VERIFICATION_TTL
    )
    log.info("email verification sent", channel_id=str(channel.id), delivery_id=str(delivery.id))
    return delivery.id


async def verify(
    session: AsyncSession, channel_id: uuid.UUID, code: str, user_id: uuid.UUID | None
) -> NotificationChannel:
    """Mark the address verified when `code` is the latest one mailed and has not expired."""
    channel = await _own_channel(session, channel_id, user_id)
    if channel.verified_at is not None:
        return channel
    if not links.code_matches(channel.verification_token_hash, channel.id, code, datetime.now(UTC)):
        raise ValidationFailed.field("code", "is wrong or has expired; ask for a new one")
    channel.verified_at = datetime.now(UTC)
    channel.verification_token_hash = None
    await session.flush()
    log.info("email channel verified", channel_id=str(channel.id))
    return channel


async def unsubscribe(session: AsyncSession, settings: Settings, token: str) -> uuid.UUID:
    """Disable the channel a signed unsubscribe token names (no login needed)."""
    channel_id = links.read_unsubscribe_token(settings, token)
    if channel_id is None:
        raise NotFound("this unsubscribe link is not valid")
    disabled = await session.scalar(
        update(NotificationChannel)
        .where(NotificationChannel.id == channel_id)
        .values(enabled=False)
        .returning(NotificationChannel.id)
    )
    if disabled is None:
        raise NotFound("this channel no longer exists")
    log.info("notification channel unsubscribed", channel_id=str(channel_id))
    return channel_id
