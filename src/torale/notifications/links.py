"""Links and codes in messages: signed unsubscribe tokens, email verification codes, app URLs.

Everything is an HMAC under one key (`TORALE_LINK_SIGNING_SECRET`, else `SUPABASE_JWT_SECRET`)
with a purpose label, so the gateway and the workers agree without storing anything secret.
A verification code is derived from the channel and the verification delivery's message id:
the worker that renders the email recomputes it; the database holds only its hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import datetime
from urllib.parse import urlencode

from torale.config import Settings

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_CODE_LENGTH = 8  # 40 bits


def _mac(settings: Settings, purpose: str, *parts: str) -> bytes:
    secret = settings.link_signing_secret or settings.supabase_jwt_secret
    message = "\x00".join((f"torale-{purpose}", *parts)).encode()
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).digest()


def api_base(settings: Settings) -> str:
    """Where users' browsers reach the gateway (`TORALE_PUBLIC_URL`, else the gateway address)."""
    return str(settings.public_url or settings.gateway_url).rstrip("/")


def app_base(settings: Settings) -> str:
    """Where the web app lives (`TORALE_APP_URL`, else the local web port)."""
    return str(settings.app_url or f"http://localhost:{settings.web_port}").rstrip("/")


def alert_url(settings: Settings, alert_id: uuid.UUID) -> str:
    return f"{app_base(settings)}/alerts/{alert_id}"


def settings_url(settings: Settings) -> str:
    return f"{app_base(settings)}/settings"


# ------------------------------------------------------------------ unsubscribe


def unsubscribe_token(settings: Settings, channel_id: uuid.UUID) -> str:
    signature = base64.urlsafe_b64encode(_mac(settings, "unsubscribe", str(channel_id)))
    return f"{channel_id.hex}.{signature.decode().rstrip('=')}"


def read_unsubscribe_token(settings: Settings, token: str) -> uuid.UUID | None:
    """The channel a genuine token names, or None."""
    raw_id, _, _ = token.partition(".")
    try:
        channel_id = uuid.UUID(hex=raw_id)
    except ValueError:
        return None
    expected = unsubscribe_token(settings, channel_id)
    return channel_id if hmac.compare_digest(expected.encode(), token.encode()) else None


def unsubscribe_url(settings: Settings, channel_id: uuid.UUID) -> str:
    query = urlencode({"token": unsubscribe_token(settings, channel_id)})
    return f"{api_base(settings)}/api/v1/notification-links/unsubscribe?{query}"


# ------------------------------------------------------------------ verification


def verification_code(settings: Settings, channel_id: uuid.UUID, message_id: str) -> str:
    """The code mailed by the verification delivery `message_id`, shown as `XXXX-XXXX`."""
    value = int.from_bytes(_mac(settings, "verify", str(channel_id), message_id)[:5], "big")
    chars = [CODE_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(_CODE_LENGTH))]
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


def normalize_code(code: str) -> str:
    """Upper-case, no separators, and the look-alikes Crockford maps (O→0, I/L→1)."""
    cleaned = "".join(ch for ch in code.upper() if ch.isalnum())
    return cleaned.translate(str.maketrans("OIL", "011"))


def verification_record(channel_id: uuid.UUID, code: str, expires_at: datetime) -> str:
    """What `verification_token_hash` stores: expiry and a hash of the code, never the code."""
    digest = hashlib.sha256(f"{channel_id}:{normalize_code(code)}".encode()).hexdigest()
    return f"{int(expires_at.timestamp())}:{digest}"


def code_matches(record: str | None, channel_id: uuid.UUID, code: str, now: datetime) -> bool:
    if not record or ":" not in record:
        return False
    expires, _, digest = record.partition(":")
    if not expires.isdigit() or int(expires) < now.timestamp():
        return False
    offered = hashlib.sha256(f"{channel_id}:{normalize_code(code)}".encode()).hexdigest()
    return hmac.compare_digest(offered, digest)


def verify_url(settings: Settings, channel_id: uuid.UUID, code: str) -> str:
    query = urlencode({"channel_id": str(channel_id), "code": code})
    return f"{api_base(settings)}/api/v1/notification-links/verify?{query}"
