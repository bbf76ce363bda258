"""Rate limits per user and per IP with the `limits` library; Redis storage shares the count."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from torale.errors import RateLimited


class RateLimits:
    def __init__(self, redis_url: str, *, user: str, ip: str, auth: str) -> None:
        storage_url = redis_url.replace("redis://", "async+redis://", 1).replace(
            "rediss://", "async+rediss://", 1
        )
        self.storage = RedisStorage(storage_url)
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.user = parse(user)
        self.ip = parse(ip)
        self.auth = parse(auth)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> None:
        """Count one request; raise RateLimited with Retry-After once over the limit."""
        if not await self.limiter.hit(item, *identifiers):
            await self._refuse(item, *identifiers)

    async def check(self, item: RateLimitItem, *identifiers: str) -> None:
        """Raise RateLimited if the limit is already used up, without counting this call."""
        if not await self.limiter.test(item, *identifiers):
            await self._refuse(item, *identifiers)

    async def _refuse(self, item: RateLimitItem, *identifiers: str) -> None:
        stats = await self.limiter.get_window_stats(item, *identifiers)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise RateLimited(
            f"too many requests: limit is {item}; try again in {retry_after}s",
            retry_after=retry_after,
        )

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        await self.limiter.clear(item, *identifiers)
