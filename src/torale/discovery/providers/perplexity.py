"""Perplexity's Sonar chat API: a refinement plus the pages its web search cited."""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletion

from torale.discovery.providers.base import ProviderOutputError, Refinement, SourceProposal
from torale.discovery.providers.llm import (
    clean_text,
    parse_answer,
    provider_error,
    system_prompt,
    to_refinement,
    user_prompt,
)

DEFAULT_BASE_URL = "https://api.perplexity.ai"
DEFAULT_MODEL = "sonar"


def cited_sources(completion: ChatCompletion, refined_query: str) -> list[SourceProposal]:
    """`search_results` ({title, url}) and `citations` (URLs) from Sonar's response body."""
    extra: dict[str, Any] = completion.model_extra or {}
    reason = f"Cited by Perplexity search for: {refined_query}"[:300]
    sources: list[SourceProposal] = []
    titles: dict[str, str] = {}
    results = extra.get("search_results")
    for item in results if isinstance(results, list) else []:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            titles[item["url"]] = clean_text(item.get("title"), 300)
            sources.append(SourceProposal(item["url"], titles[item["url"]], reason))
    citations = extra.get("citations")
    for url in citations if isinstance(citations, list) else []:
        if isinstance(url, str) and url not in titles:
            titles[url] = ""
            sources.append(SourceProposal(url, "", reason))
    return sources


class PerplexityProvider:
    """One Sonar call gives both the JSON refinement and the cited pages."""

    name = "perplexity"
    can_refine = True
    can_propose = True

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        timeout: float = 20.0,
        max_sources: int = 5,
    ) -> None:
        self.model = model
        self.max_sources = max_sources
        self._client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=base_url or DEFAULT_BASE_URL,
            timeout=timeout,
            max_retries=0,
        )

    async def refine(self, raw_query: str) -> Refinement:
        completion = await self._ask(raw_query)
        choice = completion.choices[0] if completion.choices else None
        answer = parse_answer(choice.message.content if choice else None)
        return to_refinement(answer, self.name, cited_sources(completion, answer.refined_query))

    async def propose_sources(self, raw_query: str, refinement: Refinement) -> list[SourceProposal]:
        if refinement.provider == self.name:
            return list(refinement.sources)
        completion = await self._ask(raw_query)
        cited = cited_sources(completion, refinement.refined_query)
        choice = completion.choices[0] if completion.choices else None
        try:
            answer = parse_answer(choice.message.content if choice else None)
        except ProviderOutputError:
            return cited  # only the sources are wanted here; the citations stand on their own
        return list(to_refinement(answer, self.name, cited).sources)

    async def aclose(self) -> None:
        await self._client.close()

    async def _ask(self, raw_query: str) -> ChatCompletion:
        try:
            return await self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system_prompt(self.max_sources)},
                    {"role": "user", "content": user_prompt(raw_query)},
                ],
            )
        except openai.OpenAIError as exc:
            raise provider_error(self.name, exc) from None
