"""Every live session of this process, by id and by user: create, resume, expire, drop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from server import protocol
from server.sessions.session import Session
from server.store.base import UserRecord


class SessionRegistry:
    """Every live session of this process, by id and by user."""

    def __init__(self, *, ttl_s: float, buffer_size: int, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.buffer_size = buffer_size
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        # By user as well: every event of a turn looks up its user's sessions.
        self._by_user: dict[str, dict[str, Session]] = {}

    def create(self, user: UserRecord) -> Session:
        session = Session(user, buffer_size=self.buffer_size, clock=self.clock)
        self.sessions[session.id] = session
        self._by_user.setdefault(user.id, {})[session.id] = session
        return session

    def drop(self, session: Session) -> None:
        """Forget a session: it can no longer be resumed."""
        self.sessions.pop(session.id, None)
        mine = self._by_user.get(session.user.id)
        if mine is not None:
            mine.pop(session.id, None)
            if not mine:
                del self._by_user[session.user.id]

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
