"""Sessions whose event logs live in Redis, so a client resumes on whichever node it reaches.

A session's seq counter and replay log are in Redis (`scripts`); this process holds a
`RemoteSession` only while one of its sockets is attached. Events reach it on the node's
channel, each with its seq; one that arrives out of turn (after a gap, or while the replay
is being sent) makes the session read its log from Redis instead, so every event after
`last_seq` is delivered exactly once and in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterable, Iterator, MutableSet
from typing import Any

import structlog
from redis.commands.core import AsyncScript

from server import protocol
from server.bus.redis.link import Link, now_ms
from server.errors import Unavailable
from server.protocol import CloseCode
from server.sessions.session import Outlet, SessionHandle, stamp
from server.store.base import UserRecord

log = structlog.get_logger("chinwag.bus")

# What `open` makes: "s_" and 16 URL-safe characters.
SESSION_ID = re.compile(r"s_[A-Za-z0-9_-]{16}")
# Log entries read per request when catching up.
CATCH_UP_PAGE = 512


def token_hash(token: str) -> str:
    """What Redis keeps of a resume token: enough to check one, nothing to present."""
    return hashlib.sha256(token.encode()).hexdigest()


def entry_seq(entry_id: Any) -> int:
    """The seq of a log entry (its id is `0-SEQ`)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.rsplit("-", 1)[1])


def entry_body(fields: Any) -> bytes:
    """The body of a log entry: from XRANGE a dict, from a script's reply [field, value]."""
    body = fields[b"b"] if isinstance(fields, dict) else fields[1]
    return bytes(body)


class OpenConversations(MutableSet[str]):
    """The conversations a session hears turns of, kept in Redis (the publisher on any node
    filters by them); the local copy only answers `in` for this socket's own additions."""

    def __init__(self, link: Link, session_id: str):
        self._link = link
        self._session_id = session_id
        self._local: set[str] = set()

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._local

    def __iter__(self) -> Iterator[str]:
        return iter(self._local)

    def __len__(self) -> int:
        return len(self._local)

    def add(self, conversation_id: str) -> None:
        self._local.add(conversation_id)
        self._write(conversation_id, "1")

    def discard(self, conversation_id: str) -> None:
        self._local.discard(conversation_id)
        self._write(conversation_id, "0")

    def _write(self, conversation_id: str, opened: str) -> None:
        link = self._link
        link.writer.send(
            link.scripts.open, [link.prefix, self._session_id, conversation_id, opened]
        )


