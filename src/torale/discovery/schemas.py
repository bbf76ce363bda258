"""The discovery service's HTTP contract: what the gateway sends and what it gets back.

These models are the only thing that crosses the boundary; the gateway imports them to call
`POST /discover-sources/`.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIN_QUERY_CHARS = 3
MAX_QUERY_CHARS = 2000
MAX_CONTEXT_CHARS = 4000

Category = Literal[
    "price",
    "availability",
    "security",
    "release",
    "policy",
    "schedule",
    "new_item",
    "general",
]
PriceDirection = Literal["below", "above", "reaches"]


class DiscoverRequest(BaseModel):
    """A monitor's sentence as the user wrote it, plus optional context from the gateway."""

    # Unknown fields are ignored, so a newer gateway can talk to an older discovery service.
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    raw_query: str = Field(min_length=MIN_QUERY_CHARS, max_length=MAX_QUERY_CHARS)
    user_context: dict[str, Any] | None = Field(
        default=None,
        description="Opaque context from the caller (e.g. locale); never sent to AI providers.",
    )

    @field_validator("user_context")
    @classmethod
    def _context_is_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, default=str)) > MAX_CONTEXT_CHARS:
            raise ValueError(f"must serialise to at most {MAX_CONTEXT_CHARS} characters")
        return value


class DiscoveredSource(BaseModel):
    """A page worth watching: normalised http(s) URL, a title, and why it was proposed."""

    url: str
    title: str
    reason: str


class PriceThreshold(BaseModel):
    """A price condition read from the sentence, e.g. "drops below $1,500"."""

    amount: float
    currency: str = Field(description="ISO 4217 code, e.g. USD, EUR")
    direction: PriceDirection
    text: str = Field(description="The price as written, e.g. '$1,500'")


class DiscoveryHints(BaseModel):
    """Suggestions for the monitor; the gateway may apply or ignore them."""

    check_interval_seconds: int
    category: Category = "general"
    price_threshold: PriceThreshold | None = None
    versions: list[str] = Field(default_factory=list)
    time_constraints: list[str] = Field(default_factory=list)


class DiscoverResponse(BaseModel):
    """A refined query, its alert condition, keywords and vetted sources."""

    refined_query: str
    condition: str
    keywords: list[str]
    sources: list[DiscoveredSource]
    provider: str = Field(
        description="Provider whose sources were used (or whose refinement, when none)"
    )
    refined_by: str = Field(description="Provider that wrote refined_query/condition/keywords")
    cached: bool = False
    hints: DiscoveryHints
    needs_sources: bool
    message: str | None = None
