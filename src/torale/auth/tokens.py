"""Access tokens: verify Supabase JWTs (HS256 secret or the project's JWKS) and issue our own.

Local auth and service-to-service calls sign with `SUPABASE_JWT_SECRET` (HS256), exactly as a
Supabase project's GoTrue does, so one verifier accepts both hosted and local tokens.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import structlog

from torale.config import Settings

log = structlog.get_logger(__name__)

AUDIENCE = "authenticated"
JWKS_MIN_REFRESH_SECONDS = 60.0
_ASYMMETRIC = ("ES256", "RS256")


class InvalidToken(Exception):
    """The bearer token cannot be accepted; the message says why, without echoing it."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user (sub, email) or the service role."""

    role: str
    user_id: uuid.UUID | None
    email: str | None
    claims: dict[str, Any]

    @property
    def is_service(self) -> bool:
        return self.role == "service_role"


class JWKSCache:
    """The project's JWKS, fetched lazily and again on an unknown `kid`, at most once a minute."""

    def __init__(self, url: str, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self._client = client
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> jwt.PyJWK:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys and self._may_refresh():
                await self._refresh()
        if kid not in self._keys:
            raise InvalidToken("token signed with an unknown key")
        return self._keys[kid]

    def _may_refresh(self) -> bool:
        return (
            time.monotonic() - self._fetched_at >= JWKS_MIN_REFRESH_SECONDS or not self._fetched_at
        )

    async def _refresh(self) -> None:
        self._fetched_at = time.monotonic()
        client = self._client or httpx.AsyncClient(timeout=10)
        try:
            response = await client.get(self.url)
            response.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(response.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.warning("jwks fetch failed", url=self.url, error=str(exc))
            return
        finally:
            if self._client is None:
                await client.aclose()
        self._keys = {key.key_id: key for key in keys if key.key_id}
        log.info("jwks refreshed", url=self.url, keys=len(self._keys))


class TokenVerifier:
    """Checks signature, expiry, audience and role of a bearer token."""

    def __init__(self, settings: Settings, jwks: JWKSCache | None = None) -> None:
        self._secret = settings.supabase_jwt_secret.get_secret_value()
        if jwks is None and settings.supabase_url is not None:
            base = str(settings.supabase_url).rstrip("/")
            jwks = JWKSCache(f"{base}/auth/v1/.well-known/jwks.json")
        self._jwks = jwks

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        key: Any
        if algorithm == "HS256":
            key = self._secret
        elif algorithm in _ASYMMETRIC:
            if self._jwks is None or not header.get("kid"):
                raise InvalidToken(f"{algorithm} token but no JWKS is configured (SUPABASE_URL)")
            key = (await self._jwks.key(str(header["kid"]))).key
        else:
            raise InvalidToken(f"unsupported token algorithm {algorithm!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=AUDIENCE,
                options={"require": ["exp", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("token audience is not 'authenticated'") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        return _principal(claims)


def _principal(claims: dict[str, Any]) -> Principal:
    role = str(claims.get("role"))
    if role == "service_role":
        return Principal(role=role, user_id=None, email=None, claims=claims)
    if role != "authenticated":
        raise InvalidToken(f"role {role!r} may not call this API")
    try:
        user_id = uuid.UUID(str(claims.get("sub")))
    except ValueError:
        raise InvalidToken("token subject is not a user id") from None
    return Principal(role=role, user_id=user_id, email=claims.get("email"), claims=claims)


def issue_access_token(
    settings: Settings,
    user_id: uuid.UUID,
    email: str | None,
    *,
    session_id: uuid.UUID | None = None,
    ttl_seconds: int = 3600,
) -> tuple[str, int]:
    """A Supabase-shaped access token for a user; returns (token, expires_at)."""
    now = int(time.time())
    expires_at = now + ttl_seconds
    claims = {
        "aud": AUDIENCE,
        "exp": expires_at,
        "iat": now,
        "iss": f"{settings.gateway_url}/auth/v1",
        "sub": str(user_id),
        "email": email,
        "role": "authenticated",
        "aal": "aal1",
        "session_id": str(session_id) if session_id else None,
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
    }
    token = jwt.encode(claims, settings.supabase_jwt_secret.get_secret_value(), algorithm="HS256")
    return token, expires_at


def issue_service_token(settings: Settings, *, ttl_seconds: int = 60) -> str:
    """A short-lived token for service-to-service calls (role service_role)."""
    now = int(time.time())
    claims = {"aud": AUDIENCE, "exp": now + ttl_seconds, "iat": now, "role": "service_role"}
    return jwt.encode(claims, settings.supabase_jwt_secret.get_secret_value(), algorithm="HS256")
