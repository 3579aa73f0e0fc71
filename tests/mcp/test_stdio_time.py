"""`mcp-server-time` (from PyPI, nobody here wrote it) over stdio, as chinwag tools: named
`time.TOOL`, `ask` by default, called by a turn through the scripted model, approved or
denied like any tool; its errors and a server that is gone are clear errors, never the
whole server's failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.support.scripted import ScriptedProvider, answer, tool_results, tool_round
from tests.tools.helpers import by_type, connect, make_config, running

TIME_SERVER = str(Path(sys.executable).with_name("mcp-server-time"))


def time_config(tmp_path: Path, *settings: str):  # type: ignore[no-untyped-def]
    return make_config(
        tmp_path,
        f'mcp.servers.time.command="{TIME_SERVER}"',
        'mcp.servers.time.args=["--local-timezone=UTC"]',
        *settings,
        probes=False,
    )


def test_its_tools_are_offered_namespaced_and_ask_first(tmp_path: Path) -> None:
    with running(time_config(tmp_path), ScriptedProvider()) as client, connect(client) as conn:
        tools = {t["name"]: t for t in conn.welcome["tools"]}
    assert {"time.get_current_time", "time.convert_time"} <= set(tools)
    assert tools["time.get_current_time"]["policy"] == "ask"
    assert "timezone" in tools["time.get_current_time"]["input_schema"]["properties"]


def test_a_turn_calls_it_after_approval_and_the_model_gets_the_result(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("time.get_current_time", {"timezone": "Europe/Oslo"})), answer("done"))
    with running(time_config(tmp_path), provider) as client, connect(client) as conn:
        ack = conn.send("what time is it in Oslo?")
        call = conn.until("tool.call")
        assert (call["name"], call["needs_approval"]) == ("time.get_current_time", True)
        assert conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})["type"] == "ok"
        events = conn.turn(ack)
    (output,) = by_type(events, "tool.output")
    assert output["ok"] is True
    shown = output["result"]["structured"] if isinstance(output["result"], dict) else json.loads(output["result"])
    assert shown["timezone"] == "Europe/Oslo" and "datetime" in shown
    (result,) = tool_results(provider.requests[1])
    assert result["is_error"] is False and "Europe/Oslo" in result["content"]
    # The model saw the tool under a name its API accepts, and nothing with a dot.
    assert "time__get_current_time" in [t.name for t in provider.requests[0].tools]


def test_allow_in_the_config_runs_it_without_asking_and_its_errors_reach_the_model(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("time.get_current_time", {"timezone": "Nowhere/Atlantis"})), answer("sorry"))
    config = time_config(tmp_path, 'mcp.servers.time.policy="allow"')
    with running(config, provider) as client, connect(client) as conn:
        ack = conn.send("time in Atlantis?")
        events = conn.turn(ack)
    (call,) = by_type(events, "tool.call")
    assert call["needs_approval"] is False
    (output,) = by_type(events, "tool.output")
    assert output["ok"] is False and "Nowhere/Atlantis" in output["error"]
    (result,) = tool_results(provider.requests[1])
    assert result["is_error"] is True


def test_arguments_are_checked_against_the_servers_schema(tmp_path: Path) -> None:
    provider = ScriptedProvider(tool_round(("time.get_current_time", {"zone": "UTC"})), answer("oops"))
    config = time_config(tmp_path, 'mcp.servers.time.policy="allow"')
    with running(config, provider) as client, connect(client) as conn:
        events = conn.turn(conn.send("time?"))
    (output,) = by_type(events, "tool.output")
    assert output["ok"] is False and "timezone" in output["error"] and "required" in output["error"]


def test_a_server_that_cannot_start_leaves_the_rest_running(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, f'mcp.servers.gone.command="{tmp_path / "no-such-server"}"', "mcp.startup_wait_s=2", probes=False,
    )
    provider = ScriptedProvider(tool_round(("gone.anything", {})), answer("fine"))
    with running(config, provider) as client, connect(client) as conn:
        assert not [t for t in conn.welcome["tools"] if t["name"].startswith("gone.")]
        events = conn.turn(conn.send("hello"))
        assert events[-1]["status"] == "complete"  # the turn, and the server, carry on
        status = client.app.state.runtime.mcp.connections["gone"]  # type: ignore[attr-defined]
        assert status.state == "down" and status.error


def test_a_quiet_server_is_checked_and_stays_ready(tmp_path: Path) -> None:
    """Protocol 2026-07-28 has no `ping`: the liveness check (asking for the tools again)
    must keep a healthy server `ready`."""
    import time

    with running(time_config(tmp_path, "mcp.servers.time.ping_s=0.1"), ScriptedProvider()) as client:
        connection = client.app.state.runtime.mcp.connections["time"]  # type: ignore[attr-defined]
        time.sleep(0.8)
        assert connection.state == "ready" and connection.error is None


def test_a_reload_connects_and_drops_servers(tmp_path: Path) -> None:
    import time

    with running(make_config(tmp_path, probes=False), ScriptedProvider()) as client:
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        assert not [n for n in runtime.tool_registry.names() if n.startswith("time.")]
        client.portal.call(runtime.apply_config, time_config(tmp_path))  # as a hot reload does
        deadline = time.monotonic() + 10
        while "time.get_current_time" not in runtime.tool_registry.names():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        client.portal.call(runtime.apply_config, make_config(tmp_path, probes=False))
        while [n for n in runtime.tool_registry.names() if n.startswith("time.")]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert "time" not in runtime.mcp.connections
