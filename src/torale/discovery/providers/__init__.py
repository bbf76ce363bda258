"""Discovery providers behind one interface, built from settings in the configured order."""

from __future__ import annotations

from collections.abc import Sequence

from torale.config import Settings, SettingsError
from torale.discovery.providers.base import (
    Provider,
    ProviderError,
    ProviderOutputError,
    ProviderUnavailable,
    Refinement,
    SourceProposal,
)
from torale.discovery.providers.heuristic import HeuristicProvider
from torale.discovery.providers.openai_compat import OpenAICompatibleProvider
from torale.discovery.providers.perplexity import DEFAULT_BASE_URL, PerplexityProvider
from torale.discovery.providers.searxng import SearxngProvider

__all__ = [
    "KNOWN_PROVIDERS",
    "HeuristicProvider",
    "OpenAICompatibleProvider",
    "PerplexityProvider",
    "Provider",
    "ProviderError",
    "ProviderOutputError",
    "ProviderUnavailable",
    "Refinement",
    "SearxngProvider",
    "SourceProposal",
    "build_providers",
    "provider_names",
]

KNOWN_PROVIDERS = ("perplexity", "openai", "searxng", "heuristic")


def _secret(settings: Settings, name: str) -> str | None:
    value = getattr(settings, name, None)
    if value is None:
        return None
    plain = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return plain or None


def _url(settings: Settings, name: str, default: str | None = None) -> str | None:
    value = getattr(settings, name, None)
    return str(value).rstrip("/") if value else default


def provider_names(settings: Settings) -> list[str]:
    """The provider chain: TORALE_DISCOVERY_PROVIDERS, or derived from which keys/URLs are set.

    The offline heuristic is always present and always last.
    """
    configured = getattr(settings, "discovery_providers", None)
    if isinstance(configured, str):
        configured = configured.split(",")
    names: list[str]
    if configured:
        names = [str(name).strip().lower() for name in configured if str(name).strip()]
    else:
        names = []
        if _secret(settings, "perplexity_api_key"):
            names.append("perplexity")
        if _secret(settings, "openai_api_key") or _url(settings, "openai_base_url"):
            names.append("openai")
        if _url(settings, "searxng_url"):
            names.append("searxng")
    unknown = [name for name in names if name not in KNOWN_PROVIDERS]
    if unknown:
        raise SettingsError(
            f"TORALE_DISCOVERY_PROVIDERS: unknown provider(s) {unknown}; "
            f"choose from {list(KNOWN_PROVIDERS)}"
        )
    chain = list(dict.fromkeys(name for name in names if name != "heuristic"))
    return [*chain, "heuristic"]


def build_providers(
    settings: Settings,
    names: Sequence[str] | None = None,
    *,
    timeout: float = 20.0,
    max_sources: int = 5,
) -> list[Provider]:
    """Instantiate the chain; a provider named without its key/URL is a configuration error."""
    requested = list(names) if names is not None else provider_names(settings)
    chain = [*dict.fromkeys(n for n in requested if n != "heuristic"), "heuristic"]
    providers: list[Provider] = []
    for name in chain:
        if name == "perplexity":
            key = _secret(settings, "perplexity_api_key")
            if not key:
                raise SettingsError("discovery provider 'perplexity' needs PERPLEXITY_API_KEY")
            providers.append(
                PerplexityProvider(
                    api_key=key,
                    base_url=_url(settings, "perplexity_base_url", DEFAULT_BASE_URL),
                    timeout=timeout,
                    max_sources=max_sources,
                )
            )
        elif name == "openai":
            key = _secret(settings, "openai_api_key")
            base_url = _url(settings, "openai_base_url")
            if not key and not base_url:
                raise SettingsError(
                    "discovery provider 'openai' needs OPENAI_API_KEY (or OPENAI_BASE_URL for a "
                    "local server)"
                )
            providers.append(
                OpenAICompatibleProvider(
                    api_key=key,
                    base_url=base_url,
                    model=getattr(settings, "llm_model", None),
                    timeout=timeout,
                    max_sources=max_sources,
                )
            )
        elif name == "searxng":
            base_url = _url(settings, "searxng_url")
            if not base_url:
                raise SettingsError("discovery provider 'searxng' needs TORALE_SEARXNG_URL")
            providers.append(
                SearxngProvider(
                    base_url=base_url,
                    timeout=timeout,
                    max_results=max_sources * 2,
                    user_agent=settings.user_agent,
                )
            )
        elif name == "heuristic":
            providers.append(HeuristicProvider())
        else:
            raise SettingsError(f"TORALE_DISCOVERY_PROVIDERS: unknown provider {name!r}")
    return providers
