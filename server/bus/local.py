"""One process: sessions live in its memory, and turns and approvals are always here, so
there is nothing to route."""

from __future__ import annotations

from typing import Literal

from server.config.live import LiveConfig
from server.sessions.fanout import Fanout
from server.sessions.registry import SessionRegistry


class LocalTurns:
    """`TurnDirectory` of a single process: every turn runs here."""

    def running(self, turn_id: str, *, user_id: str, conversation_id: str, message_id: str) -> None:
        return None

    def ended(self, turn_id: str) -> None:
        return None

    async def route_cancel(self, user_id: str, turn_id: str) -> bool:
        return False


class LocalCalls:
    """`CallDirectory` of a single process: every approval waits here."""

    def waiting(self, call_id: str, user_id: str) -> None:
        return None

    def settled(self, call_id: str) -> None:
        return None

    async def route_decision(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"]
    ) -> bool:
        return False


class LocalBus:
    """The bus of a deployment of one process: sessions and fan-out in memory."""

    # At start-up every answer left `streaming` was this process's: a crash ended it.
    recovers_at_start = True

    def __init__(self, live: LiveConfig):
        self.sessions = SessionRegistry(lambda: live.current.session)
        self.fanout = Fanout(self.sessions)
        self.turns = LocalTurns()
        self.calls = LocalCalls()

    async def start(self) -> None:
        return None

    async def settle(self) -> None:
        return None  # publishing in process reaches the sockets before it returns

    async def stop(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    def queued(self) -> int:
        return 0  # nothing waits: publishing in process is immediate
