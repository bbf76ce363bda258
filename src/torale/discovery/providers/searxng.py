"""A self-hosted SearXNG instance's JSON search API as a source of candidate pages."""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from torale.discovery.providers.base import (
    ProviderError,
    ProviderOutputError,
    ProviderUnavailable,
    Refinement,
    SourceProposal,
)
from torale.discovery.providers.llm import clean_text


class SearxngResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str
    title: str = ""
    content: str = ""


class SearxngProvider:
    """`GET {base}/search?q=...&format=json`; refinement comes from another provider."""

    name = "searxng"
    can_refine = False
    can_propose = True

    def __init__(
        self,
        *,
        base_url: str,
        timeout: float = 20.0,
        max_results: int = 10,
        user_agent: str = "Torale",
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.search_url = base_url.rstrip("/") + "/search"
        self.max_results = max_results
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=timeout, headers={"User-Agent": user_agent, "Accept": "application/json"}
        )

    async def refine(self, raw_query: str) -> Refinement:
        raise ProviderError("searxng only searches; it does not refine queries")

    async def propose_sources(self, raw_query: str, refinement: Refinement) -> list[SourceProposal]:
        query = refinement.refined_query or raw_query
        try:
            response = await self._client.get(
                self.search_url, params={"q": query, "format": "json"}
            )
        except httpx.TimeoutException:
            raise ProviderUnavailable("searxng did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"could not reach searxng ({type(exc).__name__})") from None
        if response.status_code == 403:
            raise ProviderUnavailable(
                "searxng refused format=json (HTTP 403): add 'json' to search.formats in its "
                "settings.yml"
            )
        if response.status_code >= 400:
            raise ProviderUnavailable(f"searxng answered HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            raise ProviderOutputError("searxng's answer is not JSON") from None
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise ProviderOutputError("searxng's answer has no 'results' list")
        proposals: list[SourceProposal] = []
        for item in results:
            try:
                result = SearxngResult.model_validate(item)
            except ValidationError:
                continue
            snippet = clean_text(result.content, 200)
            reason = f"Search result for '{clean_text(query, 100)}'" + (
                f": {snippet}" if snippet else ""
            )
            proposals.append(SourceProposal(result.url, clean_text(result.title, 300), reason))
            if len(proposals) >= self.max_results:
                break
        return proposals

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
