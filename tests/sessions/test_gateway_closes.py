"""Close codes a client can rely on: 4003 without `hello`, and a dead socket found by the
heartbeat is closed and its session detached (resumable)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.sessions.helpers import RawSession
from tests.support.live import LiveServer
from tests.support.proxy import CutProxy


@pytest.fixture
def server(tmp_path: Path):
    with LiveServer(tmp_path, "session.hello_timeout_s=0.5", "session.heartbeat_s=0.5") as live:
        yield live


async def _close_code(connection: websockets.ClientConnection, timeout: float = 5) -> int | None:
    try:
        while True:
            await asyncio.wait_for(connection.recv(), timeout)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def test_no_hello_in_time_closes_4003(server: LiveServer) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["chinwag.v1"]) as connection:
        started = time.monotonic()
        assert await _close_code(connection) == 4003
        assert time.monotonic() - started < 3


async def test_frame_before_hello_closes_4003(server: LiveServer) -> None:
    async with websockets.connect(server.ws_url, subprotocols=["chinwag.v1"]) as connection:
        await connection.send(json.dumps({"type": "ping"}))
        assert await _close_code(connection) == 4003


async def test_unanswered_pings_close_the_socket_and_free_the_session(server: LiveServer) -> None:
    """The proxy stops forwarding (a peer that vanished without a FIN): the server's
    pings go unanswered, it drops the socket, and the session can be resumed."""
    proxy = await CutProxy.open(server.port)
    client = RawSession(proxy.ws_url)
    await client.connect()
    _ack, _done = await client.chat("hello before the freeze", "hb-1")
    for pair in list(proxy.pairs):
        pair.freeze()
    # Two heartbeats (0.5 s ping interval + 0.5 s timeout) later the server has given up.
    for _ in range(60):
        if any('"socket_closed"' in line and client.session_id in line for line in server.log):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the server never dropped the dead socket")
    await proxy.close()
    direct = RawSession(server.ws_url)
    direct.session_id, direct.resume_token, direct.last_seq = (
        client.session_id, client.resume_token, client.last_seq,
    )
    welcome = await direct.connect()
    assert welcome["resumed"] is True
    await direct.abort()
