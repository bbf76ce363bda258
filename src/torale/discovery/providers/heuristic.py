"""The offline provider: reads the sentence itself; never fails, so it is always last."""

from __future__ import annotations

from urllib.parse import urlsplit

from torale.discovery.heuristic import SentenceAnalysis, analyse
from torale.discovery.providers.base import Refinement, SourceProposal

NAMED_REASON = "Named in your request"


def named_sources(analysis: SentenceAnalysis) -> list[SourceProposal]:
    """The URLs written in the sentence, titled by their host."""
    return [
        SourceProposal(url, (urlsplit(url).hostname or url).removeprefix("www."), NAMED_REASON)
        for url in analysis.urls
    ]


def heuristic_refinement(analysis: SentenceAnalysis) -> Refinement:
    return Refinement(
        refined_query=analysis.refined_query,
        condition=analysis.condition,
        keywords=tuple(analysis.keywords),
        provider=HeuristicProvider.name,
        check_interval_seconds=analysis.check_interval_seconds,
        sources=tuple(named_sources(analysis)),
    )


class HeuristicProvider:
    """Condition and keywords from the sentence; the URLs it names become sources."""

    name = "heuristic"
    can_refine = True
    can_propose = True

    async def refine(self, raw_query: str) -> Refinement:
        return heuristic_refinement(analyse(raw_query))

    async def propose_sources(self, raw_query: str, refinement: Refinement) -> list[SourceProposal]:
        return named_sources(analyse(raw_query))

    async def aclose(self) -> None:
        return None
