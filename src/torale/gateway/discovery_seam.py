"""The one seam through which a new monitor without sources reaches discovery."""

from __future__ import annotations

import uuid
from typing import Protocol

import httpx
import structlog
from celery import Celery
from sqlalchemy import select, update

from torale.auth.tokens import issue_service_token
from torale.config import Settings
from torale.db.models import MonitoredSource, UserQuery
from torale.discovery.schemas import DiscoverRequest, DiscoverResponse
from torale.gateway.deps import Database
from torale.gateway.monitors import mark_needs_sources, request_check
from torale.net.ssrf import UnsafeURLError, check_url
from torale.queue import CheckSource, enqueue

log = structlog.get_logger(__name__)

NOT_CONFIGURED = "Source discovery is not configured on this server; add the URLs you want watched."
DISCOVERY_TIMEOUT = 90.0


class DiscoveryHandoff(Protocol):
    async def start(self, query_id: uuid.UUID) -> None: ...


class NoDiscovery:
    """Without a discovery service the monitor needs the user's URLs."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def start(self, query_id: uuid.UUID) -> None:
        async with self.database.as_service() as session:
            await mark_needs_sources(session, query_id, NOT_CONFIGURED)


class HttpDiscovery:
    """Calls the discovery service with a service token and applies its answer to the query:
    `active` with sources and a first check queued, `needs_sources`, or `failed` with why."""

    def __init__(self, database: Database, settings: Settings, celery: Celery, url: str) -> None:
        self.database = database
        self.settings = settings
        self.celery = celery
        self.url = url.rstrip("/") + "/discover-sources/"

    async def start(self, query_id: uuid.UUID) -> None:
        async with self.database.as_service() as session:
            query = await session.get(UserQuery, query_id)
            if query is None or query.status != "discovering":
                return
            raw_query, user_id = query.raw_query, query.user_id
        try:
            answer = await self._discover(raw_query)
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("discovery failed", query_id=str(query_id), error=str(exc))
            await self._set(query_id, "failed", f"Source discovery failed ({type(exc).__name__}); "
                            "add the URLs you want watched, or try again later.")  # fmt: skip
            return
        await self._apply(query_id, user_id, answer)

    async def _discover(self, raw_query: str) -> DiscoverResponse:
        headers = {"Authorization": f"Bearer {issue_service_token(self.settings)}"}
        async with httpx.AsyncClient(timeout=DISCOVERY_TIMEOUT) as client:
            response = await client.post(
                self.url, json=DiscoverRequest(raw_query=raw_query).model_dump(exclude_none=True),
                headers=headers,
            )  # fmt: skip
            response.raise_for_status()
            return DiscoverResponse.model_validate(response.json())

    async def _set(self, query_id: uuid.UUID, status: str, reason: str | None) -> None:
        async with self.database.as_service() as session:
            await session.execute(
                update(UserQuery)
                .where(UserQuery.id == query_id, UserQuery.status == "discovering")
                .values(status=status, status_reason=reason)
            )

    async def _apply(
        self, query_id: uuid.UUID, user_id: uuid.UUID, answer: DiscoverResponse
    ) -> None:
        urls: list[tuple[str, str | None]] = []
        for source in answer.sources[: self.settings.max_sources_per_query]:
            try:  # the gateway's own guard, whatever discovery vetted
                safe = await check_url(source.url, allow_private=self.settings.allow_private_urls)
            except UnsafeURLError:
                continue
            urls.append((safe.url, source.title))
        checks: list[CheckSource] = []
        async with self.database.as_service() as session:
            query = await session.get(UserQuery, query_id)
            if query is None or query.status != "discovering":
                return
            query.refined_query = answer.refined_query
            query.condition = answer.condition
            query.keywords = list(answer.keywords)
            query.config_hints_json = answer.hints.model_dump(mode="json")
            seen: set[str] = set()
            for url, title in urls:
                if url not in seen:
                    seen.add(url)
                    session.add(
                        MonitoredSource(
                            user_id=user_id, user_query_id=query_id, url=url, title=title
                        )
                    )
            await session.flush()
            if seen:
                query.status, query.status_reason = "active", None
                sources = await session.scalars(
                    select(MonitoredSource.id).where(MonitoredSource.user_query_id == query_id)
                )
                for source_id in list(sources):
                    check_id, created = await request_check(session, source_id)
                    if created:
                        checks.append(CheckSource(source_id=source_id, check_id=check_id))
            else:
                query.status = "needs_sources"
                query.status_reason = (
                    answer.message or "No sources found; add the URLs you want watched."
                )
        for message in checks:  # after commit: the database first, then the queue
            enqueue(self.celery, message)
