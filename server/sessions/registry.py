"""Every live session of this process, by id and by user: create, resume, expire, drop.

The in-process `SessionDirectory` (`server.bus.base`): a deployment of one process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import structlog

from server import protocol
from server.sessions.session import Outlet, Session, SessionHandle
from server.store.base import UserRecord

if TYPE_CHECKING:
    from server.config.settings import SessionSettings

log = structlog.get_logger("chinwag.sessions")


class SessionRegistry:
    """Every live session of this process, by id and by user.

    `settings` is the `[session]` section, or a function returning the live one: the TTL
    and the per-user limit apply from the next sweep and the next session, the replay
    bounds to sessions created from then on."""

    def __init__(
        self,
        settings: SessionSettings | Callable[[], SessionSettings],
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._settings = settings if callable(settings) else (lambda: settings)
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        # By user as well: every event of a turn looks up its user's sessions.
        self._by_user: dict[str, dict[str, Session]] = {}

    @property
    def ttl_s(self) -> float:
        return self._settings().ttl_s

    @property
    def max_per_user(self) -> int:
        return self._settings().max_per_user

    def create(self, user: UserRecord) -> Session:
        """A new session for `user`; past `max_per_user` their oldest session goes first."""
        self._make_room(user.id)
        settings = self._settings()
        session = Session(
            user,
            buffer_size=settings.replay_buffer,
            buffer_bytes=settings.replay_buffer_bytes,
            clock=self.clock,
        )
        self.sessions[session.id] = session
        self._by_user.setdefault(user.id, {})[session.id] = session
        return session

    # -- the directory's asynchronous face (the bus's may wait on the network) ----------

    async def open(self, user: UserRecord) -> Session:
        return self.create(user)

    async def resume(self, user: UserRecord, resume: protocol.ResumeInfo) -> Session | None:
        return self.find_resumable(user, resume)

    async def attach(
        self, session: SessionHandle, outlet: Outlet, welcome: bytes, *, last_seq: int | None
    ) -> int:
        assert isinstance(session, Session)  # this directory only hands out its own
        session.attach(outlet, welcome, last_seq=last_seq)
        return session.seq - last_seq if last_seq is not None else 0  # all were buffered

    def detach(self, session: SessionHandle, outlet: Outlet) -> None:
        if isinstance(session, Session):
            session.detach(outlet)

    def drop(self, session: SessionHandle) -> None:
        """Forget a session: it can no longer be resumed."""
        self.sessions.pop(session.id, None)
        mine = self._by_user.get(session.user.id)
        if mine is not None:
            mine.pop(session.id, None)
            if not mine:
                del self._by_user[session.user.id]

    def _make_room(self, user_id: str) -> None:
        """Evict the user's sessions beyond the limit, the longest-detached first. Only
        detached sessions go: they are what costs memory with nobody there (a socket that
        closed, a tab gone), while a session with a socket is someone connected now, and
        closing it to admit another would only make two clients of one user fight. An
        evicted session is forgotten: resuming it answers `resumed: false`."""
        mine = self._by_user.get(user_id, {})
        while len(mine) >= max(1, self.max_per_user):
            detached = [s for s in mine.values() if s.detached_at is not None]
            if not detached:
                return  # every one has a socket: sockets are bounded where they are accepted
            victim = min(detached, key=lambda s: s.detached_at or 0.0)
            log.info("session_evicted", session_id=victim.id)
            self.drop(victim)

    def find_resumable(self, user: UserRecord, resume: protocol.ResumeInfo) -> Session | None:
        """The session to resume, or None when resume cannot be honoured (for any reason:
        unknown, expired, another user's, wrong token, or events no longer in the buffer)."""
        self.expire()
        session = self.sessions.get(resume.session_id)
        if session is None or session.user.id != user.id:
            return None
        if not session.token_matches(resume.resume_token):
            return None
        if not session.can_replay_from(resume.last_seq):
            return None
        return session

    def of_user(self, user_id: str) -> Iterable[Session]:
        return list(self._by_user.get(user_id, {}).values())

    def expire(self) -> list[Session]:
        """Drop sessions detached for longer than the TTL."""
        now = self.clock()
        gone = [
            s
            for s in self.sessions.values()
            if s.detached_at is not None and now - s.detached_at > self.ttl_s
        ]
        for session in gone:
            self.drop(session)
        return gone

    def attached_count(self) -> int:
        return sum(1 for s in self.sessions.values() if s.outlet is not None)
