"""`@modelcontextprotocol/server-everything` (from npm) over streamable HTTP: its tools in
turns through the scripted model, results of every kind mapped, approval, a cancel that
reaches the server as `notifications/cancelled` within a second, and a server that goes
away and comes back."""

from __future__ import annotations

import time
from pathlib import Path

from tests.mcp.conftest import Everything
from tests.support.scripted import ScriptedProvider, answer, tool_results, tool_round
from tests.tools.helpers import by_type, connect, make_config, running


def config_for(tmp_path: Path, everything: Everything, *settings: str):  # type: ignore[no-untyped-def]
    return make_config(tmp_path, f'mcp.servers.everything.url="{everything.url}"', *settings, probes=False)


def test_a_turn_calls_echo_after_approval(tmp_path: Path, everything: Everything) -> None:
    provider = ScriptedProvider(tool_round(("everything.echo", {"message": "hello over http"})), answer("done"))
    with running(config_for(tmp_path, everything), provider) as client, connect(client) as conn:
        assert "everything.echo" in [t["name"] for t in conn.welcome["tools"]]
        ack = conn.send("echo something")
        call = conn.until("tool.call")
        assert call["needs_approval"] is True and call["name"] == "everything.echo"
        conn.request({"type": "approve", "call_id": call["call_id"], "decision": "allow"})
        events = conn.turn(ack)
    (output,) = by_type(events, "tool.output")
    assert output["ok"] is True and "hello over http" in str(output["result"])
    (result,) = tool_results(provider.requests[1])
    assert "hello over http" in result["content"] and result["is_error"] is False


def test_images_structured_content_and_resource_links_are_mapped(tmp_path: Path, everything: Everything) -> None:
    provider = ScriptedProvider(
        tool_round(("everything.get-tiny-image", {}), ("everything.get-structured-content", {"location": "New York"}),
                   ("everything.get-resource-links", {"count": 2})),
        answer("seen"),
    )
    config = config_for(tmp_path, everything, 'mcp.servers.everything.policy="allow"')
    with running(config, provider) as client, connect(client) as conn:
        events = conn.turn(conn.send("show me"))
    outputs = {o["call_id"]: o for o in by_type(events, "tool.output")}
    calls = {c["name"]: outputs[c["call_id"]] for c in by_type(events, "tool.call")}
    image = calls["everything.get-tiny-image"]["result"]["content"]
    assert any(p["type"] == "image" and p["mime_type"] == "image/png" and p["data"] for p in image)
    assert "temperature" in calls["everything.get-structured-content"]["result"]["structured"]
    links = [p for p in calls["everything.get-resource-links"]["result"]["content"] if p["type"] == "resource_link"]
    assert len(links) == 2 and all(link["uri"] for link in links)


def test_cancelling_the_turn_cancels_the_call_on_the_server_within_a_second(tmp_path: Path, everything: Everything) -> None:
    provider = ScriptedProvider(tool_round(("everything.trigger-long-running-operation", {"duration": 30, "steps": 30})))
    config = config_for(tmp_path, everything, 'mcp.servers.everything.policy="allow"')
    with running(config, provider) as client, connect(client) as conn:
        ack = conn.send("take your time")
        conn.until("tool.call")
        time.sleep(0.3)  # the call is running on the server
        asked = time.monotonic()
        conn.request({"type": "cancel", "turn_id": ack["turn_id"]})
        done = conn.until("turn.completed")
        assert done["status"] == "cancelled" and time.monotonic() - asked < 1.0
        while b"notifications/cancelled" not in everything.sent():
            assert time.monotonic() - asked < 1.0, "the server was not told the call is cancelled"
            time.sleep(0.02)


def test_a_server_that_goes_away_is_down_with_a_clear_error_and_comes_back(tmp_path: Path, everything: Everything) -> None:
    config = config_for(
        tmp_path, everything, 'mcp.servers.everything.policy="allow"', "mcp.servers.everything.ping_s=0.2",
        "mcp.reconnect_max_s=0.5",
    )
    provider = ScriptedProvider(
        tool_round(("everything.echo", {"message": "while down"})), answer("noted"),
        tool_round(("everything.echo", {"message": "back again"})), answer("good"),
    )
    with running(config, provider) as client, connect(client) as conn:
        connection = client.app.state.runtime.mcp.connections["everything"]  # type: ignore[attr-defined]
        everything.kill()
        deadline = time.monotonic() + 10
        while connection.state != "down":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        events = conn.turn(conn.send("try it"))
        (output,) = by_type(events, "tool.output")
        assert output["ok"] is False and "MCP server 'everything' is unavailable" in output["error"]
        everything.start()  # the same port: the connection comes back by itself
        while connection.state != "ready":
            assert time.monotonic() < deadline + 10
            time.sleep(0.05)
        events = conn.turn(conn.send("again"))
        (output,) = by_type(events, "tool.output")
        assert output["ok"] is True and "back again" in str(output["result"])
