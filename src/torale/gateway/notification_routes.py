"""`/api/v1`: notification preferences, channels and the delivery log (shared/API.md,
"Notifications"), plus the two no-login links mailed to recipients (unsubscribe, verify).
HTTP only: parse, call the notification service, shape the response."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from redis.asyncio import Redis

from torale.auth.dependencies import CurrentUser
from torale.errors import Conflict, ToraleError
from torale.gateway.deps import (
    CeleryDep,
    Cursor,
    DatabaseDep,
    Limit,
    SettingsDep,
    limit_by_ip,
    limit_by_user,
)
from torale.gateway.schemas import Page
from torale.notifications import channels, preferences, repository, service
from torale.notifications.messages import render_page
from torale.notifications.schemas import (
    ChannelCreate,
    ChannelCreated,
    ChannelOut,
    ChannelUpdate,
    DeliveryOut,
    NotificationPreferences,
    PreferencesUpdate,
    QueryNotificationPreferences,
    VerifyChannel,
)

api = APIRouter(prefix="/api/v1", dependencies=[Depends(limit_by_ip), Depends(limit_by_user)])
public = APIRouter(prefix="/api/v1", dependencies=[Depends(limit_by_ip)])
router = APIRouter()


def get_redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


RedisDep = Annotated[Redis, Depends(get_redis)]
QueryId = Annotated[
    uuid.UUID | None, Query(description="A monitor, for its override of the defaults")
]
Preferences = NotificationPreferences | QueryNotificationPreferences


# ------------------------------------------------------------------ preferences


@api.get("/notification-preferences", tags=["notifications"])
async def get_preferences(
    user: CurrentUser, db: DatabaseDep, query_id: QueryId = None
) -> Preferences:
    assert user.user_id
    async with db.as_user(user) as session:
        return await preferences.get_preferences(session, user.user_id, query_id)


@api.put("/notification-preferences", tags=["notifications"])
async def put_preferences(
    body: PreferencesUpdate, user: CurrentUser, db: DatabaseDep, query_id: QueryId = None
) -> Preferences:
    assert user.user_id
    async with db.as_user(user) as session:
        return await preferences.put_preferences(session, user.user_id, query_id, body)


# ------------------------------------------------------------------ channels


@api.get("/notification-channels", tags=["notifications"])
async def list_channels(
    user: CurrentUser, db: DatabaseDep, limit: Limit = 50, cursor: Cursor = None
) -> Page[ChannelOut]:
    async with db.as_user(user) as session:
        rows, next_cursor = await channels.list_channels(session, limit, cursor)
        return Page(items=[channels.channel_out(row) for row in rows], next_cursor=next_cursor)


@api.post("/notification-channels", status_code=201, tags=["notifications"])
async def create_channel(
    body: ChannelCreate,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    celery: CeleryDep,
    redis: RedisDep,
) -> ChannelCreated:
    """Create a channel. A webhook's signing secret is in this response and never again; an
    email address other than the account's own gets a code to confirm it."""
    assert user.user_id
    async with db.as_user(user) as session:
        created, secret = await channels.create_channel(session, settings, user.user_id, body)
    if created.kind == "email":
        async with db.as_service() as session:
            delivery_id = await channels.start_verification(
                session, settings, user.user_id, created.id
            )
        if delivery_id is not None:
            await service.dispatch(celery, redis, settings, [delivery_id])
        async with db.as_user(user) as session:
            created = channels.channel_out(await channels.get_channel(session, created.id))
    return ChannelCreated(**created.model_dump(), secret=secret)


