"""What the SDK-backed providers share: API keys, a client cache, and the idle timer.

`TransportError` is the base of what the SDKs' HTTP library raises when a body read fails
mid-stream (the SDKs wrap errors before the response, not always those after it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Generic, TypeVar

try:  # the SDKs' HTTP transport: httpx2 for anthropic>=2 / openai>=3, httpx before
    from httpx2 import TransportError
except ImportError:  # pragma: no cover
    from httpx import TransportError  # type: ignore[assignment]  # noqa: F401

from server.config.settings import ModelSettings
from server.models.base import ProviderError
from server.models.errors import timed_out

C = TypeVar("C")
T = TypeVar("T")


def api_key(
    model: ModelSettings,
    *,
    fallback_env: str | None = None,
    placeholder: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The API key from the variable named by `model.api_key_env`.

    With no `api_key_env`, `fallback_env` is read (e.g. ANTHROPIC_API_KEY), then `placeholder`
    is used (local servers such as Ollama ignore the key). A named variable that is not set
    is a configuration mistake a retry cannot fix, so it raises a non-retryable error.
    """
    env = os.environ if environ is None else environ
    if model.api_key_env:
        value = env.get(model.api_key_env)
        if not value:
            raise ProviderError(
                f"{model.model_id}: environment variable {model.api_key_env} is not set",
                retryable=False,
                misconfigured=True,
            )
        return value
    if fallback_env and env.get(fallback_env):
        return env[fallback_env]
    if placeholder is not None:
        return placeholder
    raise ProviderError(
        f"{model.model_id}: no API key: set api_key_env in the model's config",
        retryable=False,
        misconfigured=True,
    )


class ClientCache(Generic[C]):
    """One SDK client per (base_url, api key), built on first use and reused after.

    Clients hold connection pools; building one per call would defeat keep-alive.
    """

    def __init__(self, factory: Callable[[str | None, str], C]):
        self._factory = factory
        self._clients: dict[tuple[str | None, str], C] = {}

    def get(self, base_url: str | None, key: str) -> C:
        client = self._clients.get((base_url, key))
        if client is None:
            client = self._clients[(base_url, key)] = self._factory(base_url, key)
        return client

    async def aclose(self) -> None:
        """Close every client's connection pool (server shutdown)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            close: Any = getattr(client, "close", None)
            if close is not None:
                await close()


async def next_event(iterator: AsyncIterator[T], idle_s: float, model: str) -> T:
    """The stream's next item, or a retryable `ProviderError` after `idle_s` of silence.

    Raises StopAsyncIteration at the end. The timeout wraps one `__anext__` only (never a
    `yield`), so it cannot fire while the consumer is busy with an earlier event.
    """
    try:
        async with asyncio.timeout(idle_s):
            return await anext(iterator)
    except TimeoutError:
        raise timed_out(model, f"no stream event for {idle_s:g} s") from None
