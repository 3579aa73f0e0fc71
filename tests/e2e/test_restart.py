"""A real server process on 127.0.0.1: turns over real sockets survive a restart."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import websockets

from tests.support.live import LiveServer
from tests.support.wsclient import WsClient


async def test_two_turns_survive_a_restart_on_the_same_database(tmp_path: Path) -> None:
    with LiveServer(tmp_path) as server:
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            first, events1 = await client.chat("the first turn")
            _second, events2 = await client.chat("and the second", conversation_id=first["conversation_id"])
        assert events1[-1]["status"] == events2[-1]["status"] == "complete"
        server.restart()
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            history = await client.request({"type": "history", "conversation_id": first["conversation_id"]})
    texts = [(m["role"], m["text"]) for m in history["messages"]]
    assert texts == [
        ("user", "the first turn"), ("assistant", "the first turn"),
        ("user", "and the second"), ("assistant", "and the second"),
    ]
    assert {m["status"] for m in history["messages"]} == {"complete"}


async def test_a_send_repeated_across_a_restart_is_stored_once(tmp_path: Path) -> None:
    frame = {"type": "send", "client_msg_id": "bot-42", "text": "exactly once"}
    with LiveServer(tmp_path) as server:
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            ack1 = await client.request(frame)
            await client.until("turn.completed")
        server.restart()
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            ack2 = await client.request(frame)
            history = await client.request({"type": "history", "conversation_id": ack1["conversation_id"]})
    assert (ack1["message_id"], ack1["turn_id"], ack1["conversation_id"]) == (
        ack2["message_id"], ack2["turn_id"], ack2["conversation_id"])
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]


async def test_foreign_and_look_alike_origins_get_http_403(tmp_path: Path) -> None:
    with LiveServer(tmp_path) as server:
        own = f"http://127.0.0.1:{server.port}"
        async with await WsClient.connect(server.ws_url, hello={}, origin=own) as client:
            assert client.welcome["type"] == "welcome"
        for origin in ["https://evil.example", "null", f"http://127.0.0.1:{server.port}.evil.com",
                       f"https://127.0.0.1:{server.port}", f"http://127.0.0.1:{server.port + 1}"]:
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(server.ws_url, origin=origin)
            assert refused.value.response.status_code == 403, origin


async def test_an_oversized_frame_on_the_wire_closes_with_1009(tmp_path: Path) -> None:
    with LiveServer(tmp_path, "limits.max_frame_bytes=2048") as server:
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            await client.send(json.dumps({"type": "send", "client_msg_id": "a", "text": "x" * 4096}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await client.recv()
    assert closed.value.rcvd.code == 1009


def test_schema_command_prints_valid_json_schema() -> None:
    output = subprocess.run([sys.executable, "-m", "server", "schema"], capture_output=True, text=True, check=True)
    schema = json.loads(output.stdout)
    client, server = schema["oneOf"]
    assert client["title"] == "client frame" and server["title"] == "server frame"
    assert {"Hello", "Send", "Welcome", "Ack", "Delta", "TurnCompleted"} <= set(schema["$defs"])
