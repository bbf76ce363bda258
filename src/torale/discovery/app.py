"""The discovery service's HTTP edge: `POST /discover-sources/` for services, plus ops routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Request

from torale import __version__
from torale.auth.dependencies import ServiceCaller
from torale.auth.tokens import TokenVerifier
from torale.config import Settings
from torale.discovery.cache import DiscoveryCache
from torale.discovery.providers import Provider, build_providers
from torale.discovery.schemas import DiscoverRequest, DiscoverResponse
from torale.discovery.service import DiscoveryOptions, DiscoveryService
from torale.discovery.vetting import ReachabilityCheck
from torale.observability.http import ReadinessCheck, instrument

DISCOVER_PATH = "/discover-sources/"

router = APIRouter()


def _service(request: Request) -> DiscoveryService:
    service: DiscoveryService = request.app.state.discovery
    return service


DiscoveryDep = Annotated[DiscoveryService, Depends(_service)]


@router.post(DISCOVER_PATH, response_model=DiscoverResponse, tags=["discovery"])
async def discover_sources(
    body: DiscoverRequest, caller: ServiceCaller, service: DiscoveryDep
) -> DiscoverResponse:
    """Refine a monitor sentence into a condition and keywords, and propose pages to watch."""
    return await service.discover(body)


# Same handler without the trailing slash, so a caller's spelling never costs a redirect.
router.add_api_route(
    DISCOVER_PATH.rstrip("/"),
    discover_sources,
    methods=["POST"],
    response_model=DiscoverResponse,
    include_in_schema=False,
)


def create_app(
    settings: Settings,
    *,
    redis_url: str | None = None,
    providers: Sequence[Provider] | None = None,
    options: DiscoveryOptions | None = None,
    probe: ReachabilityCheck | None = None,
) -> FastAPI:
    """Build the app. Providers come from settings unless given; Redis (cache, readiness) from
    `redis_url` or TORALE_REDIS_URL, and without either the service runs uncached."""
    options = options or DiscoveryOptions.from_settings(settings)
    url = redis_url or settings.redis_url
    redis = aioredis.Redis.from_url(url) if url else None
    if providers is None:
        providers = build_providers(
            settings, timeout=options.provider_timeout, max_sources=options.max_sources
        )
    cache = DiscoveryCache(redis, ttl_seconds=options.cache_ttl) if redis is not None else None
    service = DiscoveryService(settings, providers, options=options, cache=cache, probe=probe)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await service.aclose()
            if redis is not None:
                await redis.aclose()

    app = FastAPI(
        title="Torale discovery",
        version=__version__,
        description="Refines monitor sentences and proposes pages to watch.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    app.state.discovery = service
    app.state.redis = redis
    app.include_router(router)

    readiness: dict[str, ReadinessCheck] = {}
    if redis is not None:

        async def redis_answers() -> None:
            await redis.ping()

        readiness["redis"] = redis_answers
    return instrument(app, "discovery", readiness)
