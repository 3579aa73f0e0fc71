"""The OpenAI-compatible provider: message mapping, tool-call assembly, errors."""

from __future__ import annotations

import json

import pytest

from server.config.settings import ModelSettings
from server.models.base import ChatMessage, Finish, ProviderError, TextDelta, ToolUse, Usage
from server.models.openai import OpenAIProvider, request_params, to_chat_messages
from tests.fakes import Fail, FakeOpenAI, Raw, Reply, ToolCall
from tests.fakes.fake_openai import data
from tests.models.conftest import KEY_ENV, request


def settings(fake: FakeOpenAI, **extra) -> ModelSettings:
    values = {"timeout_s": 5.0, "idle_timeout_s": 2.0, **extra}
    return ModelSettings(
        provider="openai", model_id="llama-test", base_url=fake.base_url, api_key_env=KEY_ENV,
        **values,
    )


@pytest.fixture
async def provider():
    provider = OpenAIProvider()
    yield provider
    await provider.aclose()


async def run(provider, model, req=None):
    return [e async for e in provider.stream(model, req or request())]


def test_messages_map_tool_use_and_tool_results():
    assistant = ChatMessage("assistant", [
        {"type": "text", "text": "Searching."},
        {"type": "tool_use", "id": "call_1", "name": "search", "input": {"query": "cats"}},
    ])
    results = ChatMessage("user", [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "3 hits"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "boom", "is_error": True},
        {"type": "text", "text": "And dogs?"},
    ])

    assert to_chat_messages(assistant) == [{
        "role": "assistant", "content": "Searching.",
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "search", "arguments": json.dumps({"query": "cats"})}}],
    }]
    assert to_chat_messages(results) == [
        {"role": "tool", "tool_call_id": "call_1", "content": "3 hits"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Error: boom"},
        {"role": "user", "content": "And dogs?"},
    ]


def test_request_has_system_message_tools_and_max_tokens():
    model = ModelSettings(provider="openai", model_id="m", max_output_tokens=123)
    params = request_params(model, request("hi", tools=True))
    assert params["messages"][0] == {"role": "system", "content": "You are terse."}
    assert params["messages"][1] == {"role": "user", "content": "hi"}
    assert params["max_tokens"] == 123
    assert params["tools"][0]["type"] == "function"
    assert params["tools"][0]["function"]["name"] == "search"
    assert params["tools"][0]["function"]["parameters"]["required"] == ["query"]


async def test_streamed_tool_calls_are_assembled_by_index(fake_openai, provider):
    fake_openai.script(Reply(
        "Two lookups.",
        tool_calls=[ToolCall("search", {"query": "cats", "limit": 3}), ToolCall("open", {"id": 7})],
        input_tokens=30, output_tokens=12,
    ))

    events = await run(provider, settings(fake_openai), request(tools=True))

    assert events == [
        TextDelta("Two "), TextDelta("lookups."),
        ToolUse(id="call_fake_0_0", name="search", input={"query": "cats", "limit": 3}),
        ToolUse(id="call_fake_0_1", name="open", input={"id": 7}),
        Usage(input_tokens=30, output_tokens=12),
        Finish("tool_use"),
    ]
    body = fake_openai.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_interleaved_tool_call_fragments_without_ids(fake_openai, provider):
    """llama.cpp-style: no ids, fragments of two calls interleaved, finish "stop"."""
    def chunk(delta, finish=None):
        return data({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    fake_openai.script(Raw([
        chunk({"role": "assistant", "tool_calls": [{"index": 0, "function": {"name": "sea", "arguments": '{"q'}}]}),
        chunk({"tool_calls": [{"index": 1, "function": {"name": "open", "arguments": "{}"}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "rch", "arguments": '": "x"}'}}]}),
        chunk({}, finish="stop"),
        data("[DONE]"),
    ]))

    events = await run(provider, settings(fake_openai))

    assert events == [
        ToolUse(id="call_0", name="search", input={"q": "x"}),
        ToolUse(id="call_1", name="open", input={}),
        Usage(0, 0),  # this server reported no usage
        Finish("tool_use"),
    ]


@pytest.mark.parametrize(("scripted", "ours"), [
    ("end_turn", "end_turn"),  # the fake sends "stop"
    ("max_tokens", "max_tokens"),  # "length"
    ("content_filter", "content_filter"),  # unknown reasons pass through
])
async def test_finish_reasons_are_normalised(scripted, ours, fake_openai, provider):
    fake_openai.script(Reply("x", stop_reason=scripted))
    events = await run(provider, settings(fake_openai))
    assert events[-1] == Finish(ours)


async def test_no_api_key_env_uses_a_placeholder_key(provider):
    async with FakeOpenAI(api_key=None) as fake:  # like Ollama: any key will do
        model = ModelSettings(provider="openai", model_id="llama3", base_url=fake.base_url)
        events = await run(provider, model)
        assert TextDelta("ok") in events
        assert fake.requests[0].headers["authorization"] == "Bearer not-needed"


async def test_missing_key_variable_is_not_retryable(provider, fake_openai):
    model = ModelSettings(provider="openai", model_id="m", base_url=fake_openai.base_url,
                          api_key_env="CHINWAG_NO_SUCH_VARIABLE")
    with pytest.raises(ProviderError) as caught:
        await run(provider, model)
    assert not caught.value.retryable and "CHINWAG_NO_SUCH_VARIABLE" in caught.value.message
    assert fake_openai.calls == 0


@pytest.mark.parametrize(("fail", "retryable"), [
    (Fail(400), False), (Fail(401), False), (Fail(404), False), (Fail(413), False),
    (Fail(429), True), (Fail(500), True), (Fail(502), True), (Fail(503), True),
    (Fail(429, error_type="insufficient_quota", message="You exceeded your current quota"), False),
])
async def test_error_responses_are_classified(fail, retryable, fake_openai, provider):
    fake_openai.script(fail)
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_openai))
    assert (caught.value.status, caught.value.retryable) == (fail.status, retryable)


