"""Test-side helpers for the session suites: a raw-protocol client that resumes after cuts
and checks every event's `seq`, and readers of the server's database file.

`RawSession` deliberately speaks the wire protocol itself (over the `websockets` library)
instead of using `chinwag_client.client`, so that the server's guarantees are tested apart from
the client library's.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage

ECHO_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu"]

_refs = itertools.count(1)


class Cut(Exception):
    """The connection dropped (reset, closed, or never got through)."""


class SeqError(AssertionError):
    """An event arrived out of order: a gap or a duplicate."""


def echo_text(rng: Any, words: int) -> str:
    """A text for the echo model: `words` words, so the answer takes `words` deltas."""
    return " ".join(rng.choice(ECHO_WORDS) for _ in range(words))


class RawSession:
    """One logical client session over many sockets: resumes after every cut.

    `pump()` returns the next frame and checks that events come with `seq` exactly one
    above the last one seen; deltas are assembled per turn in `texts`.
    """

    def __init__(
        self, url: str, *, hello: dict[str, Any] | None = None, rcvbuf: int | None = None
    ):
        self.url = url
        self.hello = hello or {}
        # A tiny TCP receive window: the server's sends block after a few KiB unread.
        self.rcvbuf = rcvbuf
        self.close_code: int | None = None  # the close code of the last socket, if any
        self.connection: Any = None
        self.session_id: str | None = None
        self.resume_token: str | None = None
        self.last_seq = 0
        self.texts: dict[str, list[str]] = defaultdict(list)
        self.completed: dict[str, dict[str, Any]] = {}
        self.started: dict[str, dict[str, Any]] = {}
        self.welcomes: list[dict[str, Any]] = []
        self.resumes = 0

    # -- connecting --------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Open a socket and say hello, resuming when a session is known."""
        hello: dict[str, Any] = {"type": "hello", "ref": "hello", **self.hello}
        if self.session_id is not None:
            hello["resume"] = {
                "session_id": self.session_id,
                "resume_token": self.resume_token,
                "last_seq": self.last_seq,
            }
        try:
            self.connection = await asyncio.wait_for(self._open(), 5)
            await self.connection.send(json.dumps(hello))
            welcome = json.loads(await asyncio.wait_for(self.connection.recv(), 5))
        except (OSError, ConnectionClosed, InvalidHandshake, InvalidMessage, TimeoutError) as exc:
            await self.abort()
            raise Cut(repr(exc)) from None
        assert welcome["type"] == "welcome", welcome
        if "resume" in hello:
            assert welcome["resumed"], f"resume refused: {welcome}"
            assert welcome["session_id"] == self.session_id
            self.resumes += 1
        self.session_id = welcome["session_id"]
        self.resume_token = welcome["resume_token"]
        self.welcomes.append(welcome)
        return welcome

    async def _open(self) -> Any:
        options: dict[str, Any] = {"subprotocols": ["chinwag.v1"], "open_timeout": 5}
        if self.rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.setblocking(False)
            host, port = self.url.removeprefix("ws://").split("/")[0].split(":")
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            # max_queue=1: the library itself buffers no more than one unread frame.
            options.update(sock=sock, max_queue=1)
        return await websockets.connect(self.url, **options)

    async def reconnect(self, attempts: int = 50) -> dict[str, Any]:
        """Resume, retrying while cuts keep landing on the handshake (bounded)."""
        await self.abort()
        for _ in range(attempts):
            try:
                return await self.connect()
            except Cut:
                await asyncio.sleep(0.01)
        raise AssertionError("could not reconnect")

    async def abort(self) -> None:
        if self.connection is not None:
            self.connection.transport.abort()
            self.connection = None

    @property
    def local_port(self) -> int:
        return self.connection.local_address[1]

    # -- frames ------------------------------------------------------------------------

    async def send(self, frame: dict[str, Any]) -> None:
        if self.connection is None:
            raise Cut("not connected")
        try:
            await self.connection.send(json.dumps(frame))
        except (ConnectionClosed, OSError) as exc:
            raise Cut(repr(exc)) from None

    async def pump(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next frame; events are checked for order and assembled."""
        if self.connection is None:
            raise Cut("not connected")
        try:
            raw = await asyncio.wait_for(self.connection.recv(), timeout)
        except ConnectionClosed as exc:
            self.close_code = exc.rcvd.code if exc.rcvd else None
            raise Cut(repr(exc)) from None
        except TimeoutError:  # an OSError too, but not a cut: the server said nothing
            raise
        except OSError as exc:
            raise Cut(repr(exc)) from None
        frame = json.loads(raw)
        if "seq" in frame:
            self._event(frame)
        return frame

    def _event(self, frame: dict[str, Any]) -> None:
        if frame["seq"] != self.last_seq + 1:
            raise SeqError(f"expected seq {self.last_seq + 1}, got {frame}")
        self.last_seq = frame["seq"]
        kind = frame["type"]
        if kind == "delta":
            self.texts[frame["turn_id"]].append(frame["text"])
        elif kind == "turn.started":
            self.started[frame["turn_id"]] = frame
        elif kind == "turn.completed":
            self.completed[frame["turn_id"]] = frame

    async def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send and wait for the reply with the same ref (no cut handling)."""
        ref = f"q{next(_refs)}"
        await self.send({**frame, "ref": ref})
        while True:
            reply = await self.pump(timeout)
            if reply.get("ref") == ref:
                return reply

    async def chat(
        self, text: str, client_msg_id: str, *, conversation_id: str | None = None,
        on_sent: Any = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Send until acknowledged (resending the same `client_msg_id` after each cut) and
        read until that turn completes, resuming after every cut. Returns (ack, completed)."""
        ack: dict[str, Any] | None = None
        frame = {"type": "send", "client_msg_id": client_msg_id, "text": text, "ref": client_msg_id}
        if conversation_id is not None:
            frame["conversation_id"] = conversation_id
        for _ in range(1000):  # bounded: each pass is one socket
            try:
                if ack is None:
                    await self.send(frame)
                    if on_sent is not None:
                        on_sent(self)
                while True:
                    if ack is not None and ack["turn_id"] in self.completed:
                        return ack, self.completed[ack["turn_id"]]
                    reply = await self.pump()
                    if reply.get("ref") == client_msg_id:
                        assert reply["type"] == "ack", reply
                        ack = reply
            except Cut:
                await self.reconnect()
        raise AssertionError("chat did not finish")


# ----------------------------------------------------------------------------- the database


def read_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    return conn


def messages(path: Path) -> list[sqlite3.Row]:
    with read_db(path) as conn:
        return conn.execute("SELECT * FROM messages ORDER BY seq").fetchall()


def integrity(path: Path) -> str:
    with read_db(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def stored_text(path: Path, message_id: str) -> tuple[str, str]:
    """(text, status) of one message."""
    with read_db(path) as conn:
        row = conn.execute("SELECT text, status FROM messages WHERE id = ?", (message_id,)).fetchone()
    assert row is not None, f"message {message_id} not stored"
    return row["text"], row["status"]
