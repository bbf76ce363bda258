"""`/auth/v1`: Supabase Auth's email + password subset, so supabase-js works unchanged locally."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError

from torale.auth.dependencies import CurrentUser
from torale.auth.local import AuthError, LocalAuth
from torale.errors import RateLimited
from torale.gateway.deps import DatabaseDep, client_ip, limit_by_ip
from torale.gateway.ratelimit import RateLimits

router = APIRouter(prefix="/auth/v1", tags=["auth"], dependencies=[Depends(limit_by_ip)])


class SignUp(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: EmailStr
    password: str = Field(max_length=1024)
    data: dict[str, Any] | None = None


class PasswordGrant(BaseModel):
    model_config = ConfigDict(extra="ignore")
    email: EmailStr
    password: str = Field(max_length=1024)


class RefreshGrant(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: str = Field(min_length=1, max_length=512)


def gotrue_error(error: AuthError) -> JSONResponse:
    return JSONResponse(
        {"code": error.status, "error_code": error.error_code, "msg": error.message},
        status_code=error.status,
    )


def local_auth(request: Request) -> LocalAuth:
    auth: LocalAuth = request.app.state.local_auth
    return auth


LocalAuthDep = Annotated[LocalAuth, Depends(local_auth)]


async def _parse(request: Request, model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(await request.json())
    except ValueError as exc:
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else "invalid JSON body"
        raise AuthError(400, "validation_failed", detail) from None


@router.post("/signup")
async def signup(request: Request, db: DatabaseDep, auth: LocalAuthDep) -> Response:
    try:
        body: SignUp = await _parse(request, SignUp)
        async with db.as_auth_owner() as session:
            await auth.create_user(session, str(body.email), body.password, body.data)
            response = await auth.sign_in(session, str(body.email), body.password)
    except AuthError as error:
        return gotrue_error(error)
    return JSONResponse(response)


@router.post("/token")
async def token(
    request: Request,
    db: DatabaseDep,
    auth: LocalAuthDep,
    grant_type: Annotated[Literal["password", "refresh_token"], Query()],
) -> Response:
    limits: RateLimits = request.app.state.rate_limits
    try:
        if grant_type == "password":
            body: PasswordGrant = await _parse(request, PasswordGrant)
            # brute force: failed attempts are limited per address and per account
            keys = [("login-ip", client_ip(request)), ("login-email", str(body.email).lower())]
            for key in keys:
                await limits.check(limits.auth, *key)
            try:
                async with db.as_auth_owner() as session:
                    response = await auth.sign_in(session, str(body.email), body.password)
            except AuthError:
                for key in keys:
                    await limits.hit(limits.auth, *key)
                raise
        else:
            refresh: RefreshGrant = await _parse(request, RefreshGrant)
            async with db.as_auth_owner() as session:
                response = await auth.refresh(session, refresh.refresh_token)
    except AuthError as error:
        if error.end_session is not None:
            async with db.as_auth_owner() as session:
                await auth.end_session(session, error.end_session)
        return gotrue_error(error)
    except RateLimited as limited:
        return JSONResponse(
            {"code": 429, "error_code": "over_request_rate_limit", "msg": limited.message},
            status_code=429,
            headers={"Retry-After": str(limited.retry_after)},
        )
    return JSONResponse(response)


@router.get("/user")
async def get_user(user: CurrentUser, db: DatabaseDep, auth: LocalAuthDep) -> Response:
    assert user.user_id
    async with db.as_auth_owner() as session:
        session_id = user.claims.get("session_id")
        if session_id and not await auth.session_is_live(session, uuid.UUID(session_id)):
            return gotrue_error(
                AuthError(
                    403, "session_not_found", "Session from session_id claim in JWT does not exist"
                )
            )
        record = await auth.user_by_id(session, user.user_id)
    if record is None:
        return gotrue_error(
            AuthError(404, "user_not_found", "User from sub claim in JWT does not exist")
        )
    return JSONResponse(record.to_gotrue())


@router.post("/logout", status_code=204)
async def logout(
    user: CurrentUser,
    db: DatabaseDep,
    auth: LocalAuthDep,
    scope: Annotated[Literal["global", "local", "others"], Query()] = "global",
) -> Response:
    assert user.user_id
    session_id = user.claims.get("session_id")
    async with db.as_auth_owner() as session:
        await auth.logout(
            session, uuid.UUID(session_id) if session_id else None, user.user_id, scope
        )
    return Response(status_code=204)


@router.get("/settings")
async def auth_settings() -> dict[str, Any]:
    """What GoTrue advertises; supabase-js and dashboards read it."""
    return {
        "external": {"email": True, "phone": False},
        "disable_signup": False,
        "mailer_autoconfirm": True,
        "phone_autoconfirm": False,
        "sms_provider": "",
        "saml_enabled": False,
    }
