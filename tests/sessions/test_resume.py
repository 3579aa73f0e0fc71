"""Resume that cannot be honoured answers `resumed: false` and reveals nothing; a second
session of the same user hears about the first one's messages and open conversations."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.sessions.helpers import RawSession
from tests.support.live import LiveServer

SLOW_TEXT = " ".join(f"w{i}" for i in range(40))


@pytest.fixture
def server(tmp_path: Path):
    settings = ("echo.delay_ms=40", "session.ttl_s=0.5", "session.replay_buffer=8")
    with LiveServer(tmp_path, *settings) as live:
        yield live


async def _hello(url: str, resume: dict[str, Any]) -> dict[str, Any]:
    async with websockets.connect(url, subprotocols=["chinwag.v1"]) as ws:
        await ws.send(json.dumps({"type": "hello", "resume": resume}))
        return json.loads(await ws.recv())


async def _detached_session(server: LiveServer) -> RawSession:
    client = RawSession(server.ws_url)
    await client.connect()
    await client.abort()
    await asyncio.sleep(0.05)
    return client


def _resume(client: RawSession, **changes: Any) -> dict[str, Any]:
    return {"session_id": client.session_id, "resume_token": client.resume_token,
            "last_seq": client.last_seq, **changes}


async def test_wrong_token_and_unknown_session_look_the_same(server: LiveServer) -> None:
    client = await _detached_session(server)
    wrong = await _hello(server.ws_url, _resume(client, resume_token="x" * 32))
    unknown = await _hello(server.ws_url, _resume(client, session_id="s_doesnotexist"))
    for welcome in (wrong, unknown):
        assert welcome["type"] == "welcome" and welcome["resumed"] is False
        assert welcome["session_id"] != client.session_id and welcome["last_seq"] == 0
    assert set(wrong) == set(unknown)
    # The real session was not harmed by the wrong guess.
    assert (await _hello(server.ws_url, _resume(client)))["resumed"] is True


async def test_expired_session_and_impossible_last_seq_are_refused(server: LiveServer) -> None:
    client = await _detached_session(server)
    ahead = await _hello(server.ws_url, _resume(client, last_seq=client.last_seq + 5))
    assert ahead["resumed"] is False
    await asyncio.sleep(1.0)  # past session.ttl_s
    expired = await _hello(server.ws_url, _resume(client))
    assert expired["resumed"] is False


async def test_last_seq_older_than_the_buffer_is_refused_and_history_shows_streaming(
    server: LiveServer,
) -> None:
    client = RawSession(server.ws_url)
    await client.connect()
    ack = await client.request({"type": "send", "client_msg_id": "m1", "text": SLOW_TEXT})
    while len(client.texts[ack["turn_id"]]) < 12:  # more events than the buffer (8) holds
        await client.pump()
    welcome = await _hello(server.ws_url, _resume(client, last_seq=1))
    assert welcome["resumed"] is False
    fresh = RawSession(server.ws_url)
    await fresh.connect()
    history = await fresh.request({"type": "history", "conversation_id": ack["conversation_id"]})
    answer = history["messages"][-1]
    assert answer["role"] == "assistant" and answer["status"] == "streaming"
    # history opened the conversation: the rest of the turn streams to this session too.
    while ack["turn_id"] not in fresh.completed:
        await fresh.pump()
    await client.abort()
    await fresh.abort()


async def test_second_session_gets_messages_and_turns_of_open_conversations(server: LiveServer) -> None:
    first, second = RawSession(server.ws_url), RawSession(server.ws_url)
    await first.connect()
    await second.connect()
    ack = await first.request({"type": "send", "client_msg_id": "t1", "text": "hello from tab one"})
    news = await second.pump()
    assert news["type"] == "message" and news["message"]["client_msg_id"] == "t1"
    assert news["conversation_id"] == ack["conversation_id"]
    while ack["turn_id"] not in first.completed:
        await first.pump()
    assert not second.started, "a conversation it has not opened: no turn events"
    await second.request({"type": "history", "conversation_id": ack["conversation_id"]})
    ack2 = await first.request({
        "type": "send", "client_msg_id": "t2", "text": "and again",
        "conversation_id": ack["conversation_id"],
    })
    while ack2["turn_id"] not in second.completed:
        await second.pump()
    assert "".join(second.texts[ack2["turn_id"]]) == "and again"
    await first.abort()
    await second.abort()
