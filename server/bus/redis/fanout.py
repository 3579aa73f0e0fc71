"""Fan-out through Redis: an event reaches the user's sessions on every node.

The event is encoded once; a script appends it to the log of each session that should get
it and tells the node holding that session's socket (`scripts.PUBLISH_TO_USER`). Nothing
here waits: the writer sends in publish order.
"""

from __future__ import annotations

from server import protocol
from server.bus.redis.link import Link
from server.sessions.session import SessionHandle, encode_event


class RedisFanout:
    def __init__(self, link: Link, local_sessions: dict[str, SessionHandle] | None = None):
        self._link = link
        self._local = local_sessions  # for `broadcast`: this node's sessions

    def turn_event(self, user_id: str, conversation_id: str, event: protocol.Event) -> None:
        self._to_user(user_id, conversation_id, "", event)

    def message_stored(
        self, user_id: str, message: protocol.Message, *, origin: SessionHandle | None
    ) -> None:
        event = protocol.MessageEvent(conversation_id=message.conversation_id, message=message)
        self._to_user(user_id, "", origin.id if origin is not None else "", event)

    def broadcast(self, event: protocol.Event) -> None:
        """To this node's own sessions (a node says `reconnect` to its sockets only)."""
        session_ids = list(self._local or {})
        if not session_ids:
            return
        link = self._link
        maxlen, maxbytes = self._bounds()
        link.writer.send(link.scripts.publish_to_sessions, [
            link.prefix, encode_event(event), maxlen, maxbytes, link.node, link.writer.next_op(),
            *session_ids,
        ])

    def _to_user(self, user_id: str, conversation_id: str, origin: str, event: protocol.Event) -> None:
        link = self._link
        maxlen, maxbytes = self._bounds()
        link.writer.send(link.scripts.publish_to_user, [
            link.prefix, user_id, conversation_id, origin, encode_event(event), maxlen, maxbytes,
            link.node, link.writer.next_op(),
        ])

    def _bounds(self) -> tuple[int, int]:
        settings = self._link.config.session
        return max(settings.replay_buffer, 1), max(settings.replay_buffer_bytes, 1)
