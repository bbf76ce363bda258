"""FastAPI dependencies for bearer tokens, shared by every HTTP service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from torale.auth.tokens import InvalidToken, Principal, TokenVerifier
from torale.errors import Forbidden, Unauthorized


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <access token>'")
    return token.strip()


async def principal(request: Request, token: Annotated[str, Depends(bearer_token)]) -> Principal:
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(token)
    except InvalidToken as exc:
        raise Unauthorized(str(exc)) from None


async def service_principal(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """Only the service role (a service token), never a user's token."""
    if not who.is_service:
        raise Forbidden("this endpoint takes a service token, not a user's token")
    return who


async def user_principal(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """Only a user's token; a service token has no user to act as."""
    if who.user_id is None:
        raise Forbidden("this endpoint takes a user's access token")
    return who


CallerDep = Annotated[Principal, Depends(principal)]
ServiceCaller = Annotated[Principal, Depends(service_principal)]
CurrentUser = Annotated[Principal, Depends(user_principal)]
