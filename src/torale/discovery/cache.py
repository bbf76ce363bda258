"""Discovery answers cached in Redis, keyed by the normalised query and the provider chain."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError

from torale.discovery.schemas import DiscoverResponse

log = structlog.get_logger(__name__)

KEY_PREFIX = "torale:discovery:v1:"


def normalise_query(raw_query: str) -> str:
    """Case, spacing and trailing punctuation do not make a different question."""
    return re.sub(r"[\s.!?]+$", "", " ".join(raw_query.split()).lower())


def cache_key(raw_query: str, chain: Sequence[str], max_sources: int) -> str:
    material = json.dumps(
        {"q": normalise_query(raw_query), "chain": list(chain), "n": max_sources},
        separators=(",", ":"),
    )
    return KEY_PREFIX + hashlib.sha256(material.encode()).hexdigest()


class DiscoveryCache:
    """A best-effort cache: a Redis failure is logged and treated as a miss, never an error."""

    def __init__(self, redis: aioredis.Redis, *, ttl_seconds: int) -> None:
        self.redis = redis
        self.ttl_seconds = ttl_seconds

    async def get(self, key: str) -> DiscoverResponse | None:
        try:
            raw = await self.redis.get(key)
        except RedisError as exc:
            log.warning("discovery_cache_unavailable", op="get", error_class=type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return DiscoverResponse.model_validate_json(raw)
        except ValidationError:
            return None  # written by an older schema; recompute

    async def set(self, key: str, response: DiscoverResponse) -> None:
        if self.ttl_seconds <= 0:
            return
        try:
            await self.redis.set(key, response.model_dump_json(), ex=self.ttl_seconds)
        except RedisError as exc:
            log.warning("discovery_cache_unavailable", op="set", error_class=type(exc).__name__)
