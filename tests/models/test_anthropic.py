"""The Anthropic provider: request mapping, stream events, errors, idle timeout."""

from __future__ import annotations

import pytest

from server.config.settings import ModelSettings
from server.models.anthropic import AnthropicProvider, request_params
from server.models.base import ChatMessage, Finish, ProviderError, TextDelta, ToolUse, Usage
from tests.fakes import Fail, FakeAnthropic, Hang, Raw, Reply, ToolCall
from tests.fakes.fake_anthropic import sse
from tests.models.conftest import KEY_ENV, request


def settings(fake: FakeAnthropic, **extra) -> ModelSettings:
    values = {"timeout_s": 5.0, "idle_timeout_s": 2.0, **extra}
    return ModelSettings(
        provider="anthropic", model_id="claude-test", base_url=fake.base_url,
        api_key_env=KEY_ENV, **values,
    )


@pytest.fixture
async def provider():
    provider = AnthropicProvider()
    yield provider
    await provider.aclose()


async def run(provider, model, req=None):
    return [e async for e in provider.stream(model, req or request())]


def test_request_passes_canonical_blocks_and_maps_tools():
    model = ModelSettings(provider="anthropic", model_id="claude-x", max_output_tokens=500)
    blocks = [{"type": "tool_result", "tool_use_id": "t1", "content": "done", "is_error": False}]
    req = request("hi", tools=True)
    req = type(req)(system=req.system, messages=[*req.messages, ChatMessage("user", blocks)],
                    tools=req.tools, max_tokens=77)

    params = request_params(model, req)

    assert params["model"] == "claude-x" and params["max_tokens"] == 77
    assert params["system"] == "You are terse."
    assert params["messages"][1] == {"role": "user", "content": blocks}
    assert params["tools"] == [{
        "name": "search", "description": "Search the archive.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}},
                         "required": ["query"]},
    }]


async def test_text_tool_use_usage_and_stop_reason(fake_anthropic, provider):
    fake_anthropic.script(Reply(
        "On it.", tool_calls=[ToolCall("search", {"query": "x", "tags": ["a", "b"]})],
        input_tokens=11, output_tokens=5,
    ))

    events = await run(provider, settings(fake_anthropic), request(tools=True))

    assert events == [
        Usage(input_tokens=11, output_tokens=1),  # message_start: input known before any text
        TextDelta("On "), TextDelta("it."),
        ToolUse(id="toolu_fake_0_0", name="search", input={"query": "x", "tags": ["a", "b"]}),
        Usage(input_tokens=11, output_tokens=5),
        Finish("tool_use"),
    ]
    sent = fake_anthropic.requests[0]
    assert sent.body["stream"] is True and sent.headers["anthropic-version"]
    assert sent.headers["x-stainless-retry-count"] == "0"


async def test_usage_from_message_start_when_message_delta_has_none(fake_anthropic, provider):
    fake_anthropic.script(Raw([
        sse("message_start", {"type": "message_start", "message": {
            "id": "m", "type": "message", "role": "assistant", "model": "c", "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "text_delta", "text": "hi"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                              "usage": {"output_tokens": 1}}),
        sse("message_stop", {"type": "message_stop"}),
    ]))

    events = await run(provider, settings(fake_anthropic))

    assert events == [Usage(9, 1), TextDelta("hi"), Usage(9, 1), Finish("max_tokens")]


@pytest.mark.parametrize(("fail", "retryable"), [
    (Fail(400), False), (Fail(401), False), (Fail(403), False), (Fail(404), False),
    (Fail(413), False), (Fail(422), False),
    (Fail(429), True), (Fail(500), True), (Fail(502), True), (Fail(503), True),
    (Fail(504), True), (Fail(529), True),
    (Fail(429, message="This request would exceed your organization's spend limit."), False),
    (Fail(429, body={"type": "error", "error": {"type": "rate_limit_error", "message": "limit",
                                                "details": {"error_code": "enforced_spend_limit_reached"}}}),
     False),
])
async def test_error_responses_are_classified(fail, retryable, fake_anthropic, provider):
    fake_anthropic.script(fail)
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic))
    assert (caught.value.status, caught.value.retryable) == (fail.status, retryable)


async def test_retry_after_header_is_parsed(fake_anthropic, provider):
    fake_anthropic.script(Fail(529, retry_after=3))
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic))
    assert caught.value.retry_after == 3.0


async def test_error_event_mid_stream(fake_anthropic, provider):
    fake_anthropic.script(Reply("a b c", fail_after=4, error_type="overloaded_error"))
    received = []
    with pytest.raises(ProviderError) as caught:
        async for event in provider.stream(settings(fake_anthropic), request()):
            received.append(event)
    assert received == [Usage(10, 1), TextDelta("a ")]
    assert caught.value.retryable and caught.value.status == 529


async def test_invalid_request_error_event_mid_stream_is_not_retryable(fake_anthropic, provider):
    fake_anthropic.script(Reply("a b", fail_after=3, error_type="invalid_request_error"))
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic))
    assert not caught.value.retryable


async def test_silence_between_events_is_a_retryable_timeout(fake_anthropic, provider):
    fake_anthropic.script(Hang(60, after_events=3))  # pings do not count as progress
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic, idle_timeout_s=0.3))
    assert caught.value.retryable and "timed out" in caught.value.message
    assert await fake_anthropic.wait_for(lambda: fake_anthropic.requests[0].disconnected_at is not None, 2)


async def test_no_headers_within_timeout_is_a_retryable_timeout(fake_anthropic, provider):
    fake_anthropic.script(Hang(60))
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic, timeout_s=0.3))
    assert caught.value.retryable


async def test_connection_cut_mid_stream_is_retryable(fake_anthropic, provider):
    fake_anthropic.script(Reply("a b c d", drop_after=4))
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic))
    assert caught.value.retryable


async def test_stream_ending_without_message_stop_is_retryable(fake_anthropic, provider):
    fake_anthropic.script(Raw([sse("message_start", {"type": "message_start", "message": {
        "id": "m", "type": "message", "role": "assistant", "model": "c", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}})]))
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_anthropic))
    assert caught.value.retryable


async def test_one_client_per_base_url_and_key(fake_anthropic, provider):
    await run(provider, settings(fake_anthropic))
    await run(provider, settings(fake_anthropic, idle_timeout_s=1.0))
    assert len(provider._clients._clients) == 1
