"""Who hears about what: a user's sessions, by the conversations they have open.

This is the seam a multi-process deployment replaces with a shared bus (Redis pub/sub):
the turn runner and the gateway publish here, never to sessions directly.
"""

from __future__ import annotations

from server import protocol
from server.sessions.registry import SessionRegistry
from server.sessions.session import Session


class Fanout:
    def __init__(self, sessions: SessionRegistry):
        self.sessions = sessions

    def turn_event(self, user_id: str, conversation_id: str, event: protocol.Event) -> None:
        """An event of a turn goes to every session of the user with that conversation open."""
        for session in self.sessions.of_user(user_id):
            if conversation_id in session.open_conversations:
                session.publish(event)

    def message_stored(
        self, user_id: str, message: protocol.Message, *, origin: Session | None
    ) -> None:
        """A message one session stored is news to the user's other sessions (other tabs)."""
        event = protocol.MessageEvent(conversation_id=message.conversation_id, message=message)
        for session in self.sessions.of_user(user_id):
            if session is not origin:
                session.publish(event)

    def broadcast(self, event: protocol.Event) -> None:
        for session in list(self.sessions.sessions.values()):
            session.publish(event)
