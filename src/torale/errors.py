"""Torale's own errors, each with an HTTP status and a stable code; mapped to responses in one place."""

from __future__ import annotations

from typing import Any


class ToraleError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadRequest(ToraleError):
    status_code = 400
    code = "bad_request"


class Unauthorized(ToraleError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ToraleError):
    status_code = 403
    code = "forbidden"


class NotFound(ToraleError):
    status_code = 404
    code = "not_found"


class Conflict(ToraleError):
    status_code = 409
    code = "conflict"


class ValidationFailed(ToraleError):
    status_code = 422
    code = "validation_error"

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(f"{field}: {message}", details=[{"field": field, "message": message}])


class LimitExceeded(ToraleError):
    """A configured per-user quota (monitors, sources) would be exceeded."""

    status_code = 409
    code = "limit_exceeded"


class RateLimited(ToraleError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after


class Unavailable(ToraleError):
    status_code = 503
    code = "unavailable"
