"""The example plugin (`examples/weather_tool`), installed from its own folder, seen by a
server through its entry point: listed in `welcome.tools`, called directly and by a model.

It must be installed into the test environment (`pip install -e examples/weather_tool`;
`make test` does it). These tests fail, rather than skip, when it is not.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.fakes import FakeAnthropic
from tests.fakes.behaviours import Reply, ToolCall
from tests.support.live import LiveServer
from tests.support.scripted import ScriptedProvider, answer, tool_results, tool_round
from tests.support.wsclient import WsClient
from tests.tools.helpers import by_type, connect, make_config, running

KEY_ENV = "CHINWAG_TEST_MODEL_KEY"
OSLO_F = {"city": "Oslo", "temperature": 26.6, "unit": "f", "sky": "snow"}


@pytest.fixture(autouse=True)
def installed() -> None:
    names = {ep.name: ep.value for ep in entry_points(group="chinwag.tools")}
    assert names.get("weather") == "chinwag_weather.tools", (
        "the example plugin is not installed: pip install -e examples/weather_tool"
    )


@pytest.fixture
def weather_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "weather"
    monkeypatch.setenv("CHINWAG_WEATHER_HOME", str(home))
    return home


def test_listed_in_welcome(tmp_path: Path) -> None:
    with running(make_config(tmp_path, probes=False)) as client, connect(client) as conn:
        tools = {t["name"]: t for t in conn.welcome["tools"]}
    assert tools["weather"]["description"] == "The current weather in a city."
    assert tools["weather"]["policy"] == "allow"
    assert tools["weather"]["input_schema"]["required"] == ["city"]
    assert tools["weather"]["input_schema"]["properties"]["unit"]["enum"] == ["c", "f"]
    assert tools["save_favourite"]["policy"] == "ask"


def test_called_directly(tmp_path: Path, weather_home: Path) -> None:
    with running(make_config(tmp_path, probes=False)) as client, connect(client) as conn:
        oslo = conn.tool("weather", {"city": "Oslo", "unit": "f"})
        atlantis = conn.tool("weather", {"city": "Atlantis"})
        kelvin = conn.tool("weather", {"city": "Oslo", "unit": "k"})
        saved = conn.tool("save_favourite", {"city": "lima"})  # a client's own call: no approval
    assert (oslo["type"], oslo["ok"], oslo["result"]) == ("tool.result", True, OSLO_F)
    assert atlantis["ok"] is False and atlantis["error"].startswith("no weather for 'Atlantis'")
    assert (kelvin["code"], kelvin["details"]["path"]) == ("bad_request", "$.args.unit")
    assert saved["result"] == ["Lima"]
    assert json.loads((weather_home / "favourites-local.json").read_text()) == ["Lima"]


def test_called_by_the_model_with_approval_for_the_change(tmp_path: Path, weather_home: Path) -> None:
    provider = ScriptedProvider(
        tool_round(("weather", {"city": "Cairo"}), ("save_favourite", {"city": "Cairo"})),
        answer("Sunny, and saved."),
    )
    with running(make_config(tmp_path, probes=False), provider) as client, connect(client) as conn:
        ack = conn.send("weather in Cairo, and keep it")
        first, second = conn.until("tool.call"), conn.until("tool.call")
        calls = {c["name"]: c for c in (first, second)}
        assert (calls["weather"]["needs_approval"], calls["save_favourite"]["needs_approval"]) == (False, True)
        conn.until("tool.output", call_id=calls["weather"]["call_id"])
        assert not weather_home.exists()  # the change waits for the user
        conn.request({"type": "approve", "call_id": calls["save_favourite"]["call_id"], "decision": "allow"})
        events = conn.turn(ack)
    assert events[-1]["status"] == "complete"
    results = {r["tool_use_id"]: r for r in tool_results(provider.requests[1])}
    assert json.loads(results[calls["weather"]["call_id"]]["content"]) == {
        "city": "Cairo", "temperature": 29.0, "unit": "c", "sky": "sun",
    }
    assert json.loads(results[calls["save_favourite"]["call_id"]]["content"]) == ["Cairo"]
    assert json.loads((weather_home / "favourites-local.json").read_text()) == ["Cairo"]


async def test_end_to_end_through_the_anthropic_sdk(tmp_path: Path) -> None:
    """A real server process, the real anthropic SDK, a fake Messages API that asks for
    the plugin's tools: the results travel back to the API as tool_result blocks."""
    home = tmp_path / "weather"
    async with FakeAnthropic(api_key="test-key") as fake:
        fake.script(
            Reply(text="Checking. ", tool_calls=[ToolCall("weather", {"city": "Oslo", "unit": "f"})]),
            Reply(text="It is snowing in Oslo."),
            Reply(text="", tool_calls=[ToolCall("save_favourite", {"city": "Oslo"})]),
            Reply(text="Saved."),
        )
        server = LiveServer(
            tmp_path,
            'models.claude.provider="anthropic"',
            'models.claude.model_id="claude-test"',
            f'models.claude.base_url="{fake.base_url}"',
            f'models.claude.api_key_env="{KEY_ENV}"',
            'routing.default="claude"',
            "routing.max_retries=0",
            env={KEY_ENV: "test-key", "CHINWAG_WEATHER_HOME": str(home)},
        )
        with server:
            client = await WsClient.connect(server.ws_url, hello={})
            async with client:
                assert {"weather", "save_favourite"} <= {t["name"] for t in client.welcome["tools"]}
                ack, events = await client.chat("What's the weather in Oslo, in Fahrenheit?")
                (output,) = by_type(events, "tool.output")
                assert (output["ok"], output["result"]) == (True, OSLO_F)
                assert events[-1]["status"] == "complete"
                assert "".join(e["text"] for e in by_type(events, "delta")) == "Checking. It is snowing in Oslo."

                # The change asks first, over the wire too.
                second = await client.request({
                    "type": "send", "client_msg_id": "fav-1", "text": "Keep Oslo as a favourite",
                    "conversation_id": ack["conversation_id"],
                })
                call = await client.until("tool.call")
                assert (call["name"], call["needs_approval"]) == ("save_favourite", True)
                assert not home.exists()
                assert (await client.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"}))["type"] == "ok"
                done = await client.until("turn.completed", turn_id=second["turn_id"])
                assert done["status"] == "complete"
                history = await client.request({"type": "history", "conversation_id": ack["conversation_id"]})

    assert json.loads((home / "favourites-local.json").read_text()) == ["Oslo"]
    # What the API was sent: the tools with their schemas, then the call and its result.
    first = fake.requests[0].body
    offered = {t["name"]: t for t in first["tools"]}
    assert offered["weather"]["input_schema"]["properties"]["city"]["minLength"] == 1
    assert offered["save_favourite"]["description"] == "Add a city to the user's favourite cities, and return them all."
    back = fake.requests[1].body["messages"]
    assert [m["role"] for m in back] == ["user", "assistant", "user"]
    (use,) = [b for b in back[1]["content"] if b["type"] == "tool_use"]
    (result,) = back[2]["content"]
    assert (use["name"], use["input"]) == ("weather", {"city": "Oslo", "unit": "f"})
    assert result["type"] == "tool_result" and result["tool_use_id"] == use["id"]
    assert json.loads(result["content"] if isinstance(result["content"], str) else result["content"][0]["text"]) == OSLO_F
    # The follow-up turn carried the first exchange, paired.
    follow_up = fake.requests[2].body["messages"]
    assert [m["role"] for m in follow_up] == ["user", "assistant", "user", "assistant", "user"]
    # And history shows both answers with their calls and results.
    answers = [m for m in history["messages"] if m["role"] == "assistant"]
    assert [[b["type"] for b in m["content"]] for m in answers] == [
        ["text", "tool_use", "tool_result", "text"],
        ["tool_use", "tool_result", "text"],
    ]
