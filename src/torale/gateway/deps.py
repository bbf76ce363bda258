"""Dependencies declared once and reused by every endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from celery import Celery
from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from torale.auth.dependencies import CurrentUser
from torale.auth.tokens import Principal
from torale.config import Settings
from torale.db.session import as_owner, as_service, as_user
from torale.gateway.ratelimit import RateLimits


class Database:
    """Opens the transactions a request runs in: as its user (RLS) or, rarely, as the service."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    @asynccontextmanager
    async def as_user(self, who: Principal) -> AsyncIterator[AsyncSession]:
        assert who.user_id is not None
        async with as_user(self.sessions, who.user_id, who.claims) as session:
            yield session

    @asynccontextmanager
    async def as_service(self) -> AsyncIterator[AsyncSession]:
        async with as_service(self.sessions) as session:
            yield session

    @asynccontextmanager
    async def as_auth_owner(self) -> AsyncIterator[AsyncSession]:
        async with as_owner(self.sessions) as session:
            yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_celery(request: Request) -> Celery:
    celery: Celery = request.app.state.celery
    return celery


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def limit_by_ip(request: Request) -> None:
    limits: RateLimits = request.app.state.rate_limits
    await limits.hit(limits.ip, "ip", client_ip(request))


async def limit_by_user(request: Request, user: CurrentUser) -> None:
    limits: RateLimits = request.app.state.rate_limits
    await limits.hit(limits.user, "user", str(user.user_id))


SettingsDep = Annotated[Settings, Depends(get_settings)]
DatabaseDep = Annotated[Database, Depends(get_database)]
CeleryDep = Annotated[Celery, Depends(get_celery)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]
