"""Asking a model to continue a partial answer (a turn continued after an interruption):
a prefill on Anthropic, an instruction on OpenAI-compatible endpoints, the rest of the text
from `echo`; the stored answer and the continuation join without doubled white space."""

from __future__ import annotations

from server.config.settings import ModelSettings
from server.models.anthropic import AnthropicProvider
from server.models.anthropic import request_params as anthropic_params
from server.models.base import CONTINUE_INSTRUCTION, ChatMessage, ModelRequest, TextDelta
from server.models.echo import EchoProvider
from server.models.openai import request_params as openai_params
from tests.fakes import FakeAnthropic, Reply
from tests.models.conftest import KEY_ENV


def continuing(written: str, question: str = "say one two three") -> ModelRequest:
    return ModelRequest(system="", messages=[
        ChatMessage("user", [{"type": "text", "text": question}]),
        ChatMessage("assistant", [{"type": "text", "text": written}]),
    ])


def test_anthropic_continues_with_a_prefill_without_trailing_space() -> None:
    model = ModelSettings(provider="anthropic", model_id="claude-x")
    messages = anthropic_params(model, continuing("one two "))["messages"]
    assert messages[-1] == {"role": "assistant", "content": [{"type": "text", "text": "one two"}]}


async def test_anthropic_drops_the_space_the_prefill_lost_from_the_continuation(
    fake_anthropic: FakeAnthropic,
) -> None:
    fake_anthropic.script(Reply(" three"))
    model = ModelSettings(
        provider="anthropic", model_id="claude-test", base_url=fake_anthropic.base_url,
        api_key_env=KEY_ENV, timeout_s=5.0,
    )
    provider = AnthropicProvider()
    try:
        events = [e async for e in provider.stream(model, continuing("one two "))]
    finally:
        await provider.aclose()
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "one two " + text == "one two three"


def test_openai_compatible_endpoints_are_asked_to_go_on() -> None:
    model = ModelSettings(provider="openai", model_id="llama", base_url="http://127.0.0.1:1/v1")
    messages = openai_params(model, continuing("one two "))["messages"]
    assert messages[-2] == {"role": "assistant", "content": "one two "}
    assert messages[-1] == {"role": "user", "content": CONTINUE_INSTRUCTION}


async def test_echo_streams_the_rest_of_its_text() -> None:
    deltas = [e.text async for e in EchoProvider(0).stream(None, continuing("say one "))  # type: ignore[arg-type]
              if isinstance(e, TextDelta)]
    assert "say one " + "".join(deltas) == "say one two three"
