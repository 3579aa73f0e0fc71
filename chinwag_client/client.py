"""An asyncio client library for chinwag bots: one logical session over many sockets.

    async with ChinwagClient("ws://127.0.0.1:8000/ws", api_key=KEY) as client:
        ack = await client.send("Hello")
        async for event in client:
            if isinstance(event, ResumeLost):
                ...  # the server could not replay: `event.histories` is the reloaded state
            elif event["type"] == "delta":
                print(event["text"], end="")

What it promises (see `docs/bots.md`):

- Events (frames with `seq`) reach the application exactly once, in `seq` order, across
  reconnects: after a drop it resumes the session and the server replays what was missed.
- `send` returns the `ack`. A send that was not acknowledged when the socket dropped is sent
  again, with the same `client_msg_id`, on the next socket: the server stores it once.
  Every other request still waiting for its reply is sent again too (they are all safe to
  repeat: reads, `cancel`, `ping`).
- Reconnects use jittered exponential backoff and follow PROTOCOL.md's close-code table:
  never on 4004 / 4011 (`AuthenticationFailed`), without resuming on 1000 / 4003, with
  resume on everything else.
- When a resume is refused (`welcome.resumed == false`, e.g. the session expired or the
  server restarted) the client reloads every conversation it had open with `history`
  (which also re-subscribes to their turns) and yields one `ResumeLost` before any event
  of the new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

log = logging.getLogger("chinwag.client")

SUBPROTOCOL = "chinwag.v1"
NO_RECONNECT = frozenset({4004, 4011})
NO_RESUME = frozenset({1000, 4003})
BACK_OFF_FIRST = frozenset({1013, 4008})


class ChinwagError(Exception):
    """The server answered a request with an `error` frame."""

    def __init__(self, frame: dict[str, Any]):
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.code: str = frame.get("code", "internal")
        self.message: str = frame.get("message", "")
        self.details: Any = frame.get("details")
        self.retry_after: float | None = frame.get("retry_after")


class AuthenticationFailed(Exception):
    """Closed with 4004 (bad credentials) or 4011 (key revoked): reconnecting cannot help."""

    def __init__(self, code: int, reason: str = ""):
        super().__init__(f"closed with {code}: {reason}".rstrip(": "))
        self.code = code


class ClientClosed(Exception):
    """The client was closed while a request was waiting."""


@dataclass
class ResumeLost:
    """The server could not resume the session: events may have been missed.

    `histories` maps each conversation the client had open to its reloaded `history`
    reply (messages oldest first; an answer still being written has status "streaming",
    and its further events arrive as usual)."""

    histories: dict[str, dict[str, Any]] = field(default_factory=dict)
    reason: str = "resume refused"


@dataclass
class _Pending:
    frame: dict[str, Any]
    future: asyncio.Future[dict[str, Any]]


class ChinwagClient:
    """See the module docstring. Use `async with`, or `await connect()` and `close()`."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        name: str = "chinwag-client",
        version: str = "1",
        backoff_base_s: float = 0.2,
        backoff_max_s: float = 10.0,
        heartbeat_s: float | None = 20.0,
        open_timeout_s: float = 10.0,
        rng: random.Random | None = None,
    ):
        self.url = url
        self.api_key = api_key
        self.token = token
        self.client_info = {"name": name, "version": version}
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.heartbeat_s = heartbeat_s
        self.open_timeout_s = open_timeout_s
        self.rng = rng or random.Random()
        self.welcome: dict[str, Any] = {}
        self.session_id: str | None = None
        self.last_seq = 0
        self.open_conversations: set[str] = set()
        self.reconnects = 0
        self._resume_token: str | None = None
        self._refs = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._held: list[dict[str, Any]] | None = None  # events held while reloading state
        self._reload_due = False
        self._ws: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._first_welcome: asyncio.Future[dict[str, Any]] | None = None
        self._closing = False
        self._fatal: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> dict[str, Any]:
        """Connect and say hello; returns the first `welcome`. Raises `AuthenticationFailed`
        on 4004 / 4011; other failures are retried with backoff."""
        if self._runner is None:
            self._first_welcome = asyncio.get_running_loop().create_future()
            self._runner = asyncio.create_task(self._run(), name="chinwag-client")
        assert self._first_welcome is not None
        return await asyncio.shield(self._first_welcome)

    async def close(self) -> None:
        """Close the socket (1000) and stop reconnecting; waiting requests fail."""
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
        self._fail_all(ClientClosed("client closed"))
        self._events.put_nowait(_END)

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests --------------------------------------------------------------------------

    async def request(self, frame: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send `frame` (sent again after a reconnect until answered) and return its reply;
        an `error` reply raises `ChinwagError`."""
        if self._fatal is not None:
            raise self._fatal
        ref = f"c{next(self._refs)}"
        frame = {**frame, "ref": ref}
        pending = _Pending(frame, asyncio.get_running_loop().create_future())
        self._pending[ref] = pending
        await self._transmit(frame)
        try:
            reply = await asyncio.wait_for(asyncio.shield(pending.future), timeout)
        finally:
            self._pending.pop(ref, None)  # answered, timed out or abandoned: not resent
        if reply.get("type") == "error":
            raise ChinwagError(reply)
        return reply

    async def send(
        self, text: str, conversation_id: str | None = None, *, client_msg_id: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Store a message and start its turn; returns the `ack`. Without `conversation_id`
        the message opens a new conversation. Safe to call while disconnected."""
        frame: dict[str, Any] = {
            "type": "send", "client_msg_id": client_msg_id or uuid.uuid4().hex, "text": text,
            **fields,
        }
        if conversation_id is not None:
            frame["conversation_id"] = conversation_id
        ack = await self.request(frame)
        self.open_conversations.add(ack["conversation_id"])
        return ack

    async def cancel(self, turn_id: str) -> None:
        """Stop a running turn (an ended turn is fine)."""
        await self.request({"type": "cancel", "turn_id": turn_id})

    async def history(
        self, conversation_id: str, *, before: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """Messages of a conversation, oldest first; also subscribes to its turns."""
        frame: dict[str, Any] = {"type": "history", "conversation_id": conversation_id, "limit": limit}
        if before is not None:
            frame["before"] = before
        reply = await self.request(frame)
        self.open_conversations.add(conversation_id)
        return reply

    async def conversations(self, **fields: Any) -> dict[str, Any]:
        return await self.request({"type": "conversations", **fields})

    async def ping(self) -> None:
        await self.request({"type": "ping"})

    # -- events ----------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.events()

    async def events(self) -> AsyncIterator[Any]:
        """Event frames (dicts with `seq`) and `ResumeLost` markers, until `close()`.
        Raises `AuthenticationFailed` if the server refuses the credentials."""
        while True:
            item = await self._events.get()
            if item is _END:
                if self._fatal is not None and not isinstance(self._fatal, ClientClosed):
                    raise self._fatal
                return
            yield item

    # -- the connection loop ---------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._reconnecting()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the application waiting
            log.exception("client loop failed")
            self._stop(exc)

    async def _reconnecting(self) -> None:
        failures = 0
        while not self._closing:
            code = await self._one_connection()
            if code is None:  # could not even connect, or no welcome
                failures += 1
            elif code in NO_RECONNECT:
                self._stop(AuthenticationFailed(code, "authentication failed"))
                return
            else:
                failures = 1 if code in BACK_OFF_FIRST else 0
                if code in NO_RESUME:
                    self.session_id = None  # a new session; state is reloaded on welcome
            if self._closing:
                return
            self.reconnects += 1
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^failures)]; 0 failures is quick."""
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** failures))
        return self.rng.uniform(0, cap) if failures else self.rng.uniform(0, self.backoff_base_s / 4)

    async def _one_connection(self) -> int | None:
        """One socket from open to close; returns its close code (None: it never got going)."""
        try:
            ws = await websockets.connect(
                self.url,
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers=self._headers(),
                open_timeout=self.open_timeout_s,
                ping_interval=self.heartbeat_s,
                ping_timeout=self.heartbeat_s,
                max_size=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            return 4004 if status in (401, 403) else None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            log.debug("connect failed: %r", exc)
            return None
        self._ws = ws
        try:
            welcome = await self._hello(ws)
            if welcome is None:
                return None
            fresh_after_loss = self._adopt(welcome)
            recovery = asyncio.create_task(self._after_welcome(fresh_after_loss))
            try:
                await self._read(ws)
            finally:
                recovery.cancel()
        except ConnectionClosed:
            pass
        finally:
            self._ws = None
        return ws.close_code if ws.close_code is not None else 1006

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _hello(self, ws: Any) -> dict[str, Any] | None:
        hello: dict[str, Any] = {"type": "hello", "ref": "hello", "client": self.client_info}
        if self.token:
            hello["token"] = self.token
        if self.session_id and self._resume_token:
            hello["resume"] = {
                "session_id": self.session_id,
                "resume_token": self._resume_token,
                "last_seq": self.last_seq,
            }
        await ws.send(json.dumps(hello))
        try:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), self.open_timeout_s))
        except TimeoutError:
            await ws.close()
            return None
        if welcome.get("type") != "welcome":
            return None
        return welcome

    def _adopt(self, welcome: dict[str, Any]) -> bool:
        """Take the session on before reading any event of it. True when it is a new
        session replacing one the client had: state must be reloaded."""
        if not welcome["resumed"]:
            self.last_seq = 0  # a new session counts from 1
            if self.welcome:
                self._reload_due = True
                self._held = []  # its events wait until ResumeLost has been yielded
        self.welcome = welcome
        self.session_id = welcome["session_id"]
        self._resume_token = welcome["resume_token"]
        if self._first_welcome is not None and not self._first_welcome.done():
            self._first_welcome.set_result(welcome)
        # A reload cut short by a drop is done again on the resumed socket.
        return self._reload_due

    async def _after_welcome(self, fresh_after_loss: bool) -> None:
        """Send again whatever is still waiting for its reply; on a new session, reload
        the open conversations (which also re-subscribes to their turns)."""
        for pending in list(self._pending.values()):
            await self._transmit(pending.frame)
        if fresh_after_loss:
            await self._reload()

    async def _reload(self) -> None:
        histories: dict[str, dict[str, Any]] = {}
        for conversation_id in sorted(self.open_conversations):
            try:
                histories[conversation_id] = await self.history(conversation_id)
            except ChinwagError:  # deleted meanwhile: nothing to reload
                self.open_conversations.discard(conversation_id)
        held, self._held = self._held or [], None
        self._reload_due = False
        self._events.put_nowait(ResumeLost(histories))
        for event in held:
            self._events.put_nowait(event)

    async def _read(self, ws: Any) -> None:
        async for raw in ws:
            frame = json.loads(raw)
            if "seq" in frame:
                self._event(frame)
                continue
            pending = self._pending.pop(str(frame.get("ref")), None)
            if pending is not None and not pending.future.done():
                pending.future.set_result(frame)

    def _event(self, frame: dict[str, Any]) -> None:
        seq = frame["seq"]
        if seq <= self.last_seq:
            return  # already delivered (a replay overlapping what arrived before a drop)
        if seq != self.last_seq + 1:
            log.warning("event gap: expected seq %d, got %d", self.last_seq + 1, seq)
        self.last_seq = seq
        if self._held is not None:
            self._held.append(frame)
        else:
            self._events.put_nowait(frame)

    async def _transmit(self, frame: dict[str, Any]) -> None:
        """Send now if connected; otherwise the frame waits in `_pending` for the next socket."""
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(ConnectionClosed, OSError):
            await ws.send(json.dumps(frame))

    def _stop(self, error: BaseException) -> None:
        self._fatal = error
        self._closing = True
        if self._first_welcome is not None and not self._first_welcome.done():
            self._first_welcome.set_exception(error)
        self._fail_all(error)
        self._events.put_nowait(_END)

    def _fail_all(self, error: BaseException) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(error)
        self._pending.clear()


_END = object()
