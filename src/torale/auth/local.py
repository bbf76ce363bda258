"""Local auth: the subset of Supabase Auth (GoTrue) that supabase-js uses for email + password.

Users live in `auth.users`, passwords are hashed with Argon2id, refresh tokens are stored as
hashes, rotated on every use and revoked on logout; re-using a rotated token revokes the
whole session (it means the token leaked).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from torale.auth.tokens import issue_access_token
from torale.config import Settings

ACCESS_TOKEN_TTL = 3600
MIN_PASSWORD_LENGTH = 8
_hasher = PasswordHasher()
# verifying against this keeps the timing of "no such user" equal to "wrong password"
_DUMMY_HASH = _hasher.hash("torale-dummy-password")


class AuthError(Exception):
    """A GoTrue-style error: HTTP status, `error_code`, and a message for the user."""

    def __init__(
        self, status: int, error_code: str, message: str, *, end_session: uuid.UUID | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.end_session = end_session  # to be ended in its own transaction (this one rolls back)


@dataclass(frozen=True)
class UserRecord:
    id: uuid.UUID
    email: str
    created_at: datetime
    updated_at: datetime
    email_confirmed_at: datetime | None
    last_sign_in_at: datetime | None
    user_metadata: dict[str, Any]

    def to_gotrue(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": str(self.id),
            "aud": "authenticated",
            "role": "authenticated",
            "email": self.email,
            "email_confirmed_at": iso(self.email_confirmed_at),
            "confirmed_at": iso(self.email_confirmed_at),
            "phone": "",
            "last_sign_in_at": iso(self.last_sign_in_at),
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "user_metadata": self.user_metadata,
            "identities": [],
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "is_anonymous": False,
        }


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_USER_COLUMNS = (
    "id, email, created_at, updated_at, email_confirmed_at, last_sign_in_at, "
    "coalesce(raw_user_meta_data, '{}'::jsonb) as meta"
)


def _record(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        created_at=row.created_at,
        updated_at=row.updated_at,
        email_confirmed_at=row.email_confirmed_at,
        last_sign_in_at=row.last_sign_in_at,
        user_metadata=dict(row.meta or {}),
    )


class LocalAuth:
    """Sign-up, password and refresh-token grants, user lookup and logout; as the service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def create_user(
        self,
        session: AsyncSession,
        email: str,
        password: str,
        metadata: dict[str, Any] | None = None,
    ) -> UserRecord:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AuthError(
                422,
                "weak_password",
                f"Password should be at least {MIN_PASSWORD_LENGTH} characters.",
            )
        password_hash = await asyncio.to_thread(_hasher.hash, password)
        row = (
            await session.execute(
                text(
                    "insert into auth.users (email, encrypted_password, email_confirmed_at,"
                    " raw_user_meta_data) values (lower(:email), :hash, now(), cast(:meta as jsonb))"
                    f" on conflict (email) do nothing returning {_USER_COLUMNS}"
                ),
                {"email": email, "hash": password_hash, "meta": _json(metadata or {})},
            )
        ).first()
        if row is None:
            raise AuthError(422, "user_already_exists", "User already registered")
        return _record(row)

    async def user_by_email(self, session: AsyncSession, email: str) -> UserRecord | None:
        row = (
            await session.execute(
                text(f"select {_USER_COLUMNS} from auth.users where email = lower(:email)"),
                {"email": email},
            )
        ).first()
        return _record(row) if row else None

    async def user_by_id(self, session: AsyncSession, user_id: uuid.UUID) -> UserRecord | None:
        row = (
            await session.execute(
                text(f"select {_USER_COLUMNS} from auth.users where id = :id"), {"id": user_id}
            )
        ).first()
        return _record(row) if row else None

    async def sign_in(self, session: AsyncSession, email: str, password: str) -> dict[str, Any]:
        row = (
            await session.execute(
                text("select id, encrypted_password from auth.users where email = lower(:email)"),
                {"email": email},
            )
        ).first()
        stored = row.encrypted_password if row and row.encrypted_password else _DUMMY_HASH
        try:
            await asyncio.to_thread(_hasher.verify, stored, password)
            valid = row is not None and row.encrypted_password is not None
        except (VerificationError, InvalidHashError):
            valid = False
        if not valid or row is None:
            raise AuthError(400, "invalid_credentials", "Invalid login credentials")
        await session.execute(
            text("update auth.users set last_sign_in_at = now() where id = :id"), {"id": row.id}
        )
        session_id = (
            await session.execute(
                text("insert into auth.sessions (user_id) values (:id) returning id"),
                {"id": row.id},
            )
        ).scalar_one()
        return await self._session_response(session, row.id, session_id, parent=None)

    async def refresh(self, session: AsyncSession, refresh_token: str) -> dict[str, Any]:
        row = (
            await session.execute(
                text(
                    "select id, user_id, revoked, session_id from auth.refresh_tokens"
                    " where token = :token for update"
                ),
                {"token": _hash_token(refresh_token)},
            )
        ).first()
        if row is None or row.session_id is None:
            raise AuthError(
                400, "refresh_token_not_found", "Invalid Refresh Token: Refresh Token Not Found"
            )
        if row.revoked:
            # a rotated token came back: assume it leaked and end the session
            raise AuthError(
                400,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
                end_session=row.session_id,
            )
        await session.execute(
            text(
                "update auth.refresh_tokens set revoked = true, updated_at = now() where id = :id"
            ),
            {"id": row.id},
        )
        return await self._session_response(
            session, uuid.UUID(row.user_id), row.session_id, parent=_hash_token(refresh_token)
        )

    async def logout(
        self, session: AsyncSession, session_id: uuid.UUID | None, user_id: uuid.UUID, scope: str
    ) -> None:
        if scope == "global" or session_id is None:
            await session.execute(
                text("delete from auth.sessions where user_id = :uid"), {"uid": user_id}
            )
        elif scope == "others":
            await session.execute(
                text("delete from auth.sessions where user_id = :uid and id <> :sid"),
                {"uid": user_id, "sid": session_id},
            )
        else:
            await session.execute(
                text("delete from auth.sessions where id = :sid"), {"sid": session_id}
            )

    async def end_session(self, session: AsyncSession, session_id: uuid.UUID) -> None:
        await session.execute(
            text("delete from auth.sessions where id = :sid"), {"sid": session_id}
        )

    async def session_is_live(self, session: AsyncSession, session_id: uuid.UUID) -> bool:
        found = await session.scalar(
            text("select 1 from auth.sessions where id = :sid"), {"sid": session_id}
        )
        return found is not None

    async def _session_response(
        self, session: AsyncSession, user_id: uuid.UUID, session_id: uuid.UUID, parent: str | None
    ) -> dict[str, Any]:
        refresh_token = secrets.token_urlsafe(32)
        await session.execute(
            text(
                "insert into auth.refresh_tokens (token, user_id, parent, session_id)"
                " values (:token, :uid, :parent, :sid)"
            ),
            {
                "token": _hash_token(refresh_token),
                "uid": str(user_id),
                "parent": parent,
                "sid": session_id,
            },
        )
        user = await self.user_by_id(session, user_id)
        assert user is not None
        access_token, expires_at = issue_access_token(
            self.settings, user_id, user.email, session_id=session_id, ttl_seconds=ACCESS_TOKEN_TTL
        )
        return {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_TTL,
            "expires_at": expires_at,
            "refresh_token": refresh_token,
            "user": user.to_gotrue(),
        }


def _json(value: dict[str, Any]) -> str:
    import json

    return json.dumps(value)
