"""Per-host politeness shared by every worker: a concurrency cap and a minimum delay between starts.

`DomainGate.slot(host)` waits until (1) fewer than `concurrency` requests to that host are in
flight across all processes, and (2) at least `min_delay` seconds have passed since the previous
request to that host *started*; then the caller makes its request inside the block.

With Redis, the in-flight requests are leases in a sorted set scored by their expiry, taken and
pruned atomically by a Lua script, so a worker that crashes mid-request frees its slot when the
lease expires (`lease_ttl`; callers bound their work within it). The next allowed start time
is one Redis key advanced atomically by a second script. Redis's own clock is used, so workers
with skewed clocks agree. The commands of concurrent callers on one event loop (the checks of a
batch) go to Redis together, one pipeline per round trip. Without Redis, `LocalDomainGate`
gives the same semantics within one process.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from torale.coalesce import Coalescer

__all__ = [
    "DomainGate",
    "Lease",
    "LocalDomainGate",
    "PolitenessTimeout",
    "RedisDomainGate",
    "domain_gate",
]

DEFAULT_WAIT_TIMEOUT = 120.0
DEFAULT_LEASE_TTL = 120.0
_POLL_MIN = 0.02
_POLL_MAX = 0.1
_LOCAL_PRUNE_AT = 1024

# KEYS[1] leases zset; ARGV: limit, lease id, ttl ms. Returns 1 when the lease was taken.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  local ttl = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
  local longest = tonumber(redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
  redis.call('PEXPIRE', KEYS[1], math.max(longest - now, ttl))
  return 1
end
return 0
"""

# KEYS[1] next-start key; ARGV: delay ms. Reserves the next start; returns ms to wait for it.
_RESERVE_START = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local delay = tonumber(ARGV[1])
redis.call('SET', KEYS[1], start + delay, 'PX', start - now + delay + 1000)
return start - now
"""


class PolitenessTimeout(Exception):
    """No slot for the host became free within the wait timeout."""

    def __init__(self, host: str, timeout: float) -> None:
        self.host = host
        self.timeout = timeout
        super().__init__(
            f"no free request slot for {host} within {timeout:.0f}s (politeness limit)"
        )


@dataclass(frozen=True)
class Lease:
    """One in-flight request slot for a host."""

    host: str
    id: str


class DomainGate(ABC):
    """A concurrency cap and a minimum delay between request starts, per host."""

    def __init__(self, *, concurrency: int, min_delay: float, wait_timeout: float) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.min_delay = min_delay
        self.wait_timeout = wait_timeout

    @abstractmethod
    async def _try_acquire(self, host: str, lease: Lease) -> bool:
        """Take a slot for `lease` if one is free, without waiting."""

    @abstractmethod
    async def _reserve_start(self, host: str) -> float:
        """Book the host's next start turn; seconds until it comes."""

    @abstractmethod
    async def release(self, lease: Lease) -> None:
        """Give the slot back (idempotent)."""

    async def acquire(self, host: str) -> Lease:
        """Wait for a concurrency slot, then for this host's next start turn; return the lease."""
        lease = Lease(host=host, id=uuid.uuid4().hex)
        deadline = time.monotonic() + self.wait_timeout
        while not await self._try_acquire(host, lease):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PolitenessTimeout(host, self.wait_timeout)
            await asyncio.sleep(min(remaining, random.uniform(_POLL_MIN, _POLL_MAX)))
        if self.min_delay > 0:
            try:
                wait = await self._reserve_start(host)
                if wait > 0:
                    await asyncio.sleep(wait)
            except BaseException:
                await self.release(lease)
                raise
        return lease

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[Lease]:
        """Hold a slot for `host` for the duration of the block."""
        lease = await self.acquire(host)
        try:
            yield lease
        finally:
            await self.release(lease)


