"""Senders: one per channel kind. Each sends one message once and reports how it went.

A sender returns a `SendResult` or raises `DeliveryError`, whose `retryable` and `retry_after`
follow `torale.net.retry`'s convention; the delivery service decides when to try again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from torale.net.retry import parse_retry_after

EXCERPT_BYTES = 2048


@dataclass(frozen=True)
class Destination:
    """Where a message goes: a channel's kind and configuration (and its signing secret)."""

    channel_id: uuid.UUID
    kind: str
    config: dict[str, Any]
    secret: str | None


@dataclass(frozen=True)
class SendResult:
    response_code: int | None = None
    excerpt: str | None = None


class DeliveryError(Exception):
    """A send that did not succeed; `message` is safe to show the user (no secrets)."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        response_code: int | None = None,
        retry_after: float | None = None,
        excerpt: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.response_code = response_code
        self.retry_after = retry_after
        self.excerpt = excerpt


def excerpt_of(data: bytes | str | None) -> str | None:
    """The first 2 KB of a response, as text Postgres can store."""
    if not data:
        return None
    raw = data.encode() if isinstance(data, str) else data
    return raw[:EXCERPT_BYTES].decode("utf-8", errors="replace").replace("\x00", "")


async def read_prefix(response: httpx.Response, limit: int = EXCERPT_BYTES) -> bytes:
    """At most `limit` bytes of a streamed response body (the rest is never downloaded)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def check_http_status(status: int, headers: httpx.Headers, body: bytes, what: str) -> SendResult:
    """2xx succeeds; 429 and 5xx are retried (honouring Retry-After); anything else fails."""
    excerpt = excerpt_of(body)
    if 200 <= status < 300:
        return SendResult(response_code=status, excerpt=excerpt)
    if status == 429 or status >= 500:
        raise DeliveryError(
            f"{what} answered HTTP {status}",
            retryable=True,
            response_code=status,
            retry_after=parse_retry_after(headers.get("retry-after")),
            excerpt=excerpt,
        )
    if 300 <= status < 400:
        raise DeliveryError(
            f"{what} answered HTTP {status} (a redirect); redirects are not followed",
            retryable=False,
            response_code=status,
            excerpt=excerpt,
        )
    raise DeliveryError(
        f"{what} answered HTTP {status}", retryable=False, response_code=status, excerpt=excerpt
    )


def transport_failure(exc: Exception, what: str, timeout: float) -> DeliveryError:
    """A failure before any response: timeouts and network trouble are retried."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return DeliveryError(f"{what} timed out after {timeout:g}s", retryable=True)
    detail = str(exc) or type(exc).__name__
    return DeliveryError(f"could not reach {what}: {detail}", retryable=True)
