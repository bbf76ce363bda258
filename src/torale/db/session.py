"""Engine and transactions: every statement runs as a user (RLS applies) or as the service."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_SET_CLAIMS = text(
    "select set_config('request.jwt.claims', :claims, true), set_config('role', :role, true)"
)


def async_url(url: str) -> str:
    """The SQLAlchemy asyncpg URL for a libpq-style Postgres URL."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a Postgres URL: {url.split('@')[-1]}")


SERVICE_ROLE_CONNECTIONS = "torale_service_role_connections"  # Session.info key
_SERVICE_CLAIMS = json.dumps({"role": "service_role"})


def _behind_transaction_pooler(url: str) -> bool:
    query = parse_qs(urlsplit(url).query)
    return "prepare_threshold" in query or "pgbouncer" in query


def create_engine(
    url: str,
    *,
    pool_size: int = 5,
    max_overflow: int = 10,
    pre_ping: bool = True,
    service_role: bool = False,
) -> AsyncEngine:
    """An asyncpg engine; unix-socket URLs (`?host=/dir`) work as libpq's do.

    `service_role` (workers): connections start as `service_role` with its claims, so
    `as_service` needs no statement per transaction; not behind a transaction pooler, where
    session settings do not stick (there `as_service` sets them in each transaction)."""
    connect_args: dict[str, Any] = {}
    if _behind_transaction_pooler(url):
        connect_args["statement_cache_size"] = 0  # transaction poolers (Supabase pooler)
    elif service_role:
        connect_args["server_settings"] = {
            "role": "service_role",
            "request.jwt.claims": _SERVICE_CLAIMS,
        }
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        connect_args=connect_args,
    )


def session_factory(
    engine: AsyncEngine, *, service_role: bool = False
) -> async_sessionmaker[AsyncSession]:
    """Sessions on `engine`; `service_role` when it was created so (and is not pooled)."""
    connected_as_service = service_role and not _behind_transaction_pooler(
        engine.url.render_as_string(hide_password=True)
    )
    return async_sessionmaker(
        engine, expire_on_commit=False, info={SERVICE_ROLE_CONNECTIONS: connected_as_service}
    )


def user_claims(user_id: uuid.UUID | str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    claims.update(extra or {})
    return claims


@asynccontextmanager
async def as_user(
    sessions: async_sessionmaker[AsyncSession],
    user_id: uuid.UUID | str,
    claims: Mapping[str, Any] | None = None,
) -> AsyncIterator[AsyncSession]:
    """A transaction as the `authenticated` role with the caller's claims, as PostgREST does."""
    async with sessions() as session, session.begin():
        payload = json.dumps(user_claims(user_id, claims))
        await session.execute(_SET_CLAIMS, {"claims": payload, "role": "authenticated"})
        yield session


@asynccontextmanager
async def as_service(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction as `service_role`, which bypasses RLS: for workers and the scheduler."""
    async with sessions() as session, session.begin():
        if not session.info.get(SERVICE_ROLE_CONNECTIONS):
            await session.execute(_SET_CLAIMS, {"claims": _SERVICE_CLAIMS, "role": "service_role"})
        yield session


@asynccontextmanager
async def as_owner(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A transaction as the connecting role itself: only for local auth, which owns `auth.*`
    off Supabase (on Supabase, GoTrue does that work and this is never used)."""
    async with sessions() as session, session.begin():
        yield session
