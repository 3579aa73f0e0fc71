"""Calls waiting for the user's yes or no.

An approval names one `call_id`, and a call id names one exact call (tool and arguments):
approving it approves nothing else. Only the user the call belongs to can decide it; for
anyone else the id is `not_found`. With several processes, the call may wait on another
one than the socket that decides it: `decide_anywhere` hands the decision over the bus.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from server.errors import NotFound

if TYPE_CHECKING:
    from server.bus.base import CallDirectory

Decision = Literal["allow", "deny", "timeout"]


class Approvals:
    def __init__(self, directory: CallDirectory | None = None) -> None:
        self.pending: dict[str, tuple[str, asyncio.Future[Decision]]] = {}
        self._directory = directory

    async def wait(self, user_id: str, call_id: str, timeout_s: float) -> Decision:
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = (user_id, future)
        if self._directory is not None:
            self._directory.waiting(call_id, user_id)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return "timeout"
        finally:
            self.pending.pop(call_id, None)
            if self._directory is not None:
                self._directory.settled(call_id)

    async def decide_anywhere(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"]
    ) -> None:
        """`decide`, or hand the decision to the process whose turn waits for it."""
        try:
            self.decide(user_id, call_id, decision)
        except NotFound:
            if self._directory is None or not await self._directory.route_decision(
                user_id, call_id, decision
            ):
                raise

    def decide(self, user_id: str, call_id: str, decision: Literal["allow", "deny"]) -> None:
        entry = self.pending.get(call_id)
        if entry is None or entry[0] != user_id or entry[1].done():
            raise NotFound("no tool call is waiting for approval with that call_id")
        entry[1].set_result(decision)
