"""uvicorn beyond its public API, in one place: fail loudly if a release changes it.
(The behaviour itself is tested end to end in test_dead_peer.py.)"""

from __future__ import annotations

import inspect

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

WHERE = "server/uvicorn_bridge.py must change"


def test_the_sansio_protocol_still_has_its_keepalive_hook_and_transport() -> None:
    assert callable(getattr(WebSocketsSansIOProtocol, "keepalive_timeout", None)), (
        f"uvicorn {uvicorn.__version__}: WebSocketsSansIOProtocol.keepalive_timeout is gone; {WHERE}"
    )
    source = inspect.getsource(WebSocketsSansIOProtocol)
    assert "self.transport" in source and "self.client" in source, (
        f"uvicorn {uvicorn.__version__}: the protocol no longer keeps .transport/.client; {WHERE}"
    )


def test_the_server_state_still_lists_its_connections() -> None:
    assert isinstance(ServerState().connections, set), (
        f"uvicorn {uvicorn.__version__}: ServerState.connections changed; {WHERE}"
    )
