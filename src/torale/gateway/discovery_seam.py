"""The one seam through which a new monitor without sources reaches discovery."""

from __future__ import annotations

import uuid
from typing import Protocol

from torale.gateway.deps import Database
from torale.gateway.monitors import mark_needs_sources

NOT_CONFIGURED = "Source discovery is not configured on this server; add the URLs you want watched."


class DiscoveryHandoff(Protocol):
    async def start(self, query_id: uuid.UUID) -> None: ...


class NoDiscovery:
    """Without a discovery service the monitor needs the user's URLs."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def start(self, query_id: uuid.UUID) -> None:
        async with self.database.as_service() as session:
            await mark_needs_sources(session, query_id, NOT_CONFIGURED)
