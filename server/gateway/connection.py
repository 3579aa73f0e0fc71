"""The WebSocket endpoint: handshake, `hello`, frame limits, decoding, errors, close codes.

A frame's way in: size check, rate window, decode (one decoder, in `protocol`), then the
`FrameHandler`. Everything a client can get wrong becomes one `error` frame here, or a
close code from PROTOCOL.md's table; nothing a client sends can end the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from server import __version__, protocol
from server.errors import BadRequest, ChinwagError, Unauthorized, Unavailable
from server.gateway.dispatch import FrameHandler
from server.gateway.frame_windows import SlidingWindow
from server.gateway.outbound import Outbound
from server.gateway.parts import GatewayParts
from server.protocol import CloseCode
from server.sessions.session import SessionHandle

log = structlog.get_logger("chinwag.gateway")


class CloseConnection(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason


def websocket_endpoint(parts: GatewayParts) -> Callable[[WebSocket], Awaitable[None]]:
    """The `/ws` endpoint, bound to what it uses."""

    async def endpoint(websocket: WebSocket) -> None:
        await _serve_socket(parts, websocket)

    return endpoint


async def _serve_socket(parts: GatewayParts, websocket: WebSocket) -> None:
    origin = websocket.headers.get("origin")
    if origin is not None and origin not in parts.allowed_origins():
        log.info("handshake_refused", reason="origin", origin=origin)
        await websocket.close(code=1008)  # before accept: the server answers HTTP 403
        return
    host = websocket.headers.get("host")
    if host is not None and not parts.host_allowed(host):
        log.info("handshake_refused", reason="host", host=host)  # DNS rebinding: see http.security
        await websocket.close(code=1008)
        return
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=protocol.SUBPROTOCOL if protocol.SUBPROTOCOL in offered else None)
    connection = Connection(parts, websocket)
    with structlog.contextvars.bound_contextvars(connection_id=connection.id), \
            parts.metrics.sockets_open.track_inprogress():
        await connection.serve()


class Connection:
    """One socket, from accept to close."""

    def __init__(self, parts: GatewayParts, websocket: WebSocket):
        self.id = "w_" + secrets.token_urlsafe(6)
        self.parts = parts
        self.websocket = websocket
        limits = parts.config.limits
        # A peer that takes no frame for two heartbeats would also have failed the heartbeat.
        self.outbound = Outbound(
            websocket.send_text,
            limit=limits.outbound_queue,
            stall_s=2 * parts.config.session.heartbeat_s,
        )
        self.frames = SlidingWindow(limits.frames_per_window, limits.frame_window_s)
        # By bytes as well: a frame can be cheap to send and costly to check (brackets).
        self.frame_bytes = SlidingWindow(limits.frame_bytes_per_window, limits.frame_window_s)
        self.bad_frames = SlidingWindow(limits.bad_frames_per_window, limits.bad_frame_window_s)
        self.session: SessionHandle | None = None
        self.handler: FrameHandler | None = None
        self.outbound.on_close = self._detach

    async def serve(self) -> None:
        writer = asyncio.create_task(self.outbound.run(self._close_socket))
        reader = asyncio.create_task(self._read_loop())
        try:
            # The writer ends when the outbound queue asks to close (4009, takeover, ...).
            await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
            if not writer.done():
                # The reader ended: the client left, or broke a rule and its close code is
                # queued. Let the writer put the close on the wire (bounded by its stall_s).
                self.outbound.close(CloseCode.NORMAL)
                await asyncio.wait({writer})
        finally:
            # First, before any await: a cancelled connection still counts its close.
            self.parts.metrics.socket_closes.labels(str(self.outbound.close_code or "none")).inc()
            reader.cancel()
            self._detach()
            writer.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            if self.outbound.stuck:
                self._abort()
            self.parts.sessions.expire()
            log.info(
                "socket_closed",
                session_id=self.session.id if self.session else None,
                code=self.outbound.close_code,
                aborted=self.outbound.stuck,
                attached_sessions=self.parts.sessions.attached_count(),
            )

    def _detach(self) -> None:
        """The socket is closing or gone: its session's events wait in the replay buffer."""
        if self.session is not None:
            self.parts.sessions.detach(self.session, self.outbound)

    def _abort(self) -> None:
        """Drop a connection whose peer stopped reading: an ASGI close would wait behind
        the unread bytes forever. The server, when it offers a way (see `serving`), resets it."""
        abort = getattr(self.websocket.app.state, "abort_connection", None)
        client = self.websocket.scope.get("client")
        if abort is not None and client is not None:
            abort(tuple(client))

    async def _read_loop(self) -> None:
        try:
            await self._await_hello()
            while True:
                raw = await self._receive()
                await self._process(raw)
        except CloseConnection as close:
            log.info("connection_closed", code=close.code, reason=close.reason)
            self.outbound.close(close.code, close.reason)
        except WebSocketDisconnect:
            pass
        except Exception:
            # A bug, not the client's fault: say so with 1011 (it may resume), never 1000.
            log.exception("connection_failed")
            self.outbound.close(CloseCode.INTERNAL, "internal error")

    async def _receive(self) -> str | bytes:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", CloseCode.NORMAL))
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        if len(raw) > self.parts.config.limits.max_frame_bytes:
            raise CloseConnection(CloseCode.TOO_BIG, "frame too big")
        if not self.frames.hit():
            self.parts.metrics.rate_limited.labels("frames").inc()
            raise CloseConnection(CloseCode.RATE_LIMITED, "too many frames")
        size = len(raw) if isinstance(raw, bytes) or raw.isascii() else len(raw.encode())
        if not self.frame_bytes.hit(size):
            self.parts.metrics.rate_limited.labels("frames").inc()  # by count or by bytes
            raise CloseConnection(CloseCode.RATE_LIMITED, "too many frame bytes")
        return raw

    async def _await_hello(self) -> None:
        timeout = self.parts.config.session.hello_timeout_s
        try:
            raw = await asyncio.wait_for(self._receive(), timeout)
        except TimeoutError:
            raise CloseConnection(CloseCode.NO_HELLO, "no hello in time") from None
        try:
            frame = protocol.decode_client_frame(raw)
        except ChinwagError as exc:
            self._send_error(exc, protocol.peek_ref(raw))
            raise CloseConnection(CloseCode.NO_HELLO, "the first frame must be hello") from None
        if not isinstance(frame, protocol.Hello):
            raise CloseConnection(CloseCode.NO_HELLO, "the first frame must be hello")
        await self._welcome(frame)

    async def _welcome(self, hello: protocol.Hello) -> None:
        parts = self.parts
        try:
            identity = await parts.authenticator.identify(self.websocket.headers, hello.token)
        except Unauthorized as exc:
            log.info("auth_failed", reason=exc.message)
            raise CloseConnection(CloseCode.AUTH_FAILED, exc.message) from None
        user = identity.user
        await parts.store.ensure_user(user)
        try:
            session = await parts.sessions.resume(user, hello.resume) if hello.resume else None
            resumed = session is not None
            if session is None:
                session = await parts.sessions.open(user)
        except Unavailable as exc:
            # The session bus is away: nothing to resume into yet; the client backs off.
            log.warning("session_unavailable", error=exc.message)
            raise CloseConnection(CloseCode.OVERLOADED, "sessions unavailable, try again later") from None
        session.key_id, session.login_id = identity.key_id, identity.login_id
        self.session = session
        self.handler = FrameHandler(parts, session)
        structlog.contextvars.bind_contextvars(session_id=session.id, user_id=user.id)
        welcome = self._welcome_frame(session, resumed, hello.ref)
        last_seq = hello.resume.last_seq if resumed and hello.resume else None
        replayed = await parts.sessions.attach(
            session, self.outbound, protocol.encode(welcome), last_seq=last_seq
        )
        self.parts.metrics.replayed_events.inc(replayed)
        log.info("session_resumed" if resumed else "session_started", last_seq=session.seq, replayed=replayed)

    def _welcome_frame(self, session: SessionHandle, resumed: bool, ref: protocol.Ref) -> protocol.Welcome:
        parts = self.parts
        config = parts.config
        return protocol.Welcome(
            ref=ref,
            session_id=session.id,
            resume_token=session.resume_token,
            resumed=resumed,
            last_seq=session.seq,
            heartbeat_s=config.session.heartbeat_s,
            user=protocol.UserInfo(id=session.user.id, name=session.user.name, role=session.user.role),
            server=protocol.ServerInfo(name=config.server.name, version=__version__),
            models=parts.selector.model_names(),
            templates=parts.prompts.names(),
            tools=parts.tools.describe_for(session.user.role),
            limits={
                "max_frame_bytes": config.limits.max_frame_bytes,
                "frames_per_window": config.limits.frames_per_window,
                "frame_window_s": config.limits.frame_window_s,
                "frame_bytes_per_window": config.limits.frame_bytes_per_window,
                "max_text_chars": config.limits.max_text_chars,
                "history_limit_max": 200,
                "session_ttl_s": config.session.ttl_s,
            },
        )

    async def _process(self, raw: str | bytes) -> None:
        assert self.handler is not None
        ref: protocol.Ref = None
        try:
            if isinstance(raw, bytes):
                raise BadRequest("binary frames are not accepted; send JSON as text frames")
            frame = protocol.decode_client_frame(raw)
            ref = frame.ref
            if isinstance(frame, (protocol.Send, protocol.Regenerate)):
                # Shielded: a socket that dies while the message commits must not stop its
                # turn from starting (a resent send would find it stored and start nothing).
                await asyncio.shield(self._accept_send(frame))
                return
            reply = await self.handler.handle(frame)
        except ChinwagError as exc:
            if ref is None and isinstance(raw, str):
                ref = protocol.peek_ref(raw)
            self._send_error(exc, ref)
            if exc.code in ("bad_request", "unknown_type", "too_large") and not self.bad_frames.hit():
                raise CloseConnection(CloseCode.BAD_FRAMES, "too many bad frames") from None
            return
        except Exception:
            log.exception("frame_failed")
            self._send_error(ChinwagError("internal error"), ref)
            return
        reply.ref = ref
        self.outbound.deliver(protocol.encode(reply))

    def _accept_send(self, frame: protocol.Send | protocol.Regenerate) -> asyncio.Task[None]:
        """Store the message (or empty the answer to regenerate), queue the reply, start
        the turn: all of it, or none of it."""
        assert self.handler is not None
        handler = self.handler

        async def accept() -> None:
            ack = await handler.handle(frame)
            ack.ref = frame.ref
            self.outbound.deliver(protocol.encode(ack))  # the ack precedes every turn event
            if isinstance(ack, protocol.Regenerated):
                handler.start_regeneration(ack)
            elif isinstance(ack, protocol.Ack) and isinstance(frame, protocol.Send):
                log.info(
                    "message_accepted", conversation_id=ack.conversation_id,
                    message_id=ack.message_id, turn_id=ack.turn_id, text=frame.text,
                )  # the text shows only with `log.content = true` (see observability)
                handler.start_turn(frame, ack)

        task = asyncio.create_task(accept())
        # If the connection is gone, nobody awaits the task: keep its failure out of the logs' way.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task

    def _send_error(self, exc: ChinwagError, ref: protocol.Ref) -> None:
        error = protocol.Error(
            code=exc.code, message=exc.message, ref=ref, details=exc.details, retry_after=exc.retry_after
        )
        self.outbound.deliver(protocol.encode(error))

    async def _close_socket(self, code: int, reason: str) -> None:
        # The peer may be gone already: then there is nothing left to close.
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            await self.websocket.close(code=code, reason=reason)