class RemoteSession:
    """This node's side of a session held in Redis: one attachment (epoch) of it."""

    def __init__(
        self, link: Link, *, session_id: str, resume_token: str, user: UserRecord,
        seq: int, epoch: int, replay: list[tuple[int, bytes]],
    ):
        self._link = link
        self._id = session_id
        self._resume_token = resume_token
        self._user = user
        self._seq = seq  # the newest seq when attached: `welcome.last_seq`
        self.epoch = epoch
        self.key_id: str | None = None
        self.login_id: str | None = None
        self._outlet: Outlet | None = None
        self._open = OpenConversations(link, session_id)
        self._replay = replay
        self._early: list[tuple[int, bytes]] = []  # arrived before the socket was attached
        self.delivered = 0  # the highest seq handed to the socket
        self._catching_up: asyncio.Task[None] | None = None
        self._more = False  # an event arrived while the log was being read: read again
        self.closed = False

    @property
    def id(self) -> str:
        return self._id

    @property
    def resume_token(self) -> str:
        return self._resume_token

    @property
    def user(self) -> UserRecord:
        return self._user

    @property
    def seq(self) -> int:
        return max(self._seq, self.delivered)

    @property
    def outlet(self) -> Outlet | None:
        return self._outlet

    @property
    def open_conversations(self) -> MutableSet[str]:
        return self._open

    def attach(self, outlet: Outlet, welcome: bytes) -> int:
        """Welcome, the replay, then what arrived meanwhile; returns how many replayed."""
        outlet.deliver(welcome)
        replayed = 0
        for seq, body in self._replay:
            outlet.deliver(stamp(seq, body), seq=seq, replay=True)
            replayed += 1
        self.delivered = self._replay[-1][0] if self._replay else self._seq
        self._replay = []
        self._outlet = outlet
        early, self._early = self._early, []
        for seq, body in early:
            self.receive(seq, body)
        return replayed

    def receive(self, seq: int, body: bytes) -> None:
        """An event from the node's channel."""
        if self.closed:
            return
        if self._outlet is None:
            self._early.append((seq, body))
            return
        if seq <= self.delivered:
            return  # in the replay already, or a resent batch
        if self._catching_up is not None:
            self._more = True  # the read in flight may have missed it
            return
        if seq == self.delivered + 1:
            self._outlet.deliver(stamp(seq, body), seq=seq)
            self.delivered = seq
            return
        self.catch_up()

    def catch_up(self) -> None:
        """Read the log from Redis past `delivered` (once at a time): after a gap, or after
        the node's channel reconnected and may have missed events."""
        if self._catching_up is None and not self.closed and self._outlet is not None:
            self._catching_up = asyncio.create_task(self._read_log(), name=f"catch up {self._id}")

    async def _read_log(self) -> None:
        client, log_key = self._link.client, self._link.keys.log(self._id)
        try:
            while self._outlet is not None and not self.closed:
                self._more = False
                entries: Any = await client.xrange(
                    log_key, min=f"0-{self.delivered + 1}", max="+", count=CATCH_UP_PAGE
                )
                if not entries:
                    if self._more:
                        continue
                    return
                if entry_seq(entries[0][0]) > self.delivered + 1:
                    # The log was trimmed past what this socket got: it fell too far behind.
                    log.info("session_fell_behind", session_id=self._id, delivered=self.delivered)
                    self._outlet.close(CloseCode.SLOW_CONSUMER, "fell behind the event log")
                    return
                for entry_id, fields in entries:
                    seq = entry_seq(entry_id)
                    if seq == self.delivered + 1:
                        self._outlet.deliver(stamp(seq, entry_body(fields)), seq=seq)
                        self.delivered = seq
        except Exception:
            log.exception("session_catch_up_failed", session_id=self._id)
            if self._outlet is not None:
                self._outlet.close(CloseCode.INTERNAL, "event log unavailable")
        finally:
            self._catching_up = None

    def detach(self, outlet: Outlet) -> bool:
        if self._outlet is not outlet:
            return False
        self._outlet = None
        self.closed = True
        if self._catching_up is not None:
            self._catching_up.cancel()
        return True


