"""Tools over the OpenAI-compatible APIs, with the real `openai` SDK against a real
`chinwag serve` whose model is Anthropic's SDK pointed at the fake Anthropic server:

- a client's own function comes back as `tool_calls` (Chat Completions) or a
  `function_call` item (Responses), and the result it sends back reaches the model;
- a chinwag tool that asks ends the response with an `mcp_approval_request`; the next
  request's `mcp_approval_response` runs it (or not), never silently."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.browser.chat import fake_model_settings
from tests.fakes import FakeAnthropic, Reply, ToolCall
from tests.support.live import LiveServer

REMEMBER = Path(__file__).parents[1] / "support" / "tool_files" / "remember.py"
WEATHER = {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeAnthropic]:
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notes") / "notes.txt"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake: FakeAnthropic, notes: Path) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("api-tools")
    tools = folder / "tools"
    tools.mkdir()
    (tools / "remember.py").write_text(REMEMBER.read_text())
    settings = [f"tools.folders={json.dumps([str(tools)])}", "limits.turns_per_minute=0", *fake_model_settings(fake.base_url)]
    live = LiveServer(folder, *settings, env={"FAKE_KEY": "test-key", "REMEMBER_FILE": str(notes)}).start()
    try:
        yield live
    finally:
        live.kill()


def client(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def sent_to_model(fake: FakeAnthropic) -> dict[str, Any]:
    return fake.requests[-1].body  # type: ignore[no-any-return]


def blocks_of(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"] if b.get("type") == kind]


def test_chat_a_client_function_comes_back_as_tool_calls_and_its_result_reaches_the_model(
    server: LiveServer, fake: FakeAnthropic
) -> None:
    fake.script(Reply("Checking.", tool_calls=[ToolCall("get_weather", {"city": "Oslo"})]), Reply("It is sunny in Oslo."))
    api = client(server)
    ask = [{"role": "user", "content": "Weather in Oslo?"}]
    first = api.chat.completions.create(model="claude", messages=ask, tools=[{"type": "function", "function": WEATHER}])  # type: ignore[arg-type, list-item]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    assert any(t["name"] == "get_weather" for t in sent_to_model(fake)["tools"])
    stream = api.chat.completions.create(model="claude", stream=True, tools=[{"type": "function", "function": WEATHER}], messages=[  # type: ignore[arg-type, list-item]
        *ask,
        {"role": "assistant", "content": "Checking.", "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "It is sunny in Oslo."
    results = blocks_of(sent_to_model(fake), "tool_result")
    assert [(r["tool_use_id"], r["content"]) for r in results] == [(call.id, "sunny, 21 C")]


def test_chat_a_streamed_tool_call_arrives_as_a_tool_calls_delta(server: LiveServer, fake: FakeAnthropic) -> None:
    fake.script(Reply("", tool_calls=[ToolCall("get_weather", {"city": "Rome"})]))
    chunks = list(client(server).chat.completions.create(
        model="claude", stream=True, messages=[{"role": "user", "content": "Rome?"}],
        tools=[{"type": "function", "function": WEATHER}],  # type: ignore[list-item]
    ))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert len(calls) == 1 and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_responses_a_function_call_and_its_output_with_previous_response_id(server: LiveServer, fake: FakeAnthropic) -> None:
    fake.script(Reply("Let me look.", tool_calls=[ToolCall("get_weather", {"city": "Lima"})]), Reply("Lima is foggy."))
    api = client(server)
    first = api.responses.create(model="claude", input="Weather in Lima?", tools=[{"type": "function", **WEATHER}])  # type: ignore[list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Lima"}
    assert first.output_text == "Let me look." and first.status == "completed"
    second = api.responses.create(
        model="claude", previous_response_id=first.id, tools=[{"type": "function", **WEATHER}],  # type: ignore[list-item]
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "foggy, 15 C"}],
    )
    assert second.output_text == "Lima is foggy."
    body = sent_to_model(fake)
    assert [(u["id"], u["name"]) for u in blocks_of(body, "tool_use")] == [(calls[0].call_id, "get_weather")]
    assert [(r["tool_use_id"], r["content"]) for r in blocks_of(body, "tool_result")] == [(calls[0].call_id, "foggy, 15 C")]


def test_responses_a_function_name_of_a_chinwag_tool_is_refused(server: LiveServer) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client(server).responses.create(
            model="claude", input="hi", tools=[{"type": "function", "name": "remember", "parameters": {}}],  # type: ignore[list-item]
        )
    assert refused.value.body["param"] == "tools[0].name"  # type: ignore[index]


def test_responses_a_tool_that_asks_is_approved_through_the_api(server: LiveServer, fake: FakeAnthropic, notes: Path) -> None:
    fake.script(Reply("Noting it.", tool_calls=[ToolCall("remember", {"note": "oat milk"})]), Reply("Saved it."))
    api = client(server)
    stream = list(api.responses.create(model="claude", input="Remember oat milk", stream=True))
    asked = stream[-1].response
    requests = [item for item in asked.output if item.type == "mcp_approval_request"]
    assert asked.status == "completed" and len(requests) == 1
    assert requests[0].name == "remember" and json.loads(requests[0].arguments) == {"note": "oat milk"}
    assert not notes.exists()  # nothing ran before the user said so
    approved = api.responses.create(
        model="claude", previous_response_id=asked.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": requests[0].id, "approve": True}],
    )
    calls = [item for item in approved.output if item.type == "mcp_call"]
    assert len(calls) == 1 and calls[0].output == "saved: oat milk" and calls[0].approval_request_id == requests[0].id
    assert approved.output_text == "Saved it."
    assert notes.read_text() == "oat milk\n"
    results = blocks_of(sent_to_model(fake), "tool_result")
    assert [(r["tool_use_id"], r["content"]) for r in results] == [(requests[0].id, "saved: oat milk")]
    with pytest.raises(openai.ConflictError):  # an approval runs its call once
        api.responses.create(
            model="claude", previous_response_id=asked.id,
            input=[{"type": "mcp_approval_response", "approval_request_id": requests[0].id, "approve": True}],
        )


def test_responses_a_denied_call_is_not_run_and_the_model_is_told(server: LiveServer, fake: FakeAnthropic, notes: Path) -> None:
    before = notes.read_text() if notes.exists() else ""
    fake.script(Reply("", tool_calls=[ToolCall("remember", {"note": "secret"})]), Reply("Understood, not saved."))
    api = client(server)
    asked = api.responses.create(model="claude", input="Remember my secret")
    request = next(item for item in asked.output if item.type == "mcp_approval_request")
    denied = api.responses.create(
        model="claude", previous_response_id=asked.id,
        input=[{"type": "mcp_approval_response", "approval_request_id": request.id, "approve": False}],
    )
    call = next(item for item in denied.output if item.type == "mcp_call")
    assert call.error and "denied" in str(call.error) and call.output is None
    assert denied.output_text == "Understood, not saved."
    assert (notes.read_text() if notes.exists() else "") == before
    result = blocks_of(sent_to_model(fake), "tool_result")[-1]
    assert result["tool_use_id"] == request.id and "denied" in result["content"]


def test_a_response_killed_mid_stream_continues_with_its_own_context(tmp_path: Path) -> None:
    """kill -9 while a Responses turn streams; after the restart the turn continues, and the
    model is sent the context the client gave (not only the stored question), and the
    response reads completed with the whole answer."""
    words = [f"word{n} " for n in range(40)]
    with FakeAnthropic() as fake:
        fake.script(Reply(words, delay_s=0.05), Reply("and the rest."))
        settings = ["limits.turns_per_minute=0", "turns.stream_checkpoint_ms=20", *fake_model_settings(fake.base_url)]
        live = LiveServer(tmp_path, *settings, env={"FAKE_KEY": "test-key"}).start()
        api = client(live)
        started = api.responses.create(model="claude", background=True, instructions="Answer in words.", input=[
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": "now this"},
        ])
        deadline = time.monotonic() + 10
        while len(api.responses.retrieve(started.id).output_text) < 40:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        live.kill()
        live.restart()
        try:
            deadline = time.monotonic() + 20
            while (response := client(live).responses.retrieve(started.id)).status == "in_progress":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert response.status == "completed", "".join(live.log[-30:])
            assert response.output_text.endswith("and the rest.")
            continued = fake.requests[-1].body
            texts = [b.get("text") for m in continued["messages"] for b in m["content"] if isinstance(m["content"], list)]
            assert texts[:3] == ["earlier question", "earlier answer", "now this"]
            assert continued["system"][-1]["text"].endswith("Answer in words.") if isinstance(continued["system"], list) else continued["system"].endswith("Answer in words.")
        finally:
            live.kill()
