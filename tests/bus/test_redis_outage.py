"""A node whose Redis goes away: `/readyz` says so, a `hello` is told to come back later
(1013), and the node keeps running; once Redis is back, sessions open again."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from starlette.websockets import WebSocketDisconnect

from server.protocol import CloseCode
from tests.support.inproc import Socket, make_config, running_app
from tests.support.services import RedisServer, ServiceError, start_redis


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, to stop and start again."""
    try:
        server = start_redis()
    except ServiceError as exc:
        pytest.fail(f"Redis did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


def _wait(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_a_node_without_its_redis_is_unready_and_asks_clients_to_retry(tmp_path, own_redis: RedisServer) -> None:
    config = make_config(tmp_path, f'bus.url="{own_redis.url()}"')
    with running_app(config) as client:
        assert client.get("/readyz").status_code == 200
        with client.websocket_connect("/ws") as ws:
            welcome = Socket(ws).request({"type": "hello"})
            assert welcome["type"] == "welcome"

        own_redis.process.kill()  # type: ignore[union-attr]
        own_redis.process.wait(10)  # type: ignore[union-attr]
        _wait(lambda: client.get("/readyz").status_code == 503)
        assert any(p.startswith("bus: ") for p in client.get("/readyz").json()["problems"])

        with client.websocket_connect("/ws") as ws:
            socket = Socket(ws)
            socket.send({"type": "hello", "ref": "h"})
            with pytest.raises(WebSocketDisconnect) as closed:
                socket.recv()
            assert closed.value.code == CloseCode.OVERLOADED

        own_redis.start()  # same port: the node's client reconnects by itself
        _wait(lambda: client.get("/readyz").status_code == 200)
        with client.websocket_connect("/ws") as ws:
            assert Socket(ws).request({"type": "hello"})["type"] == "welcome"
