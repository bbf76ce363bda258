"""The gateway's API models (see shared/API.md): what goes over the wire, validated."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Sensitivity = Literal["low", "medium", "high"]
QueryStatus = Literal["discovering", "active", "paused", "needs_sources", "failed"]
SourceStatus = Literal["active", "paused", "errored", "disallowed"]
Severity = Literal["low", "medium", "high"]

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class SourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    query_id: uuid.UUID
    url: str
    title: str | None
    status: SourceStatus
    check_interval_seconds: int | None
    next_check_at: datetime
    last_checked_at: datetime | None
    last_error: str | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class QueryOut(BaseModel):
    id: uuid.UUID
    raw_query: str
    refined_query: str | None
    condition: str | None
    keywords: list[str]
    status: QueryStatus
    status_reason: str | None
    check_interval_seconds: int
    sensitivity: Sensitivity
    config_hints: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_checked_at: datetime | None = None
    last_alert_at: datetime | None = None
    sources: list[SourceOut]


class QueryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_query: str = Field(min_length=3, max_length=2000)
    sources: list[str] | None = Field(default=None, max_length=100)
    check_interval_seconds: int | None = None
    sensitivity: Sensitivity = "medium"


class QueryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw_query: str | None = Field(default=None, min_length=3, max_length=2000)
    refined_query: str | None = Field(default=None, max_length=2000)
    condition: str | None = Field(default=None, max_length=2000)
    keywords: list[str] | None = Field(default=None, max_length=50)
    check_interval_seconds: int | None = None
    sensitivity: Sensitivity | None = None


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=4096)
    title: str | None = Field(default=None, max_length=500)


class SourceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "paused"] | None = None
    check_interval_seconds: int | None = None
    title: str | None = Field(default=None, max_length=500)


class CheckQueued(BaseModel):
    check_id: uuid.UUID
    status: Literal["queued"] = "queued"


class CheckOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    source_id: uuid.UUID
    query_id: uuid.UUID
    trigger: Literal["schedule", "manual"]
    status: Literal["queued", "running", "succeeded", "failed"]
    outcome: Literal["unchanged", "changed", "alerted", "not_modified", "error"] | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    http_status: int | None
    error_class: str | None
    error: str | None
    alert_ids: list[uuid.UUID]


class AlertOut(BaseModel):
    id: uuid.UUID
    query_id: uuid.UUID
    source_id: uuid.UUID | None
    check_id: uuid.UUID | None
    severity: Severity
    score: float
    summary: str
    details: dict[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None
