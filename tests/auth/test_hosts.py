"""The `Host` rule, against a real server: a page that rebinds its own DNS name to the
server (DNS rebinding) sends that name as `Host`, and is refused on HTTP (403) and on the
WebSocket handshake (403) like a foreign origin; the server's own names pass, and so do the
probes, whatever `Host` a scraper sends."""

from __future__ import annotations

import asyncio
import http.client
import json

import pytest
import websockets

from tests.support.live import LiveServer

PUBLIC = "https://chat.example.com"


@pytest.fixture
def server(tmp_path):
    with LiveServer(tmp_path, f'server.public_url="{PUBLIC}"') as live:
        yield live


def status(port: int, path: str, host: str, headers: dict[str, str] | None = None) -> int:
    """The status of a GET whose `Host` header is exactly `host`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def handshake(port: int, host: str) -> int:
    """The status of a WebSocket handshake with this `Host`: 101 if accepted."""
    return status(port, "/ws", host, {
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
    })


async def _a_conversation(ws_url: str) -> str:
    async with websockets.connect(ws_url) as socket:
        await socket.send('{"type": "hello"}')
        assert json.loads(await asyncio.wait_for(socket.recv(), 5))["type"] == "welcome"
        await socket.send('{"type": "send", "client_msg_id": "m1", "text": "secret plans", "ref": 1}')
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
            if frame.get("ref") == 1:
                assert frame["type"] == "ack", frame
                return frame["conversation_id"]


ATTACKER_NAMES = ["rebind.attacker.example:{port}", "rebind.attacker.example", "127.0.0.1.nip.io:{port}",
                  "localhost.attacker.example:{port}", "chat.example.com.attacker.example", "testserver",
                  "chat.example.com:8443"]


async def test_an_export_under_a_foreign_host_is_refused(server):
    conversation = await _a_conversation(server.ws_url)
    path = f"/api/conversations/{conversation}/export?format=md"
    for name in ATTACKER_NAMES:
        assert status(server.port, path, name.format(port=server.port)) == 403, name
        assert status(server.port, "/", name.format(port=server.port)) == 403, name
    # The same export under the server's own name: the open mode's `local` user gets it.
    assert status(server.port, path, f"127.0.0.1:{server.port}") == 200


def test_a_handshake_under_a_foreign_host_is_refused(server):
    for name in ATTACKER_NAMES:
        assert handshake(server.port, name.format(port=server.port)) == 403, name


def test_the_servers_own_names_are_accepted(server):
    own = [f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"LOCALHOST:{server.port}",
           f"[::1]:{server.port}", "chat.example.com", "chat.example.com:443",
           # Loopback through a tunnel or forwarder on another port (`ssh -L 9000:...`):
           # no page can rebind a name that is resolved without DNS.
           "localhost:9000", "127.0.0.1:9000", "[::1]:9000"]
    for name in own:
        assert status(server.port, "/", name) == 200, name
        assert handshake(server.port, name) == 101, name


def test_probes_answer_under_any_host(server):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert status(server.port, path, "10.1.2.3:8000") == 200, path
