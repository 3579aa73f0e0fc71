"""The Responses API, driven by the real `openai` SDK (sync and async, streaming and not)
against a real `chinwag serve` process on the echo model: create, stream, background with a
resume after the connection was cut, previous_response_id, cancel, delete, idempotency."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.sessions.helpers import messages
from tests.support.live import LiveServer

LONG = " ".join(f"w{n}" for n in range(60))  # 60 words, 20 ms each: about 1.2 s of streaming


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = LiveServer(tmp_path_factory.mktemp("responses"), "echo.delay_ms=20", "limits.turns_per_minute=0")
    live.start()
    try:
        yield live
    finally:
        live.kill()


def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused-in-open-mode", max_retries=0)


def plain(events: list[Any]) -> list[tuple[int, str, str]]:
    return [(e.sequence_number, e.type, getattr(e, "delta", "")) for e in events]


def answer_row(server: LiveServer, text: str) -> dict[str, Any]:
    rows = [r for r in messages(server.data_dir / "chinwag.db") if r["role"] == "assistant" and r["text"] == text]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_response_answers_and_is_stored(server: LiveServer) -> None:
    reply = client(server).responses.with_raw_response.create(model="echo", input="hello there", instructions="be brief")
    response = reply.parse()
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text == "hello there"
    assert response.instructions == "be brief"
    assert response.usage is not None and response.usage.output_tokens == 2
    row = answer_row(server, "hello there")
    assert row["conversation_id"] == reply.headers["x-chinwag-conversation"] and row["status"] == "complete"
    again = client(server).responses.retrieve(response.id)
    assert again.output_text == "hello there" and again.status == "completed" and again.instructions == "be brief"


def test_a_streamed_response_numbers_every_event(server: LiveServer) -> None:
    events = list(client(server).responses.create(model="echo", input="one two three", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    kinds = [e.type for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "one two three"
    assert events[-1].response.output_text == "one two three"


def test_a_background_response_resumes_after_the_connection_was_cut(server: LiveServer) -> None:
    api = client(server)
    stream = api.responses.create(model="echo", input=LONG, stream=True, background=True)
    first: list[Any] = []
    for event in stream:
        first.append(event)
        if event.type == "response.output_text.delta" and len(first) >= 12:
            break
    stream.close()  # the client's connection drops mid-stream
    response_id = first[0].response.id
    assert api.responses.retrieve(response_id).status == "in_progress"  # background: it goes on
    rest = list(api.responses.retrieve(response_id, stream=True, starting_after=first[-1].sequence_number))
    seen = first + rest
    assert [e.sequence_number for e in seen] == list(range(len(seen)))  # each event exactly once
    assert seen[-1].type == "response.completed"
    assert "".join(e.delta for e in seen if e.type == "response.output_text.delta") == LONG
    # A replay from the start, once over, is the same events with the same numbers.
    assert plain(list(api.responses.retrieve(response_id, stream=True))) == plain(seen)
    # And a resume from the middle of the replay starts exactly there.
    middle = list(api.responses.retrieve(response_id, stream=True, starting_after=20))
    assert plain(middle) == plain(seen)[21:]


def test_previous_response_id_continues_the_stored_conversation(server: LiveServer) -> None:
    api = client(server)
    first = api.responses.with_raw_response.create(model="echo", input="first question")
    second = api.responses.with_raw_response.create(
        model="echo", input=[{"role": "user", "content": [{"type": "input_text", "text": "second question"}]}],
        previous_response_id=first.parse().id,
    )
    assert second.parse().output_text == "second question"
    assert second.parse().previous_response_id == first.parse().id
    conversation = first.headers["x-chinwag-conversation"]
    assert second.headers["x-chinwag-conversation"] == conversation
    rows = [r for r in messages(server.data_dir / "chinwag.db") if r["conversation_id"] == conversation]
    assert [r["text"] for r in rows] == ["first question", "first question", "second question", "second question"]
    with pytest.raises(openai.NotFoundError):
        api.responses.create(model="echo", input="hi", previous_response_id="resp_nope")


def test_cancel_stops_the_answer_and_keeps_what_was_written(server: LiveServer) -> None:
    api = client(server)
    started = api.responses.create(model="echo", input=LONG, background=True)
    assert started.status == "in_progress"
    deadline = time.monotonic() + 10
    while not api.responses.retrieve(started.id).output_text and time.monotonic() < deadline:
        time.sleep(0.05)
    cancelled = api.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    partial = cancelled.output_text
    assert partial and LONG.startswith(partial) and partial != LONG
    assert answer_row(server, partial)["status"] == "cancelled"
    assert api.responses.cancel(started.id).output_text == partial  # idempotent
    events = list(api.responses.retrieve(started.id, stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "cancelled"


def test_closing_a_stream_that_is_not_background_cancels_it(server: LiveServer) -> None:
    api = client(server)
    stream = api.responses.create(model="echo", input=LONG + " closed", stream=True)
    response_id = ""
    for event in stream:
        response_id = response_id or event.response.id  # type: ignore[union-attr]
        if event.type == "response.output_text.delta":
            break
    stream.close()
    deadline = time.monotonic() + 10
    while api.responses.retrieve(response_id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.responses.retrieve(response_id).status == "cancelled"


def test_delete_removes_the_response_and_its_turn(server: LiveServer) -> None:
    api = client(server)
    response = api.responses.create(model="echo", input="forget me please")
    api.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(response.id)
    assert not [r for r in messages(server.data_dir / "chinwag.db") if r["text"] == "forget me please"]
    with pytest.raises(openai.NotFoundError):
        api.responses.delete(response.id)


def test_store_false_is_not_kept(server: LiveServer) -> None:
    api = client(server)
    response = api.responses.create(model="echo", input="not for keeping", store=False)
    assert response.output_text == "not for keeping"
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve(response.id)
    deadline = time.monotonic() + 10
    while [r for r in messages(server.data_dir / "chinwag.db") if r["text"] == "not for keeping"]:
        assert time.monotonic() < deadline, "the turn of a store: false response was kept"
        time.sleep(0.05)
    with pytest.raises(openai.BadRequestError):
        api.responses.create(model="echo", input="x", store=False, background=True)


def test_an_idempotent_retry_joins_the_first_response(server: LiveServer) -> None:
    api = client(server)
    ask: dict[str, Any] = {"model": "echo", "input": "exactly once", "extra_headers": {"Idempotency-Key": "r-1"}}
    first = api.responses.create(**ask)
    again = api.responses.create(**ask)
    assert again.id == first.id and again.output_text == "exactly once"
    rows = messages(server.data_dir / "chinwag.db")
    assert sum(r["text"] == "exactly once" and r["role"] == "user" for r in rows) == 1
    with pytest.raises(openai.ConflictError):
        api.responses.create(model="echo", input="another thing", extra_headers={"Idempotency-Key": "r-1"})


def test_bad_input_gets_precise_errors(server: LiveServer) -> None:
    api = client(server)
    with pytest.raises(openai.BadRequestError) as empty:
        api.responses.create(model="echo", input="")
    assert empty.value.body["param"] == "input"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as kind:
        api.responses.create(model="echo", input=[{"type": "file_search_call", "id": "x"}])  # type: ignore[list-item]
    assert "file_search_call" in kind.value.message
    with pytest.raises(openai.BadRequestError) as tool:
        api.responses.create(model="echo", input="hi", tools=[{"type": "web_search"}])  # type: ignore[list-item]
    assert tool.value.body["param"] == "tools[0].type"  # type: ignore[index]
    response = api.responses.create(model="echo", input="fine")
    with pytest.raises(openai.BadRequestError):
        api.responses.retrieve(response.id, stream=True, starting_after="many")  # type: ignore[arg-type]
    # A function output for a call nobody made: the model API would refuse it, so we do first.
    with pytest.raises(openai.BadRequestError) as orphan:
        api.responses.create(model="echo", previous_response_id=response.id,
                             input=[{"type": "function_call_output", "call_id": "call_nope", "output": "42"}])
    assert "call_nope" in orphan.value.message
    with pytest.raises(openai.BadRequestError) as stateless:
        api.responses.create(model="echo", input=[{"type": "function_call_output", "call_id": "call_nope", "output": "42"}])
    assert stateless.value.body["param"] == "input[0].tool_call_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as later:
        api.responses.create(model="echo", input=[
            {"role": "user", "content": "hi"}, {"type": "mcp_call", "id": "x"},
            {"role": "assistant", "content": [{"type": "input_image", "image_url": "x"}]},
        ])
    assert later.value.body["param"] == "input[2].content"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        api.responses.retrieve("resp_x")


async def test_the_async_client_streams_and_retrieves(server: LiveServer) -> None:
    api = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    stream = await api.responses.create(model="echo", input="async words here", stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    response = await api.responses.retrieve(events[-1].response.id)
    assert response.output_text == "async words here"
    replay = [event async for event in await api.responses.retrieve(response.id, stream=True, starting_after=3)]
    assert plain(replay) == plain(events)[4:]


def test_refusals_from_the_edge_have_openais_shape_too(server: LiveServer) -> None:
    """413 (body too large) and 403 (a cross-origin browser request) come from middleware
    before any route; under /v1/ they still read as OpenAI errors."""
    with pytest.raises(openai.APIStatusError) as large:
        client(server).responses.create(model="echo", input="x" * 2_000_000)
    assert large.value.status_code == 413
    assert large.value.body["code"] == "too_large" and large.value.body["type"] == "invalid_request_error"  # type: ignore[index]
    evil = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, default_headers={"Origin": "https://evil.example"})
    with pytest.raises(openai.PermissionDeniedError) as refused:
        evil.chat.completions.create(model="echo", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.body["type"] == "permission_error"  # type: ignore[index]
