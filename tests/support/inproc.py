"""In-process apps for tests: `create_app` with a temporary store, driven by Starlette's
TestClient (no network), with the same schema checks as the socket client."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from server.app import create_app
from server.config.settings import Config, load_config
from tests.support.schema import check_client_frame, check_server_frame

_refs = itertools.count(1)


def make_config(tmp_path: Path, *overrides: str) -> Config:
    return load_config(
        environ={},
        # No file watching in process: a test that wants hot reload turns it on.
        overrides=[f'store.path="{tmp_path / "chinwag.db"}"', "echo.delay_ms=0", "reload.enabled=false", *overrides],
    )


class Socket:
    """One WebSocket of a TestClient, speaking frames as dicts."""

    def __init__(self, ws: Any):
        self.ws = ws

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, dict):
            check_client_frame(frame)
            self.ws.send_text(json.dumps(frame))
        elif isinstance(frame, bytes):
            self.ws.send_bytes(frame)
        else:
            self.ws.send_text(frame)

    def recv(self) -> dict[str, Any]:
        frame = json.loads(self.ws.receive_text())
        check_server_frame(frame)
        return frame

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        ref = frame.get("ref", f"r{next(_refs)}")
        self.send({**frame, "ref": ref})
        while True:
            reply = self.recv()
            if reply.get("ref") == ref:
                return reply

    def until(self, frame_type: str) -> dict[str, Any]:
        while True:
            frame = self.recv()
            if frame["type"] == frame_type:
                return frame

    def chat(self, text: str, **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        ack = self.request({"type": "send", "client_msg_id": f"m{next(_refs)}", "text": text, **fields})
        assert ack["type"] == "ack", ack
        events = []
        while True:
            frame = self.recv()
            if frame.get("turn_id") == ack["turn_id"] and "seq" in frame:
                events.append(frame)
                if frame["type"] == "turn.completed":
                    return ack, events


@contextmanager
def running_app(config: Config, **kwargs: Any) -> Iterator[TestClient]:
    with TestClient(create_app(config, **kwargs), headers=own_host(config)) as client:
        yield client


def own_host(config: Config) -> dict[str, str]:
    """A `Host` header naming the server, as a real client's would (the server refuses
    other names: DNS rebinding); TestClient's own is `testserver`. Its WebSocket handshakes
    carry it too (client headers apply to every request)."""
    return {"host": f"127.0.0.1:{config.server.port}"}


@contextmanager
def connected(client: TestClient, *, hello: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[Socket]:
    """A socket that has said hello (unless `hello` is None... pass {} for a plain hello)."""
    with client.websocket_connect("/ws", **kwargs) as ws:
        socket = Socket(ws)
        if hello is not None:
            welcome = socket.request({"type": "hello", **hello})
            assert welcome["type"] == "welcome", welcome
            socket.welcome = welcome  # type: ignore[attr-defined]
        yield socket
