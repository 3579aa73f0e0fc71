"""Model providers and the selector. See `base.py` for the contract every provider keeps."""

from __future__ import annotations

from server.config.settings import Config
from server.models.base import Provider
from server.models.echo import EchoProvider


def build_providers(config: Config) -> dict[str, Provider]:
    """One provider per kind named in config; `echo` is always there.

    The SDK providers are imported only when a model uses them, and each keeps one client
    per (base_url, API key). Call `close_providers` at shutdown to release their pools.
    """
    providers: dict[str, Provider] = {"echo": EchoProvider(config.echo.delay_ms)}
    kinds = {model.provider for model in config.models.values()}
    if "anthropic" in kinds:
        from server.models.anthropic import AnthropicProvider

        providers["anthropic"] = AnthropicProvider()
    if "openai" in kinds:
        from server.models.openai import OpenAIProvider

        providers["openai"] = OpenAIProvider()
    return providers


async def close_providers(providers: dict[str, Provider]) -> None:
    """Close the HTTP clients the providers hold (those that have any)."""
    for provider in providers.values():
        aclose = getattr(provider, "aclose", None)
        if aclose is not None:
            await aclose()