class RedisDomainGate(DomainGate):
    """The gate shared by all processes through Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        concurrency: int,
        min_delay: float,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        key_prefix: str = "torale:polite",
    ) -> None:
        super().__init__(concurrency=concurrency, min_delay=min_delay, wait_timeout=wait_timeout)
        self.redis = redis
        self.lease_ttl = lease_ttl
        self.key_prefix = key_prefix
        self._acquire_sha = redis.register_script(_ACQUIRE).sha
        self._reserve_sha = redis.register_script(_RESERVE_START).sha
        self._commands: Coalescer[tuple[Any, ...], Any] = Coalescer(self._pipeline, max_batch=256)

    def _key(self, host: str, kind: str) -> str:
        return f"{self.key_prefix}:{kind}:{host}"

    async def _command(self, *command: Any) -> Any:
        result = await self._commands(command)
        if isinstance(result, Exception):
            raise result
        return result

    async def _pipeline(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send commands in one round trip; each result is a reply or that command's error.
        Scripts go by SHA, loaded on the first NOSCRIPT (a new or flushed Redis)."""
        results = await self._send(commands)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            for script in (_ACQUIRE, _RESERVE_START):
                await self.redis.script_load(script)
            retried = await self._send([commands[i] for i in missing])
            for i, result in zip(missing, retried, strict=True):
                results[i] = result
        return results

    async def _send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    async def _try_acquire(self, host: str, lease: Lease) -> bool:
        ttl_ms = max(1, int(self.lease_ttl * 1000))
        key = self._key(host, "leases")
        taken = await self._command("EVALSHA", self._acquire_sha, 1, key, self.concurrency,
                                    lease.id, ttl_ms)  # fmt: skip
        return bool(taken)

    async def _reserve_start(self, host: str) -> float:
        delay_ms = max(1, int(self.min_delay * 1000))
        key = self._key(host, "next")
        wait_ms = await self._command("EVALSHA", self._reserve_sha, 1, key, delay_ms)
        return int(wait_ms) / 1000

    async def release(self, lease: Lease) -> None:
        await self._command("ZREM", self._key(lease.host, "leases"), lease.id)


class _LocalHost:
    """In-process state for one host."""

    def __init__(self) -> None:
        self.leases: set[str] = set()
        self.next_start = 0.0


class LocalDomainGate(DomainGate):
    """The same gate within one process, for running without Redis."""

    def __init__(
        self, *, concurrency: int, min_delay: float, wait_timeout: float = DEFAULT_WAIT_TIMEOUT
    ) -> None:
        super().__init__(concurrency=concurrency, min_delay=min_delay, wait_timeout=wait_timeout)
        self._hosts: dict[str, _LocalHost] = {}

    def _state(self, host: str) -> _LocalHost:
        state = self._hosts.get(host)
        if state is None:
            if len(self._hosts) >= _LOCAL_PRUNE_AT:
                now = time.monotonic()
                self._hosts = {
                    h: s for h, s in self._hosts.items() if s.leases or s.next_start > now
                }
            state = self._hosts[host] = _LocalHost()
        return state

    async def _try_acquire(self, host: str, lease: Lease) -> bool:
        state = self._state(host)
        if len(state.leases) >= self.concurrency:
            return False
        state.leases.add(lease.id)
        return True

    async def _reserve_start(self, host: str) -> float:
        state = self._state(host)
        now = time.monotonic()
        start = max(now, state.next_start)
        state.next_start = start + self.min_delay
        return start - now

    async def release(self, lease: Lease) -> None:
        state = self._hosts.get(lease.host)
        if state is not None:
            state.leases.discard(lease.id)


def domain_gate(
    redis: Redis | None,
    *,
    concurrency: int,
    min_delay: float,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    key_prefix: str = "torale:polite",
) -> RedisDomainGate | LocalDomainGate:
    """The Redis gate when Redis is given, else the in-process one."""
    if redis is None:
        return LocalDomainGate(
            concurrency=concurrency, min_delay=min_delay, wait_timeout=wait_timeout
        )
    return RedisDomainGate(
        redis,
        concurrency=concurrency,
        min_delay=min_delay,
        wait_timeout=wait_timeout,
        lease_ttl=lease_ttl,
        key_prefix=key_prefix,
    )
