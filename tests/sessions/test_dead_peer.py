"""A peer that misses its pong is cut off, even when its unread bytes block a polite close."""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from server.uvicorn_bridge import DeadPeerAwareProtocol


class StuckTransport(asyncio.Transport):
    """A transport whose peer stopped reading: `close()` would wait for a flush forever."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.close_requested = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.close_requested = True  # and nothing happens: the buffer never drains

    def is_closing(self) -> bool:
        return self.close_requested or self.aborted

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8000)}.get(name, default)


async def app(scope: Any, receive: Any, send: Any) -> None:  # never reached: no handshake
    raise AssertionError


async def test_a_missed_pong_aborts_the_connection_instead_of_waiting_for_a_flush() -> None:
    config = uvicorn.Config(app, ws=DeadPeerAwareProtocol, ws_ping_interval=1, ws_ping_timeout=1)
    config.load()
    protocol = DeadPeerAwareProtocol(config, ServerState(), {})
    transport = StuckTransport()
    protocol.connection_made(transport)
    protocol.keepalive_timeout()
    assert transport.close_requested  # uvicorn's own handling still runs (close frame, close)
    assert transport.aborted  # and then the connection is really let go


async def test_uvicorn_config_uses_the_dead_peer_aware_protocol() -> None:
    from server.config.settings import Config
    from server.serving import uvicorn_config

    assert uvicorn_config(app, Config()).ws is DeadPeerAwareProtocol
