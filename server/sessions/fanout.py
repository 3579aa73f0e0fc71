"""Who hears about what: a user's sessions, by the conversations they have open.

The in-process `Publisher` (`server.bus.base`); several processes share one through Redis
(`server.bus.redis.fanout`). The turn runner and the gateway publish here, never to
sessions directly.
"""

from __future__ import annotations

from collections.abc import Iterable

from server import protocol
from server.sessions.registry import SessionRegistry
from server.sessions.session import Session, SessionHandle, encode_event


class Fanout:
    def __init__(self, sessions: SessionRegistry):
        self.sessions = sessions

    def turn_event(self, user_id: str, conversation_id: str, event: protocol.Event) -> None:
        """An event of a turn goes to every session of the user with that conversation open."""
        sessions = self.sessions.of_user(user_id)
        self._publish((s for s in sessions if conversation_id in s.open_conversations), event)

    def message_stored(
        self, user_id: str, message: protocol.Message, *, origin: SessionHandle | None
    ) -> None:
        """A message one session stored is news to the user's other sessions (other tabs)."""
        event = protocol.MessageEvent(conversation_id=message.conversation_id, message=message)
        self._publish((s for s in self.sessions.of_user(user_id) if s is not origin), event)

    def broadcast(self, event: protocol.Event) -> None:
        self._publish(list(self.sessions.sessions.values()), event)

    @staticmethod
    def _publish(sessions: Iterable[Session], event: protocol.Event) -> None:
        """Encode the event once, for the first session that needs it; every session keeps
        a reference to that one body and stamps its own `seq` on the way out."""
        body: bytes | None = None
        for session in sessions:
            if body is None:
                body = encode_event(event)
            session.publish(event, body)
