"""Fixtures for provider and selector tests: the real SDKs against local fake servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from server.config.settings import Config
from server.models import build_providers, close_providers
from server.models.base import ChatMessage, ModelEvent, ModelRequest, ToolSpec
from server.models.selector import Selection, Selector
from tests.fakes import FakeAnthropic, FakeOpenAI

KEY_ENV = "CHINWAG_TEST_MODEL_KEY"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, "test-key")
    return "test-key"


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key="test-key") as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key="test-key") as fake:
        yield fake  # type: ignore[misc]


def claude(fake: FakeAnthropic, **settings: Any) -> dict[str, Any]:
    """A `[models.NAME]` table for an Anthropic model served by `fake`; short timeouts."""
    return {
        "provider": "anthropic", "model_id": "claude-test", "base_url": fake.base_url,
        "api_key_env": KEY_ENV, "timeout_s": 5.0, "connect_timeout_s": 2.0,
        "idle_timeout_s": 2.0, "price_input_per_mtok": 3.0, "price_output_per_mtok": 15.0,
        **settings,
    }


def local(fake: FakeOpenAI, **settings: Any) -> dict[str, Any]:
    """A `[models.NAME]` table for an OpenAI-compatible model served by `fake`."""
    return {
        "provider": "openai", "model_id": "llama-test", "base_url": fake.base_url,
        "api_key_env": KEY_ENV, "timeout_s": 5.0, "connect_timeout_s": 2.0,
        "idle_timeout_s": 2.0, **settings,
    }


def make_config(models: dict[str, dict[str, Any]], **routing: Any) -> Config:
    routing = {"default": next(iter(models)), "max_retries": 0, **routing}
    return msgspec.convert({"models": models, "routing": routing}, Config)


class Sleeps:
    """A `sleep` for the selector that records waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Clock:
    """A monotonic clock the test moves by hand (for circuit breakers)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def selector_for() -> AsyncIterator[Callable[..., Selector]]:
    """Build selectors over real providers; their HTTP clients are closed at the end."""
    built: list[Selector] = []

    def _make(config: Config, **kwargs: Any) -> Selector:
        kwargs.setdefault("sleep", Sleeps())
        kwargs.setdefault("rand", lambda: 0.5)
        selector = Selector(config, build_providers(config), **kwargs)
        built.append(selector)
        return selector

    yield _make
    for selector in built:
        await close_providers(selector.providers)


def request(text: str = "hello", *, tools: bool = False) -> ModelRequest:
    spec = [ToolSpec("search", "Search the archive.", {
        "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"],
    })] if tools else []
    return ModelRequest(
        system="You are terse.",
        messages=[ChatMessage("user", [{"type": "text", "text": text}])],
        tools=spec,
    )


async def collect(
    selector: Selector, primary: str, *, deadline: float | None = None, req: ModelRequest | None = None
) -> tuple[list[ModelEvent], Selection]:
    selection = Selection(model=primary)
    events = [e async for e in selector.stream(primary, req or request(), selection, deadline=deadline)]
    return events, selection
