"""`/v1/models` and `/v1/chat/completions`, driven by the real `openai` SDK (sync and
async, streaming and not) against a real `chinwag serve` process on the echo model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.sessions.helpers import RawSession, messages
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("openai"), "echo.delay_ms=2", "limits.turns_per_minute=0")
    live.start()
    try:
        yield live
    finally:
        live.kill()


def client(server: LiveServer, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-in-open-mode", max_retries=0, **kwargs)  # type: ignore[arg-type]


def test_models_lists_chinwags_models(server: LiveServer) -> None:
    names = [m.id for m in client(server).models.list()]
    assert "echo" in names


def test_a_completion_answers_and_is_stored(server: LiveServer) -> None:
    reply = client(server).chat.completions.with_raw_response.create(
        model="echo", messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
    )
    completion = reply.parse()
    assert completion.choices[0].message.content == "hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 2
    conversation = reply.headers["x-chinwag-conversation"]
    rows = [r for r in messages(server.data_dir / "chinwag.db") if r["conversation_id"] == conversation]
    assert [(r["role"], r["text"], r["status"]) for r in rows] == [
        ("user", "hello there", "complete"), ("assistant", "hello there", "complete"),
    ]


def test_a_streamed_completion_with_usage(server: LiveServer) -> None:
    stream = client(server).chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "one two three"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


async def test_the_async_client_streams_and_a_tab_sees_the_turn_live(server: LiveServer) -> None:
    tab = RawSession(server.ws_url)
    await tab.connect()
    try:
        api = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        first = await api.chat.completions.with_raw_response.create(model="echo", messages=[{"role": "user", "content": "first"}])
        conversation = first.headers["x-chinwag-conversation"]
        await tab.request({"type": "history", "conversation_id": conversation})
        stream = await api.chat.completions.create(
            model="echo", stream=True, messages=[{"role": "user", "content": "alpha beta"}],
            extra_headers={"X-Chinwag-Conversation": conversation},
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "alpha beta"
        for _ in range(100):
            if any(t == "alpha beta" for t in ("".join(p) for p in tab.texts.values())):
                break
            await asyncio.wait_for(tab.pump(), 5)
        assert "alpha beta" in ("".join(p) for p in tab.texts.values())
    finally:
        await tab.abort()


def test_an_idempotent_retry_joins_the_first_turn(server: LiveServer) -> None:
    api = client(server)
    ask = {"model": "echo", "messages": [{"role": "user", "content": "only once"}], "extra_headers": {"Idempotency-Key": "k-1"}}
    first = api.chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    again = api.chat.completions.with_raw_response.create(**ask)  # type: ignore[call-overload]
    assert first.headers["x-chinwag-turn"] == again.headers["x-chinwag-turn"]
    assert again.parse().choices[0].message.content == "only once"
    rows = messages(server.data_dir / "chinwag.db")
    assert sum(r["text"] == "only once" and r["role"] == "user" for r in rows) == 1
    with pytest.raises(openai.ConflictError):
        api.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "something else"}], extra_headers={"Idempotency-Key": "k-1"},
        )


def test_bad_requests_get_openai_errors(server: LiveServer) -> None:
    api = client(server)
    with pytest.raises(openai.BadRequestError) as unknown:
        api.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert "no-such-model" in unknown.value.message
    with pytest.raises(openai.BadRequestError) as last:
        api.chat.completions.create(model="echo", messages=[{"role": "assistant", "content": "hi"}])
    assert last.value.body["param"] == "messages"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "hi"}], extra_headers={"X-Chinwag-Conversation": "c_nope"},
        )


def test_the_context_is_the_request_messages(tmp_path: Path) -> None:
    """A client's earlier exchange reaches the model; the echo answers the last question."""
    live = LiveServer(tmp_path).start()
    try:
        completion = client(live).chat.completions.create(model="echo", messages=[
            {"role": "user", "content": "earlier"}, {"role": "assistant", "content": "said before"},
            {"role": "user", "content": [{"type": "text", "text": "now "}, {"type": "text", "text": "this"}]},
        ])
        assert completion.choices[0].message.content == "now this"
    finally:
        live.kill()
