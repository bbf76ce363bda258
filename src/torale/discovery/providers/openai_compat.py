"""Any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, LM Studio) with structured output."""

from __future__ import annotations

from typing import Any

import openai
import structlog

from torale.discovery.providers.base import Refinement, SourceProposal
from torale.discovery.providers.llm import (
    ANSWER_SCHEMA,
    ModelAnswer,
    parse_answer,
    provider_error,
    system_prompt,
    to_refinement,
    user_prompt,
)

log = structlog.get_logger(__name__)

DEFAULT_MODEL = "gpt-4o-mini"
# Strictest first; a server that rejects one (HTTP 400/422) is asked the next way from then on.
_OUTPUT_MODES = ("json_schema", "json_object", "text")


def _response_format(mode: str) -> dict[str, Any]:
    if mode == "json_schema":
        schema = {"name": "monitor_refinement", "strict": True, "schema": ANSWER_SCHEMA}
        return {"response_format": {"type": "json_schema", "json_schema": schema}}
    if mode == "json_object":
        return {"response_format": {"type": "json_object"}}
    return {}


class OpenAICompatibleProvider:
    """Refines the sentence with a chat model; proposes only the URLs the model cites."""

    can_refine = True
    can_propose = True

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        model: str | None = None,
        timeout: float = 20.0,
        max_sources: int = 5,
        name: str = "openai",
    ) -> None:
        self._name = name
        self.model = model or DEFAULT_MODEL
        self.max_sources = max_sources
        # Local servers (Ollama, vLLM) take any key; the SDK insists on one.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=0
        )
        self._mode = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def output_mode(self) -> str:
        """How answers are requested now: json_schema, json_object or text."""
        return _OUTPUT_MODES[self._mode]

    async def refine(self, raw_query: str) -> Refinement:
        return to_refinement(await self._ask(raw_query), self.name)

    async def propose_sources(self, raw_query: str, refinement: Refinement) -> list[SourceProposal]:
        if refinement.provider == self.name:
            return list(refinement.sources)
        return list(to_refinement(await self._ask(raw_query), self.name).sources)

    async def aclose(self) -> None:
        await self._client.close()

    async def _ask(self, raw_query: str) -> ModelAnswer:
        messages: list[Any] = [
            {"role": "system", "content": system_prompt(self.max_sources)},
            {"role": "user", "content": user_prompt(raw_query)},
        ]
        while True:
            mode = self.output_mode
            try:
                completion = await self._client.chat.completions.create(
                    model=self.model, messages=messages, **_response_format(mode)
                )
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if self._mode + 1 >= len(_OUTPUT_MODES):
                    raise provider_error(self.name, exc) from None
                self._mode += 1
                log.info(
                    "discovery_output_mode_downgraded",
                    provider=self.name,
                    rejected=mode,
                    now=self.output_mode,
                    status=exc.status_code,
                )
                continue
            except openai.OpenAIError as exc:
                raise provider_error(self.name, exc) from None
            choice = completion.choices[0] if completion.choices else None
            return parse_answer(choice.message.content if choice else None)