class RedisSessions:
    """The `SessionDirectory` of a deployment on Redis. `sessions` holds this node's
    attachments; detached sessions exist only in Redis, for `session.ttl_s`."""

    def __init__(self, link: Link):
        self._link = link
        self._sessions: dict[str, RemoteSession] = {}
        # Events for sessions being opened or resumed here: the script makes this node the
        # session's node before its reply is back, so events may arrive before the session.
        self._arriving: dict[str, list[tuple[int, bytes]]] = {}

    @property
    def sessions(self) -> dict[str, RemoteSession]:
        return self._sessions

    async def open(self, user: UserRecord) -> RemoteSession:
        link = self._link
        session_id = "s_" + secrets.token_urlsafe(12)
        token = secrets.token_urlsafe(24)
        with self._catching(session_id) as arrived:
            evicted = await self._call(link.scripts.create, [
                link.prefix, session_id, user.id, token_hash(token), link.node,
                link.config.session.max_per_user,
            ])
        if evicted:
            log.info("sessions_evicted", user_id=user.id, count=evicted)
        return self._hold(RemoteSession(
            link, session_id=session_id, resume_token=token, user=user, seq=0, epoch=1, replay=[]
        ), arrived)

    async def resume(self, user: UserRecord, resume: protocol.ResumeInfo) -> RemoteSession | None:
        if not SESSION_ID.fullmatch(resume.session_id):
            return None  # not one we made: and a client's text never becomes a key name
        link = self._link
        with self._catching(resume.session_id) as arrived:
            reply = await self._call(link.scripts.resume, [
                link.prefix, resume.session_id, user.id, token_hash(resume.resume_token),
                resume.last_seq, link.node,
            ])
        if not reply:
            return None
        seq, epoch, entries = int(reply[0]), int(reply[1]), reply[2]
        earlier = self._sessions.get(resume.session_id)
        if earlier is not None and earlier.outlet is not None:
            earlier.outlet.takeover()  # a socket of this node had it: Redis told no one
        replay = [(entry_seq(entry_id), entry_body(fields)) for entry_id, fields in entries]
        return self._hold(RemoteSession(
            link, session_id=resume.session_id, resume_token=resume.resume_token, user=user,
            seq=seq, epoch=epoch, replay=replay,
        ), arrived)

    async def attach(
        self, session: SessionHandle, outlet: Outlet, welcome: bytes, *, last_seq: int | None
    ) -> int:
        assert isinstance(session, RemoteSession)
        return session.attach(outlet, welcome)

    def detach(self, session: SessionHandle, outlet: Outlet) -> None:
        if not isinstance(session, RemoteSession) or not session.detach(outlet):
            return
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        link = self._link
        link.writer.send(link.scripts.detach, [
            link.prefix, session.id, link.node, session.epoch, link.ttl_ms(), now_ms()
        ])

    def drop(self, session: SessionHandle) -> None:
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        if isinstance(session, RemoteSession):
            session.closed = True
        link = self._link
        link.writer.send(link.scripts.drop, [link.prefix, session.id])

    def of_user(self, user_id: str) -> Iterable[RemoteSession]:
        return [s for s in self._sessions.values() if s.user.id == user_id]

    def expire(self) -> list[RemoteSession]:
        return []  # Redis expires detached sessions itself (their keys have the TTL)

    def attached_count(self) -> int:
        return sum(1 for s in self._sessions.values() if s.outlet is not None)

    # -- from the node's channel ------------------------------------------------------------

    def deliver(self, session_id: str, seq: int, body: bytes) -> None:
        arriving = self._arriving.get(session_id)
        if arriving is not None:
            arriving.append((seq, body))  # the session it is for is being attached here
            return
        session = self._sessions.get(session_id)
        if session is not None:
            session.receive(seq, body)

    def taken_over(self, session_id: str, epoch: int) -> None:
        """Another node resumed the session: close this node's socket of it with 1000."""
        session = self._sessions.get(session_id)
        if session is not None and session.epoch == epoch:
            del self._sessions[session_id]
            session.closed = True
            if session.outlet is not None:
                session.outlet.takeover()

    def close_all(self, code: int, reason: str) -> None:
        """Close every socket of this node's sessions (their clients resume anywhere)."""
        for session in list(self._sessions.values()):
            if session.outlet is not None:
                session.outlet.close(code, reason)

    def catch_up(self) -> None:
        """The channel was away: read every attached session's log for what it missed."""
        for session in list(self._sessions.values()):
            session.catch_up()

    @contextlib.contextmanager
    def _catching(self, session_id: str) -> Iterator[list[tuple[int, bytes]]]:
        """Keep the events that arrive for `session_id` while its script runs."""
        arrived: list[tuple[int, bytes]] = []
        self._arriving[session_id] = arrived
        try:
            yield arrived
        finally:
            if self._arriving.get(session_id) is arrived:
                del self._arriving[session_id]

    def _hold(self, session: RemoteSession, arrived: list[tuple[int, bytes]]) -> RemoteSession:
        self._sessions[session.id] = session
        for seq, body in arrived:
            session.receive(seq, body)  # not attached yet: kept for after the replay
        return session

    async def _call(self, script: AsyncScript, args: list[str | int | bytes]) -> Any:
        try:
            return await self._link.writer.call(script, args)
        except Unavailable:
            raise
        except Exception as exc:
            raise Unavailable(f"the session bus failed: {exc}") from exc
