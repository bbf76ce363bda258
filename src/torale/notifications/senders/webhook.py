"""Signed webhooks (Standard Webhooks): one POST, SSRF-guarded, bounded in time, no redirects.

The `webhook-id` is the delivery's message id, the same on every attempt, so a receiver that
remembers ids drops the duplicate an at-least-once resend may produce. The timestamp and the
signature are made fresh for each attempt.
"""

from __future__ import annotations

import asyncio
import base64
import re
import secrets
from datetime import UTC, datetime

import httpx
from standardwebhooks import Webhook

from torale.config import Settings
from torale.net import ssrf
from torale.notifications.messages import Message
from torale.notifications.senders import (
    DeliveryError,
    Destination,
    SendResult,
    check_http_status,
    read_prefix,
    transport_failure,
)

MAX_HEADERS = 20
MAX_HEADER_NAME = 64
MAX_HEADER_VALUE = 1024
MAX_HEADER_BYTES = 4096
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
_FORBIDDEN = frozenset(
    {
        # set by the HTTP client or meaningless end to end (hop-by-hop)
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "expect",
        # ours: the body and its signature
        "content-type",
        "content-encoding",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def validate_headers(headers: dict[str, str]) -> dict[str, str]:
    """Custom headers a user may add; raises ValueError('<name>: why') for the first bad one."""
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers")
    total = 0
    seen: set[str] = set()
    for name, value in headers.items():
        if not name or len(name) > MAX_HEADER_NAME or not _TOKEN.match(name):
            raise ValueError(f"{name[:MAX_HEADER_NAME]}: not a valid header name")
        lower = name.lower()
        if lower in _FORBIDDEN:
            raise ValueError(f"{name}: this header cannot be set")
        if lower in seen:
            raise ValueError(f"{name}: given twice")
        seen.add(lower)
        if (
            len(value) > MAX_HEADER_VALUE
            or any(ch in value for ch in "\r\n\x00")
            or not value.isprintable()
        ):
            raise ValueError(f"{name}: value must be one printable line of at most 1024 characters")
        total += len(name) + len(value)
    if total > MAX_HEADER_BYTES:
        raise ValueError(f"headers must total at most {MAX_HEADER_BYTES} characters")
    return dict(headers)


async def check_target(url: str, settings: Settings) -> str:
    """The SSRF guard for a webhook URL; returns it normalised or raises UnsafeURLError."""
    safe = await ssrf.check_url(url, allow_private=settings.allow_private_urls)
    return safe.url


async def send_webhook(
    client: httpx.AsyncClient, settings: Settings, destination: Destination, message: Message
) -> SendResult:
    """POST the signed event; the client must come from `create_http_client` (connect guard)."""
    if message.event_type is None:
        raise DeliveryError(f"{message.kind} messages are not sent to webhooks", retryable=False)
    if not destination.secret:
        raise DeliveryError("this webhook has no signing secret", retryable=False)
    timeout = settings.webhook_timeout
    try:
        url = await check_target(str(destination.config.get("url", "")), settings)
    except ssrf.UnsafeURLError as exc:
        unresolved = str(exc).startswith("cannot resolve host")
        raise DeliveryError(f"refused: {exc}", retryable=unresolved) from None
    body = message.webhook_body()
    now = datetime.now(UTC)
    signature = Webhook(destination.secret).sign(message.message_id, now, body.decode())
    headers = {
        **{str(k): str(v) for k, v in dict(destination.config.get("headers") or {}).items()},
        "content-type": "application/json",
        "webhook-id": message.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    request = client.build_request(
        "POST", url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
    )
    try:
        async with asyncio.timeout(timeout):  # the whole exchange, not only each read
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                prefix = await read_prefix(response)
            finally:
                await response.aclose()
    except ssrf.UnsafeURLError as exc:  # refused at connect time (the host re-resolved)
        unresolved = str(exc).startswith("cannot resolve host")
        raise DeliveryError(f"refused: {exc}", retryable=unresolved) from None
    except (httpx.HTTPError, TimeoutError, OSError) as exc:
        raise transport_failure(exc, "the webhook", timeout) from None
    return check_http_status(response.status_code, response.headers, prefix, "the webhook")
