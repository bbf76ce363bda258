"""The notification API's models (shared/API.md, "Notifications"): what goes over the wire."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

Severity = Literal["low", "medium", "high"]
ChannelKind = Literal["email", "webhook", "apprise"]
Mode = Literal["immediate", "digest"]
DeliveryKind = Literal["alert", "digest", "test", "verification"]
DeliveryStatus = Literal["pending", "sending", "succeeded", "retrying", "failed", "skipped"]

HH_MM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


# ------------------------------------------------------------------ preferences


class QuietHours(BaseModel):
    """A daily window (in the user's timezone) when immediate alerts wait; may wrap midnight."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(pattern=HH_MM, examples=["22:00"])
    end: str = Field(pattern=HH_MM, examples=["07:00"])

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self


class PreferencesUpdate(BaseModel):
    """Fields to set; omitted fields keep their value. With `?query_id=` only `min_severity`
    (null: inherit the default) and `channel_ids` (null: the default channels) apply."""

    model_config = ConfigDict(extra="forbid")

    min_severity: Severity | None = None
    mode: Mode | None = None
    digest_hour: int | None = Field(default=None, ge=0, le=23)
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])
    quiet_hours: QuietHours | None = None
    channel_ids: list[uuid.UUID] | None = Field(default=None, max_length=50)

    @field_validator("timezone")
    @classmethod
    def _iana_timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA timezone name (e.g. 'Europe/Berlin')") from None
        return value


class NotificationPreferences(BaseModel):
    """The user's defaults. `channel_ids` null means every enabled channel."""

    min_severity: Severity
    mode: Mode
    digest_hour: int
    timezone: str
    quiet_hours: QuietHours | None
    channel_ids: list[uuid.UUID] | None
    updated_at: datetime | None


class QueryNotificationPreferences(BaseModel):
    """A monitor's override; null fields inherit the defaults (`effective_*` shows the result)."""

    query_id: uuid.UUID
    min_severity: Severity | None
    channel_ids: list[uuid.UUID] | None
    effective_min_severity: Severity
    effective_channel_ids: list[uuid.UUID] | None
    updated_at: datetime | None


# ------------------------------------------------------------------ channels


class ChannelCreate(BaseModel):
    """`email` takes `address`; `webhook` takes `url` and optional `headers`; `apprise` takes `url`."""

    model_config = ConfigDict(extra="forbid")

    kind: ChannelKind
    name: str = Field(default="", max_length=100)
    address: EmailStr | None = None
    url: str | None = Field(default=None, max_length=2048)
    headers: dict[str, str] | None = None


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=100)
    enabled: bool | None = None


class VerifyChannel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, examples=["K7QF-M2XD"])


class ChannelOut(BaseModel):
    """A channel as its owner sees it: never the signing secret; header values masked."""

    id: uuid.UUID
    kind: ChannelKind
    name: str
    enabled: bool
    verified: bool
    verified_at: datetime | None
    address: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelOut):
    """The creation response: a webhook's signing secret, shown this once."""

    secret: str | None = None


# ------------------------------------------------------------------ deliveries


class DeliveryAttempt(BaseModel):
    attempt: int
    at: datetime
    outcome: Literal["succeeded", "retrying", "failed", "skipped", "lost"]
    response_code: int | None = None
    error: str | None = None
    duration_ms: int | None = None


class DeliveryOut(BaseModel):
    """One message to one channel, with its latest attempt's outcome and the attempt log."""

    id: uuid.UUID
    kind: DeliveryKind
    alert_id: uuid.UUID | None
    alert_ids: list[uuid.UUID] | None
    channel_id: uuid.UUID
    message_id: str
    status: DeliveryStatus
    attempts: int
    response_code: int | None
    response_excerpt: str | None
    error: str | None
    next_retry_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempt_log: list[DeliveryAttempt]

    @classmethod
    def of(cls, row: Any) -> DeliveryOut:
        return cls(
            id=row.id,
            kind=row.kind,
            alert_id=row.alert_id,
            alert_ids=row.alert_ids,
            channel_id=row.channel_id,
            message_id=row.message_id,
            status=row.status,
            attempts=row.attempts,
            response_code=row.response_code,
            response_excerpt=row.response_excerpt,
            error=row.error,
            next_retry_at=row.next_retry_at,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            attempt_log=[DeliveryAttempt.model_validate(entry) for entry in row.attempt_log],
        )
