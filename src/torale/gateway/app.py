"""The gateway: the public API (auth, monitors, sources, checks, alerts, live stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy import text

from torale import __version__
from torale.auth.local import LocalAuth
from torale.auth.tokens import TokenVerifier
from torale.config import Settings
from torale.db.session import create_engine, session_factory
from torale.gateway import auth_routes, notification_routes, routes
from torale.gateway.alerts import AlertHub
from torale.gateway.deps import Database
from torale.gateway.discovery_seam import DiscoveryHandoff, HttpDiscovery, NoDiscovery
from torale.gateway.ratelimit import RateLimits
from torale.observability.http import instrument
from torale.queue import create_celery


def create_app(
    settings: Settings,
    *,
    database_url: str,
    redis_url: str,
    discovery: DiscoveryHandoff | None = None,
) -> FastAPI:
    """Build the app; connections open in the lifespan, so importing is free of side effects."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(database_url, pool_size=10, max_overflow=20)
        redis = aioredis.Redis.from_url(redis_url)
        app.state.settings = settings
        app.state.database = Database(session_factory(engine))
        app.state.redis = redis
        app.state.celery = create_celery(settings, broker_url=redis_url)
        app.state.verifier = TokenVerifier(settings)
        app.state.local_auth = LocalAuth(settings)
        app.state.rate_limits = RateLimits(
            redis_url,
            user=settings.rate_limit_user,
            ip=settings.rate_limit_ip,
            auth=settings.rate_limit_auth,
        )
        if discovery is not None:
            app.state.discovery = discovery
        elif settings.discovery_service_url is not None:
            app.state.discovery = HttpDiscovery(
                app.state.database, settings, app.state.celery, str(settings.discovery_service_url)
            )
        else:
            app.state.discovery = NoDiscovery(app.state.database)
        app.state.alert_hub = AlertHub(database_url)
        await app.state.alert_hub.start()
        try:
            yield
        finally:
            await app.state.alert_hub.stop()
            await redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Torale API",
        version=__version__,
        lifespan=lifespan,
        description="Natural-language web monitoring. See shared/API.md for the contract.",
    )

    async def database_ready() -> None:
        async with app.state.database.sessions() as session:
            await session.execute(text("select 1"))

    async def redis_ready() -> None:
        await app.state.redis.ping()

    instrument(app, "gateway", {"database": database_ready, "redis": redis_ready})
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Retry-After", "X-Request-ID"],
    )
    app.include_router(routes.stream_router)
    app.include_router(routes.router)
    app.include_router(auth_routes.router)
    app.include_router(notification_routes.router)
    return app
