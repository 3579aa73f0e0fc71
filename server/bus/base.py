"""The seams between one process and the others: sessions, fan-out, and the routing of
`cancel` and `approve` to the process that runs the turn.

The in-process implementations (`server.sessions`, `server.bus.local`) are today's single
process; `server.bus.redis` implements the same protocols for many processes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal, Protocol

from server import protocol
from server.sessions.session import Outlet, SessionHandle
from server.store.base import UserRecord


class SessionDirectory(Protocol):
    """Where sessions live: created, resumed, attached to a socket, detached, forgotten.

    `sessions` holds the sessions this process has a socket for (and, in process, the
    detached ones too): what shutdown, revocation and status look at."""

    @property
    def sessions(self) -> Mapping[str, SessionHandle]: ...

    async def open(self, user: UserRecord) -> SessionHandle:
        """A new session for `user`, bound to this process's next `attach`."""

    async def resume(self, user: UserRecord, resume: protocol.ResumeInfo) -> SessionHandle | None:
        """The session to resume, or None when resume cannot be honoured (for any reason)."""

    async def attach(
        self, session: SessionHandle, outlet: Outlet, welcome: bytes, *, last_seq: int | None
    ) -> int:
        """Send `welcome`, then the events after `last_seq`, then live events; returns how
        many events were replayed."""

    def detach(self, session: SessionHandle, outlet: Outlet) -> None:
        """The socket is gone: the session's events wait for a resume, for the TTL."""

    def drop(self, session: SessionHandle) -> None:
        """Forget the session everywhere: it can no longer be resumed."""

    def of_user(self, user_id: str) -> Iterable[SessionHandle]:
        """This process's sessions of that user."""

    def expire(self) -> Sequence[SessionHandle]:
        """Forget sessions detached past the TTL (a no-op where the bus expires them)."""

    def attached_count(self) -> int: ...


class Publisher(Protocol):
    """Who hears about what. The turn runner and the gateway publish here, never to
    sessions directly. Publishing never waits: events leave in the order published."""

    def turn_event(self, user_id: str, conversation_id: str, event: protocol.Event) -> None:
        """To every session of the user with that conversation open, on any process."""

    def message_stored(
        self, user_id: str, message: protocol.Message, *, origin: SessionHandle | None
    ) -> None:
        """To the user's other sessions, on any process."""

    def broadcast(self, event: protocol.Event) -> None:
        """To every session this process has (a `reconnect` before it stops)."""


class TurnDirectory(Protocol):
    """Which process runs which turn, so a `cancel` sent anywhere reaches it."""

    def running(self, turn_id: str, *, user_id: str, conversation_id: str, message_id: str) -> None:
        """This process has started (or queued) the turn."""

    def ended(self, turn_id: str) -> None:
        """This process is done with the turn: its answer is committed."""

    async def route_cancel(self, user_id: str, turn_id: str) -> bool:
        """Ask the process running the user's turn to cancel it; False if none runs it."""


class CallDirectory(Protocol):
    """Which process waits for which approval, so an `approve` sent anywhere reaches it."""

    def waiting(self, call_id: str, user_id: str) -> None: ...

    def settled(self, call_id: str) -> None: ...

    async def route_decision(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"]
    ) -> bool:
        """Hand the decision to the process waiting for it; False if none waits for it."""
