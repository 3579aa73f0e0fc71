"""Against a real server process: origin checks on the handshake, a key revoked by the CLI
in another process closing its socket with 4011 within a second, and the binding rule."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.auth.helpers import REPO, bearer, cli
from tests.support.live import LiveServer

PUBLIC = "https://app.example.com"


@pytest.fixture
def server(tmp_path):
    with LiveServer(tmp_path, f'server.public_url="{PUBLIC}"') as live:
        yield live


async def _handshake(url: str, origin: str | None) -> int:
    """The HTTP status of the handshake: 101 if accepted."""
    headers = {"Origin": origin} if origin is not None else {}
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.mark.parametrize("origin", [
    "https://evil.example",
    "null",
    "https://app.example.evil.com",
    "https://app.example.com.evil.com",
    "https://evil-app.example.com",
    "http://app.example.com",  # other scheme
    "https://app.example.com:8443",  # other port
    "https://app.example.com/",  # not an origin's serialisation
    "HTTPS://APP.EXAMPLE.COM",
    "http://localhost",  # loopback, but not the server's port
])
async def test_foreign_and_look_alike_origins_get_403(server, origin):
    assert await _handshake(server.ws_url, origin) == 403


async def test_own_origins_and_no_origin_are_accepted(server):
    for origin in (PUBLIC, f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}", None):
        assert await _handshake(server.ws_url, origin) == 101, origin


async def test_cli_revocation_closes_the_open_socket_with_4011_within_a_second(tmp_path):
    assert cli(tmp_path, "users", "add", "robot", "--role", "bot").returncode == 0
    key = cli(tmp_path, "keys", "create", "--user", "robot").stdout.strip()
    other = cli(tmp_path, "keys", "create", "--user", "robot").stdout.strip()
    with LiveServer(tmp_path) as live:
        revoked_socket = await websockets.connect(live.ws_url, additional_headers=bearer(key))
        kept_socket = await websockets.connect(live.ws_url, additional_headers=bearer(other))
        for socket in (revoked_socket, kept_socket):
            await socket.send('{"type": "hello"}')
            assert '"welcome"' in await asyncio.wait_for(socket.recv(), 5)

        result = await asyncio.to_thread(cli, tmp_path, "keys", "revoke", key[:12])
        revoked_at = time.monotonic()
        assert result.returncode == 0, result.stderr
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(revoked_socket.recv(), 1.0)
        assert time.monotonic() - revoked_at < 1.0
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4011

        # The other key's socket is untouched; the revoked key cannot come back.
        await kept_socket.send('{"type": "ping", "ref": 1}')
        assert '"pong"' in await asyncio.wait_for(kept_socket.recv(), 5)
        again = await websockets.connect(live.ws_url, additional_headers=bearer(key))
        await again.send('{"type": "hello"}')
        with pytest.raises(ConnectionClosed) as refused:
            await asyncio.wait_for(again.recv(), 5)
        assert refused.value.rcvd.code == 4004
        await kept_socket.close()


def test_serve_on_all_interfaces_without_auth_exits_with_instructions(tmp_path):
    command = [
        sys.executable, "-m", "server", "serve", "--host", "0.0.0.0", "--port", "0",
        "--set", f'store.path="{tmp_path / "chinwag.db"}"',
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=30, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "chinwag users add" in result.stderr and "chinwag keys create" in result.stderr
    assert "auth.required" in result.stderr
    assert "listening" not in result.stderr
