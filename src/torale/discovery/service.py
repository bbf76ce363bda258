"""Discovery: refine a sentence and propose vetted sources, trying providers in order.

Stage one asks the chain for a refinement (first that succeeds wins; the heuristic never
fails). Stage two asks the chain for sources until one yields a URL that survives vetting.
Each provider sits behind its own circuit breaker, so a failing one is skipped for a
cool-down instead of adding its timeout to every request. A provider that failed in stage
one is not asked again in stage two of the same request. Answers are cached unless some
provider failed, so an outage is not remembered for a day.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import structlog
from prometheus_client import Counter

from torale.ai.breaker import CircuitBreaker, CircuitOpenError
from torale.config import Settings
from torale.discovery.cache import DiscoveryCache, cache_key
from torale.discovery.heuristic import SentenceAnalysis, analyse
from torale.discovery.providers import Provider, ProviderError, Refinement, SourceProposal
from torale.discovery.providers.heuristic import heuristic_refinement, named_sources
from torale.discovery.schemas import (
    DiscoveredSource,
    DiscoverRequest,
    DiscoverResponse,
    DiscoveryHints,
)
from torale.discovery.vetting import ReachabilityCheck, ReachabilityProbe, SourceVetter

log = structlog.get_logger(__name__)

T = TypeVar("T")

PROVIDER_CALLS = Counter(
    "torale_discovery_provider_calls_total",
    "Discovery provider calls by outcome (ok, failed, timeout, skipped)",
    ["provider", "stage", "outcome"],
)
CACHE_LOOKUPS = Counter("torale_discovery_cache_total", "Discovery cache lookups", ["result"])

MAX_INTERVAL = 7 * 86400
MAX_KEYWORDS = 20
NO_SOURCES = (
    "No pages to watch were found for this request. Add the URLs you want watched "
    "(for example the product, release-notes or news page)."
)
PROVIDERS_DOWN = (
    "Source discovery could not reach its providers right now. Add the URLs you want watched, "
    "or try again later."
)


@dataclass(frozen=True)
class DiscoveryOptions:
    """Tunables, read from settings once; tests shrink timeouts and cool-downs."""

    max_sources: int = 5
    provider_timeout: float = 20.0
    cache_ttl: int = 86400
    breaker_failure_threshold: int = 3
    breaker_cooldown: float = 60.0
    probe_reachability: bool = True
    probe_timeout: float = 5.0
    min_check_interval: int = 300
    request_deadline: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DiscoveryOptions:
        values: dict[str, Any] = {
            "max_sources": int(getattr(settings, "discovery_max_sources", cls.max_sources)),
            "provider_timeout": float(getattr(settings, "provider_timeout", cls.provider_timeout)),
            "cache_ttl": int(getattr(settings, "discovery_cache_ttl", cls.cache_ttl)),
            "min_check_interval": settings.min_check_interval,
        }
        return dataclasses.replace(cls(**values), **overrides)


class _Failed:
    """Marker for a provider call that failed or was skipped."""


FAILED = _Failed()


class DiscoveryService:
    """The domain logic behind `POST /discover-sources/`; no HTTP in here."""

    def __init__(
        self,
        settings: Settings,
        providers: Sequence[Provider],
        *,
        options: DiscoveryOptions | None = None,
        cache: DiscoveryCache | None = None,
        probe: ReachabilityCheck | None = None,
    ) -> None:
        if not providers:
            raise ValueError("discovery needs at least one provider")
        self.options = options or DiscoveryOptions.from_settings(settings)
        self.providers = list(providers)
        self.chain = [provider.name for provider in self.providers]
        self.cache = cache
        self.breakers = {
            provider.name: CircuitBreaker(
                f"discovery-{provider.name}",
                failure_threshold=self.options.breaker_failure_threshold,
                reset_timeout=self.options.breaker_cooldown,
            )
            for provider in self.providers
        }
        self._own_probe: ReachabilityProbe | None = None
        if probe is None and self.options.probe_reachability:
            self._own_probe = ReachabilityProbe(
                allow_private=settings.allow_private_urls,
                user_agent=settings.user_agent,
                timeout=self.options.probe_timeout,
                max_redirects=settings.fetch_max_redirects,
            )
            probe = self._own_probe
        self.vetter = SourceVetter(allow_private=settings.allow_private_urls, probe=probe)

    async def discover(self, request: DiscoverRequest) -> DiscoverResponse:
        """Refine the sentence and propose sources; provider trouble never raises."""
        raw_query = request.raw_query
        key = cache_key(raw_query, self.chain, self.options.max_sources)
        if self.cache is not None:
            hit = await self.cache.get(key)
            CACHE_LOOKUPS.labels("hit" if hit else "miss").inc()
            if hit is not None:
                return hit.model_copy(update={"cached": True})

        analysis = analyse(raw_query)
        failed: set[str] = set()
        deadline = asyncio.get_running_loop().time() + self.options.request_deadline
        refinement = await self._refine(raw_query, analysis, failed, deadline)
        sources, source_provider = await self._sources(
            raw_query, analysis, refinement, failed, deadline
        )

        response = DiscoverResponse(
            refined_query=refinement.refined_query,
            condition=refinement.condition,
            keywords=_keywords(refinement, analysis),
            sources=sources,
            provider=source_provider or refinement.provider,
            refined_by=refinement.provider,
            cached=False,
            hints=self._hints(refinement, analysis),
            needs_sources=not sources,
            message=None if sources else (PROVIDERS_DOWN if failed else NO_SOURCES),
        )
        log.info(
            "discovery_done",
            refined_by=response.refined_by,
            provider=response.provider,
            sources=len(sources),
            failed_providers=sorted(failed),
        )
        if self.cache is not None and not failed:
            await self.cache.set(key, response)
        return response

    async def aclose(self) -> None:
        for provider in self.providers:
            await provider.aclose()
        if self._own_probe is not None:
            await self._own_probe.aclose()

    # --- stages -----------------------------------------------------------------------------

    async def _refine(
        self, raw_query: str, analysis: SentenceAnalysis, failed: set[str], deadline: float
    ) -> Refinement:
        for provider in self.providers:
            if not provider.can_refine:
                continue
            result = await self._attempt(
                provider, "refine", partial(provider.refine, raw_query), deadline
            )
            if isinstance(result, _Failed):
                failed.add(provider.name)
                continue
            return result
        return heuristic_refinement(analysis)

    async def _sources(
        self,
        raw_query: str,
        analysis: SentenceAnalysis,
        refinement: Refinement,
        failed: set[str],
        deadline: float,
    ) -> tuple[list[DiscoveredSource], str | None]:
        """URLs named in the sentence first, then the first provider with a usable proposal."""
        limit = self.options.max_sources
        seen: set[str] = set()
        sources = await self.vetter.vet(named_sources(analysis), seen=seen, limit=limit)
        for provider in self.providers:
            if len(sources) >= limit:
                break
            if not provider.can_propose or provider.name in failed:
                continue
            result: list[SourceProposal] | _Failed = await self._attempt(
                provider,
                "propose",
                partial(provider.propose_sources, raw_query, refinement),
                deadline,
            )
            if isinstance(result, _Failed):
                failed.add(provider.name)
                continue
            found = await self.vetter.vet(result, seen=seen, limit=limit - len(sources))
            if found:
                return sources + found, provider.name
        return sources, None

    async def _attempt(
        self,
        provider: Provider,
        stage: str,
        call: Callable[[], Awaitable[T]],
        deadline: float,
    ) -> T | _Failed:
        """One provider call through its breaker and timeout; failures are logged, not raised."""
        breaker = self.breakers[provider.name]
        context = {"provider": provider.name, "stage": stage}
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            PROVIDER_CALLS.labels(provider.name, stage, "skipped").inc()
            log.warning("discovery_deadline_reached", **context)
            return FAILED
        timeout = min(self.options.provider_timeout, remaining)
        try:
            breaker.before_call()
        except CircuitOpenError as exc:
            PROVIDER_CALLS.labels(provider.name, stage, "skipped").inc()
            log.info("discovery_provider_skipped", **context, retry_after_s=round(exc.retry_after))
            return FAILED
        try:
            async with asyncio.timeout(timeout):
                result = await call()
        except asyncio.CancelledError:
            breaker.release()
            raise
        except TimeoutError:
            if timeout < self.options.provider_timeout:
                breaker.release()  # cut short by the request's deadline: not the provider's fault
            else:
                breaker.record_failure()
            PROVIDER_CALLS.labels(provider.name, stage, "timeout").inc()
            log.warning(
                "discovery_provider_failed",
                **context,
                error_class="TimeoutError",
                error=f"no answer within {timeout:.1f}s",
            )
            return FAILED
        except ProviderError as exc:
            breaker.record_failure()
            PROVIDER_CALLS.labels(provider.name, stage, "failed").inc()
            log.warning(
                "discovery_provider_failed",
                **context,
                error_class=type(exc).__name__,
                error=str(exc),
            )
            return FAILED
        except Exception as exc:
            # A provider bug must not become a 500; its message may hold secrets, so not logged.
            breaker.record_failure()
            PROVIDER_CALLS.labels(provider.name, stage, "failed").inc()
            log.warning("discovery_provider_failed", **context, error_class=type(exc).__name__)
            return FAILED
        breaker.record_success()
        PROVIDER_CALLS.labels(provider.name, stage, "ok").inc()
        return result

    def _hints(self, refinement: Refinement, analysis: SentenceAnalysis) -> DiscoveryHints:
        interval = refinement.check_interval_seconds or analysis.check_interval_seconds
        interval = max(self.options.min_check_interval, min(interval, MAX_INTERVAL))
        return DiscoveryHints(
            check_interval_seconds=interval,
            category=analysis.category,
            price_threshold=analysis.price_threshold,
            versions=analysis.versions,
            time_constraints=analysis.time_constraints,
        )


def _keywords(refinement: Refinement, analysis: SentenceAnalysis) -> list[str]:
    """The provider's keywords, completed with the sentence's explicit constraints."""
    keywords = list(refinement.keywords)
    known = {k.lower() for k in keywords}
    joined = " ".join(known)
    for constraint in analysis.constraint_keywords:
        if constraint.lower() not in joined and constraint.lower() not in known:
            keywords.append(constraint)
            known.add(constraint.lower())
    return keywords[:MAX_KEYWORDS] or list(analysis.keywords)
