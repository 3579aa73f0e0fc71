"""Issue 14, resource limits: what one user or one connection can make the server hold or do.

Measured on a real server child process (its RSS from /proc) or as plain session objects
(tracemalloc), each with a bounded load and generous headroom.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
from pathlib import Path

import pytest
import websockets
from starlette.websockets import WebSocketDisconnect
from structlog.testing import capture_logs

from server import protocol
from server.auth.identity import Authenticator
from server.config.settings import SessionSettings
from server.sessions.fanout import Fanout
from server.sessions.registry import SessionRegistry
from server.store.base import UserRecord
from tests.sessions.test_core import ListOutlet
from tests.support.inproc import make_config, running_app
from tests.support.live import LiveServer
from tests.support.wsclient import WsClient

ALICE = UserRecord(id="alice", name="Alice", role="user")
BIG_TEXT = "x" * 31_000


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _message(index: int, text: str = BIG_TEXT) -> protocol.Message:
    return protocol.Message(
        id=f"m{index}", conversation_id="c1", role="user", content=[{"type": "text", "text": text}],
        text=text, status="complete", created_at="2026-01-01T00:00:00Z",
    )


async def test_many_closed_sockets_of_one_user_and_big_messages_grow_rss_by_under_20_mb(tmp_path):
    """The probe of issue 14: 200 sockets opened and closed by one user, then 20 messages of
    31,000 characters. Before: +259 MB (every message copied into 200 replay buffers)."""
    with LiveServer(tmp_path, "limits.frames_per_window=100000", "echo.delay_ms=0") as server:
        async with await WsClient.connect(server.ws_url, hello={}) as warm:
            await warm.chat("warm up")  # the first turn loads what every turn needs
        assert server.process is not None
        before = _rss(server.process.pid)
        for _ in range(200):
            client = await WsClient.connect(server.ws_url, hello={})
            await client.close()
        async with await WsClient.connect(server.ws_url, hello={}) as sender:
            for _ in range(20):
                await sender.chat(BIG_TEXT)
            await sender.request({"type": "ping"})
            grown = _rss(server.process.pid) - before
    print(f"RSS grew by {grown / 2**20:.1f} MB")  # shown with -s; 260 MB before issue 14
    assert grown < 20 * 2**20, f"RSS grew by {grown / 2**20:.1f} MB"


def test_a_users_sessions_are_capped_and_the_oldest_detached_one_goes_first() -> None:
    registry = SessionRegistry(SessionSettings(ttl_s=120, replay_buffer=4096, max_per_user=3))
    first, second, third = (registry.create(ALICE) for _ in range(3))
    attached = ListOutlet()
    first.attach(attached, b"{}", last_seq=None)  # attached: kept while others are detached
    fourth = registry.create(ALICE)
    assert {s.id for s in registry.of_user("alice")} == {first.id, third.id, fourth.id}
    info = protocol.ResumeInfo(session_id=second.id, resume_token=second.resume_token, last_seq=0)
    assert registry.find_resumable(ALICE, info) is None  # resumed: false, never a gap
    outlets = {session.id: ListOutlet() for session in (third, fourth)}
    for session in (third, fourth):
        session.attach(outlets[session.id], b"{}", last_seq=None)
    fifth = registry.create(ALICE)  # all attached: someone is connected on each, none goes
    assert attached.closed is None
    assert {s.id for s in registry.of_user("alice")} == {first.id, third.id, fourth.id, fifth.id}
    third.detach(outlets[third.id])
    registry.create(ALICE)  # over the cap again: the one detached session makes room
    assert third.id not in registry.sessions and first.id in registry.sessions


def test_the_replay_buffer_is_bounded_in_bytes_and_an_overrun_resume_is_refused() -> None:
    registry = SessionRegistry(SessionSettings(ttl_s=120, replay_buffer=4096, replay_buffer_bytes=200_000))  # 62 KB a message
    session = registry.create(ALICE)
    for index in range(20):
        session.publish(protocol.MessageEvent(conversation_id="c1", message=_message(index)))
    assert session.buffer_bytes <= 200_000 and len(session.buffer) == 3
    assert not session.can_replay_from(0)  # the oldest events were dropped: no replay with a gap
    assert session.can_replay_from(17)
    outlet = ListOutlet()
    session.attach(outlet, b'{"type":"welcome"}', last_seq=17)
    assert [f.get("seq") for f in outlet.sent] == [None, 18, 19, 20]
    assert outlet.sent[-1]["message"]["id"] == "m19"


def test_fanout_to_detached_sessions_shares_one_encoded_frame() -> None:
    """Before: each of 200 sessions held its own 31 KB copy of every message (6 MB here)."""
    registry = SessionRegistry(SessionSettings(ttl_s=120, replay_buffer=4096, max_per_user=200))
    fanout = Fanout(registry)
    sessions = [registry.create(ALICE) for _ in range(200)]
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        fanout.message_stored("alice", _message(1), origin=None)
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert grown < 300_000, grown  # one 31 KB frame, and a small entry per session
    outlet = ListOutlet()
    sessions[7].attach(outlet, b"{}", last_seq=0)
    assert outlet.sent[1]["seq"] == 1 and outlet.sent[1]["message"]["text"] == BIG_TEXT


def test_a_turns_cost_to_detached_sessions_does_not_depend_on_their_text() -> None:
    """Deltas to a detached session merge by reference: no per-session string copies, so a
    long turn costs each detached session a list append per delta, not a copy of the text."""
    registry = SessionRegistry(SessionSettings(ttl_s=120, replay_buffer=4096, max_per_user=64))
    fanout = Fanout(registry)
    sessions = [registry.create(ALICE) for _ in range(64)]
    for session in sessions:
        session.open_conversations.add("c1")
    fanout.turn_event("alice", "c1", protocol.TurnStarted(
        turn_id="t1", conversation_id="c1", message_id="a1", model="echo", template="system"))
    piece = "word " * 200  # 1 KB a delta
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            fanout.turn_event("alice", "c1", protocol.Delta(turn_id="t1", text=piece))
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    # Copies would be 64 sessions x 200 KB = 12.8 MB; shared pieces cost list slots.
    assert grown < 1_500_000, grown
    outlet = ListOutlet()
    sessions[3].attach(outlet, b"{}", last_seq=1)
    assert [f["type"] for f in outlet.sent[1:]] == ["delta"]
    assert outlet.sent[1]["seq"] == 2 and outlet.sent[1]["text"] == piece * 200


@pytest.mark.parametrize("depth", [1000, 21_000])
async def test_deep_nesting_after_hello_is_one_error_and_the_connection_stays(tmp_path, depth):
    with LiveServer(tmp_path) as server:
        async with await WsClient.connect(server.ws_url, hello={}) as client:
            await client.send('{"type":"ping","ref":' + "[" * depth + "]" * depth + "}")
            error = await client.recv()
            assert error["type"] == "error" and error["code"] == "bad_request", error
            assert (await client.request({"type": "ping"}))["type"] == "pong"


async def test_bytes_per_window_close_the_connection_with_4008(tmp_path):
    with LiveServer(tmp_path, "limits.frame_bytes_per_window=100000") as server:
        connection = await websockets.connect(server.ws_url)
        await connection.send(json.dumps({"type": "hello"}))
        json.loads(await connection.recv())
        frame = json.dumps({"type": "ping", "pad": "p" * 30_000})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            for _ in range(10):
                await connection.send(frame)
                await asyncio.wait_for(connection.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008


class _BrokenAuthenticator(Authenticator):
    """The far edge failing in a way nobody planned for."""

    async def authenticate(self, headers, token):  # type: ignore[no-untyped-def]
        raise RuntimeError("the credential store fell over")


def test_an_unexpected_exception_in_the_read_loop_closes_with_1011_and_a_log_line(tmp_path):
    """Before: the reader task died, the connection closed with 1000 and nothing was logged."""
    app = running_app(make_config(tmp_path), authenticator=_BrokenAuthenticator())
    with app as client, capture_logs() as logs, client.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"type": "hello"}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_text()
    assert closed.value.code == 1011
    failed = [entry for entry in logs if entry["event"] == "connection_failed"]
    assert failed and failed[0].get("exc_info"), logs
