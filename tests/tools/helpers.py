"""In-process app and socket helpers for the tool tests (Starlette's TestClient, no mocks)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.datastructures import Headers
from starlette.testclient import TestClient

from server.app import create_app
from server.auth.identity import Authenticator
from server.config.settings import Config, load_config
from server.errors import Unauthorized
from server.store.base import UserRecord
from tests.support.inproc import own_host
from tests.support.scripted import ScriptedProvider

PLUGINS = Path(__file__).resolve().parent / "plugins"
_refs = itertools.count(1)


def make_config(tmp_path: Path, *settings: str, probes: bool = True) -> Config:
    overrides = [
        f'store.path="{tmp_path / "chinwag.db"}"',
        'models.fake.provider="echo"',
        'routing.default="fake"',
        "routing.max_retries=0",
        "tools.timeout_s=5",
        "tools.approval_timeout_s=10",
    ]
    if probes:
        overrides.append(f'tools.folders=["{PLUGINS}"]')
    return load_config(environ={}, overrides=[*overrides, *settings])


class TokenAuthenticator(Authenticator):
    """Users by `hello.token`: lets one test put two users on one server."""

    def __init__(self, users: dict[str, UserRecord]):
        super().__init__(required=True)
        self.users = users

    async def authenticate(self, headers: Headers, token: str | None) -> UserRecord:
        if token in self.users:
            return self.users[token]
        raise Unauthorized("unknown token")


ALICE = UserRecord(id="alice", name="Alice", role="user")
BOB = UserRecord(id="bob", name="Bob", role="user")
TWO_USERS = {"alice": ALICE, "bob": BOB}


class Conn:
    """One socket: replies matched by `ref`; events received meanwhile are kept in order."""

    def __init__(self, ws: Any):
        self.ws = ws
        self.buffer: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}

    def _next(self) -> dict[str, Any]:
        return self.ws.receive_json()

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        ref = f"r{next(_refs)}"
        self.ws.send_json({**frame, "ref": ref})
        while True:
            reply = self._next()
            if reply.get("ref") == ref:
                return reply
            self.buffer.append(reply)

    def until(self, frame_type: str, limit: int = 500, **match: Any) -> dict[str, Any]:
        """The next frame of this type (and fields), buffered ones first; others are kept."""
        for index, frame in enumerate(self.buffer):
            if _matches(frame, frame_type, match):
                return self.buffer.pop(index)
        for _ in range(limit):
            frame = self._next()
            if _matches(frame, frame_type, match):
                return frame
            self.buffer.append(frame)
        raise AssertionError(f"no {frame_type} {match} in {limit} frames")

    def send(self, text: str, **fields: Any) -> dict[str, Any]:
        ack = self.request({"type": "send", "client_msg_id": f"cm{next(_refs)}", "text": text, **fields})
        assert ack["type"] == "ack", ack
        return ack

    def turn(self, ack: dict[str, Any], limit: int = 500) -> list[dict[str, Any]]:
        """Every event of the ack's turn, through its `turn.completed`."""
        def ours(frame: dict[str, Any]) -> bool:
            return frame.get("turn_id") == ack["turn_id"] and "seq" in frame

        events = [f for f in self.buffer if ours(f)]
        self.buffer = [f for f in self.buffer if not ours(f)]
        for _ in range(limit):
            if events and events[-1]["type"] == "turn.completed":
                return events
            frame = self._next()
            if ours(frame):
                events.append(frame)
            else:
                self.buffer.append(frame)
        raise AssertionError(f"turn {ack['turn_id']} did not complete in {limit} frames")

    def chat(self, text: str, **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        ack = self.send(text, **fields)
        return ack, self.turn(ack)

    def history(self, conversation_id: str) -> list[dict[str, Any]]:
        reply = self.request({"type": "history", "conversation_id": conversation_id})
        assert reply["type"] == "history", reply
        return reply["messages"]

    def tool(self, name: str, args: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        return self.request({"type": "tool", "name": name, "args": args or {}, **fields})


def _matches(frame: dict[str, Any], frame_type: str, match: dict[str, Any]) -> bool:
    return frame.get("type") == frame_type and all(frame.get(k) == v for k, v in match.items())


@contextlib.contextmanager
def running(
    config: Config,
    provider: ScriptedProvider | None = None,
    authenticator: Authenticator | None = None,
) -> Iterator[TestClient]:
    app = create_app(config, providers={"echo": provider or ScriptedProvider()}, authenticator=authenticator)
    with TestClient(app, headers=own_host(config)) as client:
        yield client


@contextlib.contextmanager
def connect(client: TestClient, token: str | None = None) -> Iterator[Conn]:
    with client.websocket_connect("/ws", subprotocols=["chinwag.v1"]) as ws:
        conn = Conn(ws)
        hello: dict[str, Any] = {"type": "hello"}
        if token is not None:
            hello["token"] = token
        conn.welcome = conn.request(hello)
        assert conn.welcome["type"] == "welcome", conn.welcome
        yield conn


def by_type(events: list[dict[str, Any]], frame_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == frame_type]
