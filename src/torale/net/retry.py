"""The one retry policy: exponential backoff with full jitter, honouring Retry-After.

An exception is retried when it says so: it carries `retryable = True` and, optionally,
`retry_after` (seconds the server asked us to wait). Fetching, webhook delivery and AI calls
raise their own error types with those two attributes and share this policy::

    policy = RetryPolicy(retries=3, base=0.5, cap=30.0)
    result = await policy.call(lambda: deliver(webhook))

When the server asks for a longer wait than `max_retry_after`, the policy gives up at once
and re-raises the error unchanged, so the caller can reschedule the work for later.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

import structlog

__all__ = ["RetryPolicy", "parse_retry_after"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `retries` further attempts after the first, with full-jitter exponential backoff."""

    retries: int = 3
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: a uniform delay in [0, min(cap, base * 2**attempt)] (attempt counts from 0)."""
        return random.uniform(0.0, min(self.cap, self.base * (2**attempt)))

    def delay_before_retry(self, error: BaseException, attempt: int) -> float | None:
        """Seconds to wait before retrying after `error` on attempt `attempt`, or None to give up."""
        if not getattr(error, "retryable", False) or attempt >= self.retries:
            return None
        retry_after = getattr(error, "retry_after", None)
        if retry_after is None:
            return self.backoff(attempt)
        if retry_after > self.max_retry_after:
            return None  # the caller reschedules, using the error's retry_after
        return float(retry_after)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Await `operation()`, retrying it as the policy allows; the last error propagates."""
        attempt = 0
        while True:
            try:
                return await operation()
            except Exception as error:
                delay = self.delay_before_retry(error, attempt)
                if delay is None:
                    raise
                log.info(
                    "retrying",
                    attempt=attempt + 1,
                    retries=self.retries,
                    delay=round(delay, 3),
                    error=str(error),
                )
                await asyncio.sleep(delay)
                attempt += 1