async def test_retry_after_header_is_parsed(fake_openai, provider):
    fake_openai.script(Fail(429, retry_after=7))
    with pytest.raises(ProviderError) as caught:
        await run(provider, settings(fake_openai))
    assert caught.value.retry_after == 7.0


async def test_error_inside_the_stream_after_partial_text(fake_openai, provider):
    fake_openai.script(Reply("a b c d", fail_after=3, error_type="server_error"))
    received = []
    with pytest.raises(ProviderError) as caught:
        async for event in provider.stream(settings(fake_openai), request()):
            received.append(event)
    assert received == [TextDelta("a "), TextDelta("b ")]
    assert caught.value.retryable


async def test_connection_refused_is_retryable(provider, fake_openai):
    model = ModelSettings(provider="openai", model_id="m", base_url="http://127.0.0.1:9/v1",
                          api_key_env=KEY_ENV, connect_timeout_s=1.0)
    with pytest.raises(ProviderError) as caught:
        await run(provider, model)
    assert caught.value.retryable and caught.value.status is None


async def test_one_client_per_base_url_and_key(provider, fake_openai):
    await run(provider, settings(fake_openai))
    await run(provider, settings(fake_openai, max_output_tokens=10))
    assert len(provider._clients._clients) == 1


async def test_a_body_cut_before_finish_reason_or_done_is_a_retryable_failure(fake_openai, provider):
    """Issue 15 point 1: not a complete answer, whatever came before the cut."""
    fake_openai.script(Raw([data({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": None}]})]),
                       Raw([]))
    for _ in range(2):  # cut after some text; a 200 with an empty body
        with pytest.raises(ProviderError) as caught:
            await run(provider, settings(fake_openai))
        assert caught.value.retryable and "cut off" in caught.value.message


async def test_a_server_that_omits_finish_reason_but_sends_done_completes(fake_openai, provider):
    fake_openai.script(Raw([data({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "delta": {"content": "all"}}]}),
                            data("[DONE]")]))
    events = await run(provider, settings(fake_openai))
    assert events == [TextDelta("all"), Usage(0, 0), Finish("end_turn")]