@api.get("/notification-channels/{channel_id}", tags=["notifications"])
async def get_channel(channel_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> ChannelOut:
    async with db.as_user(user) as session:
        return channels.channel_out(await channels.get_channel(session, channel_id))


@api.patch("/notification-channels/{channel_id}", tags=["notifications"])
async def update_channel(
    channel_id: uuid.UUID, body: ChannelUpdate, user: CurrentUser, db: DatabaseDep
) -> ChannelOut:
    async with db.as_user(user) as session:
        return channels.channel_out(await channels.update_channel(session, channel_id, body))


@api.delete("/notification-channels/{channel_id}", status_code=204, tags=["notifications"])
async def delete_channel(channel_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> Response:
    async with db.as_user(user) as session:
        await channels.delete_channel(session, channel_id)
    return Response(status_code=204)


@api.post("/notification-channels/{channel_id}/test", status_code=202, tags=["notifications"])
async def test_channel(
    channel_id: uuid.UUID,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    celery: CeleryDep,
    redis: RedisDep,
) -> DeliveryOut:
    """Send a test message through the real delivery path; poll `GET /deliveries/{id}`."""
    assert user.user_id
    async with db.as_service() as session:
        delivery = await service.create_test_delivery(session, user.user_id, channel_id)
    await service.dispatch(celery, redis, settings, [delivery.id])
    return DeliveryOut.of(delivery)


@api.post("/notification-channels/{channel_id}/verify", tags=["notifications"])
async def verify_channel(
    channel_id: uuid.UUID, body: VerifyChannel, user: CurrentUser, db: DatabaseDep
) -> ChannelOut:
    """Confirm an email address with the code mailed to it."""
    assert user.user_id
    async with db.as_service() as session:
        return channels.channel_out(
            await channels.verify(session, channel_id, body.code, user.user_id)
        )


@api.post(
    "/notification-channels/{channel_id}/verification", status_code=202, tags=["notifications"]
)
async def resend_verification(
    channel_id: uuid.UUID,
    user: CurrentUser,
    db: DatabaseDep,
    settings: SettingsDep,
    celery: CeleryDep,
    redis: RedisDep,
) -> DeliveryOut:
    """Mail a new code (the previous one stops working)."""
    assert user.user_id
    async with db.as_service() as session:
        delivery_id = await channels.start_verification(session, settings, user.user_id, channel_id)
    if delivery_id is None:
        raise Conflict("this address is already verified")
    await service.dispatch(celery, redis, settings, [delivery_id])
    async with db.as_user(user) as session:
        return DeliveryOut.of(await repository.get_delivery(session, delivery_id))


# ------------------------------------------------------------------ deliveries


@api.get("/deliveries", tags=["notifications"])
async def list_deliveries(
    user: CurrentUser,
    db: DatabaseDep,
    alert_id: uuid.UUID | None = None,
    channel_id: uuid.UUID | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """The delivery log, newest first; `alert_id` includes the digests that carried it."""
    async with db.as_user(user) as session:
        rows, next_cursor = await repository.list_deliveries(
            session, alert_id=alert_id, channel_id=channel_id, limit=limit, cursor=cursor
        )
        return Page(items=[DeliveryOut.of(row) for row in rows], next_cursor=next_cursor)


@api.get("/deliveries/{delivery_id}", tags=["notifications"])
async def get_delivery(delivery_id: uuid.UUID, user: CurrentUser, db: DatabaseDep) -> DeliveryOut:
    async with db.as_user(user) as session:
        delivery = await repository.get_delivery(session, delivery_id)
        return DeliveryOut.of(delivery)


# ------------------------------------------------------------------ links in emails (no login)


def _page(
    title: str, text: str, *, action: str | None = None, button: str = "", status: int = 200
) -> HTMLResponse:
    html = render_page("link_page.html", title=title, text=text, action=action, button=button)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _error_page(exc: ToraleError) -> HTMLResponse:
    return _page("This link does not work", exc.message, status=exc.status_code)


Token = Annotated[str, Query(min_length=1, max_length=200)]
Code = Annotated[str, Query(min_length=1, max_length=32)]


@public.get("/notification-links/unsubscribe", response_class=HTMLResponse, tags=["links"])
async def unsubscribe_page(request: Request, token: Token) -> HTMLResponse:
    """A confirmation page (a GET never changes anything: mail scanners open links)."""
    return _page(
        "Unsubscribe",
        "Stop sending Torale notifications to this channel?",
        action=f"{request.url.path}?{request.url.query}",
        button="Unsubscribe",
    )


@public.post("/notification-links/unsubscribe", response_class=HTMLResponse, tags=["links"])
async def unsubscribe(token: Token, db: DatabaseDep, settings: SettingsDep) -> HTMLResponse:
    """Disable the channel (RFC 8058 one-click: mail clients POST here)."""
    try:
        async with db.as_service() as session:
            await channels.unsubscribe(session, settings, token)
    except ToraleError as exc:
        return _error_page(exc)
    return _page(
        "Unsubscribed",
        "This channel will get no more Torale notifications. Its owner can switch it back on "
        "in Torale's settings.",
    )


@public.get("/notification-links/verify", response_class=HTMLResponse, tags=["links"])
async def verify_page(request: Request, channel_id: uuid.UUID, code: Code) -> HTMLResponse:
    return _page(
        "Confirm your email address",
        "Confirm that Torale may send alerts to this address?",
        action=f"{request.url.path}?{request.url.query}",
        button="Confirm",
    )


@public.post("/notification-links/verify", response_class=HTMLResponse, tags=["links"])
async def verify_link(channel_id: uuid.UUID, code: Code, db: DatabaseDep) -> HTMLResponse:
    try:
        async with db.as_service() as session:
            await channels.verify(session, channel_id, code, None)
    except ToraleError as exc:
        return _error_page(exc)
    return _page("Address confirmed", "Torale alerts will now be sent to this address.")


router.include_router(api)
router.include_router(public)
