"""What every discovery provider offers, and the errors a provider may raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class SourceProposal:
    """A URL a provider suggests watching; untrusted until the service has vetted it."""

    url: str
    title: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Refinement:
    """What to look for and when to alert, as one provider read the sentence.

    `sources` carries URLs the provider cited while refining (Perplexity's citations, URLs an
    LLM named), so a provider that does both in one call is asked only once.
    """

    refined_query: str
    condition: str
    keywords: tuple[str, ...]
    provider: str
    check_interval_seconds: int | None = None
    sources: tuple[SourceProposal, ...] = ()


class ProviderError(Exception):
    """A provider could not answer; the message is safe to log (no keys, no prompt)."""


class ProviderUnavailable(ProviderError):
    """Network error, timeout, rate limit or server error at the provider."""


class ProviderOutputError(ProviderError):
    """The provider answered, but not with something we can use (bad JSON, wrong shape)."""


@runtime_checkable
class Provider(Protocol):
    """A source of refinements and/or source proposals, tried in the configured order."""

    @property
    def name(self) -> str:
        """Stable id used in settings, logs, metrics, breakers and the response."""
        ...

    @property
    def can_refine(self) -> bool:
        """Whether `refine` is implemented (SearXNG only searches)."""
        ...

    @property
    def can_propose(self) -> bool:
        """Whether `propose_sources` can return anything."""
        ...

    async def refine(self, raw_query: str) -> Refinement:
        """Refined query, condition and keywords for the sentence; raises ProviderError."""
        ...

    async def propose_sources(self, raw_query: str, refinement: Refinement) -> list[SourceProposal]:
        """Candidate URLs for the refined query, best first; raises ProviderError."""
        ...

    async def aclose(self) -> None:
        """Release HTTP clients."""
        ...
