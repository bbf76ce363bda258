"""Proposed URLs are untrusted: normalise, de-duplicate, SSRF-check and probe each one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urljoin, urlsplit

import httpx
import structlog

from torale.discovery.providers.base import SourceProposal
from torale.discovery.providers.llm import clean_text
from torale.discovery.schemas import DiscoveredSource
from torale.net.fetch import GuardedTransport
from torale.net.ssrf import UnsafeURLError, check_url, normalize_url

log = structlog.get_logger(__name__)

ReachabilityCheck = Callable[[str], Awaitable[bool]]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# The page exists even if it turns robots away or wants a login.
_GUARDED = frozenset({401, 403, 429})
# Servers that refuse HEAD (or answer it badly) get a GET.
_RETRY_WITH_GET = frozenset({400, 403, 405, 406, 501})


class ReachabilityProbe:
    """A quick HEAD (then GET) that follows redirects through the SSRF guard, hop by hop.

    Its connections go through the fetcher's guarded transport, which connects only to the
    addresses the guard has just validated: a name that resolves to a public address for the
    check and a private one for the connection (DNS rebinding) gets nowhere."""

    def __init__(
        self,
        *,
        allow_private: bool,
        user_agent: str,
        timeout: float = 5.0,
        max_redirects: int = 5,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.max_redirects = max_redirects
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            transport=GuardedTransport(allow_private=allow_private),
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": user_agent},
            trust_env=False,
        )

    async def __call__(self, url: str) -> bool:
        """True when the page answers (2xx/3xx, or 401/403/429); the first URL is already vetted."""
        try:
            async with asyncio.timeout(self.timeout * 2):
                return await self._follow(url)
        except TimeoutError:
            return False

    async def _follow(self, url: str) -> bool:
        current = url
        for _ in range(self.max_redirects + 1):
            answer = await self._status(current)
            if answer is None:
                return False
            status, location = answer
            if status in _REDIRECTS and location:
                try:
                    current = (
                        await check_url(
                            urljoin(current, location), allow_private=self.allow_private
                        )
                    ).url
                except UnsafeURLError as exc:
                    log.info("discovery_redirect_refused", url=url, reason=str(exc))
                    return False
                continue
            return status < 400 or status in _GUARDED
        return False

    async def _status(self, url: str) -> tuple[int, str | None] | None:
        try:
            response = await self._client.head(url)
            if response.status_code not in _RETRY_WITH_GET:
                return response.status_code, response.headers.get("location")
            async with self._client.stream("GET", url) as streamed:
                return streamed.status_code, streamed.headers.get("location")
        except httpx.HTTPError:
            return None
        except UnsafeURLError as exc:  # refused at connect time by the guarded transport
            log.info("discovery_probe_refused", url=url, reason=str(exc))
            return None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class SourceVetter:
    """Turns proposals into `DiscoveredSource`s that are safe and alive, in proposal order."""

    def __init__(
        self,
        *,
        allow_private: bool,
        probe: ReachabilityCheck | None,
        concurrency: int = 8,
    ) -> None:
        self.allow_private = allow_private
        self.probe = probe
        self.concurrency = concurrency

    async def vet(
        self, proposals: Sequence[SourceProposal], *, seen: set[str], limit: int
    ) -> list[DiscoveredSource]:
        """At most `limit` accepted sources; URLs in `seen` are skipped and every URL looked at
        is added to it, so one request never probes a URL twice."""
        if limit <= 0:
            return []
        candidates: list[tuple[str, SourceProposal]] = []
        for proposal in proposals:
            try:
                url = normalize_url(proposal.url)
            except UnsafeURLError as exc:
                log.info("discovery_source_dropped", url=proposal.url[:200], reason=str(exc))
                continue
            if url in seen:
                continue
            seen.add(url)
            candidates.append((url, proposal))
            if len(candidates) >= limit * 3:  # enough spares for the ones that get dropped
                break
        gate = asyncio.Semaphore(self.concurrency)
        verdicts = await asyncio.gather(*(self._acceptable(url, gate) for url, _ in candidates))
        accepted = [
            DiscoveredSource(
                url=url,
                title=clean_text(proposal.title, 200) or (urlsplit(url).hostname or url),
                reason=clean_text(proposal.reason, 500) or "Proposed for this monitor",
            )
            for (url, proposal), ok in zip(candidates, verdicts, strict=True)
            if ok
        ]
        return accepted[:limit]

    async def _acceptable(self, url: str, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                await check_url(url, allow_private=self.allow_private)
            except UnsafeURLError as exc:
                log.info("discovery_source_dropped", url=url, reason=str(exc))
                return False
            if self.probe is not None and not await self.probe(url):
                log.info("discovery_source_dropped", url=url, reason="unreachable")
                return False
            return True
