"""A small protocol-aware test client over the `websockets` library (not our own client
library, so that tests of the server do not depend on it)."""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any, Self

import websockets

from tests.support.schema import check_client_frame, check_server_frame

_ids = itertools.count(1)


class WsClient:
    def __init__(self, connection: Any):
        self.connection = connection
        self.seen: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str, *, hello: dict[str, Any] | None = None, **kwargs: Any) -> WsClient:
        kwargs.setdefault("subprotocols", ["chinwag.v1"])
        connection = await websockets.connect(url, **kwargs)
        client = cls(connection)
        if hello is not None:
            client.welcome = await client.request({"type": "hello", **hello})
        return client

    async def send(self, frame: dict[str, Any] | str) -> None:
        """Send a frame; dicts are checked against `chinwag schema` first (a raw string is
        how a test sends something deliberately malformed)."""
        if isinstance(frame, dict):
            check_client_frame(frame)
        await self.connection.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.connection.recv(), timeout))
        check_server_frame(frame)
        self.seen.append(frame)
        return frame

    async def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a frame and return its reply (a frame with the same ref, or welcome/error)."""
        ref = frame.get("ref") or f"r{next(_ids)}"
        await self.send({**frame, "ref": ref})
        while True:
            reply = await self.recv(timeout)
            if reply.get("ref") == ref:
                return reply

    async def until(self, frame_type: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == frame_type and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def chat(self, text: str, **fields: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Send a message; return its ack and every event of its turn through turn.completed."""
        ack = await self.request({"type": "send", "client_msg_id": f"cm{next(_ids)}", "text": text, **fields})
        assert ack["type"] == "ack", ack
        events = []
        while True:
            frame = await self.recv()
            if frame.get("turn_id") == ack["turn_id"] and "seq" in frame:
                events.append(frame)
                if frame["type"] == "turn.completed":
                    return ack, events

    async def close(self) -> None:
        await self.connection.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
