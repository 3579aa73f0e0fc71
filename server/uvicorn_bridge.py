"""The one place chinwag reaches into uvicorn beyond its public API.

Two things ASGI cannot express: cutting off a peer that missed its pong, and resetting a
connection whose polite close would wait forever behind unread bytes. Both need uvicorn's
protocol objects: `WebSocketsSansIOProtocol.keepalive_timeout` and `.transport`, and the
server's `server_state.connections` with each connection's `client` and `transport`.
`tests/sessions/test_uvicorn_bridge.py` fails loudly, naming what moved, if a uvicorn
release changes any of them.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class DeadPeerAwareProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, but a peer that misses its pong is cut off.

    On a keepalive timeout uvicorn sends a close frame and calls `transport.close()`, which
    waits for the write buffer to drain first. A peer that stopped reading (a zero TCP
    window) never drains it, so the connection would never be lost and its session never
    detached. A missed pong already means the peer is gone: abort instead of waiting."""

    def keepalive_timeout(self) -> None:
        super().keepalive_timeout()
        self.transport.abort()  # a no-op on a transport already gone


def abort_client_connection(server_state: Any, client: tuple[str, int]) -> bool:
    """Reset the open connection from `client` (host, port) of a `uvicorn.Server`'s
    `server_state`; False when there is none."""
    for connection in list(server_state.connections):
        if getattr(connection, "client", None) == client:
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()
                return True
    return False
