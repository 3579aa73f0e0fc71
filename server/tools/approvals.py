"""Calls waiting for the user's yes or no.

An approval names one `call_id`, and a call id names one exact call (tool and arguments):
approving it approves nothing else. Only the user the call belongs to can decide it; for
anyone else the id is `not_found`.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from server.errors import NotFound

Decision = Literal["allow", "deny", "timeout"]


class Approvals:
    def __init__(self) -> None:
        self.pending: dict[str, tuple[str, asyncio.Future[Decision]]] = {}

    async def wait(self, user_id: str, call_id: str, timeout_s: float) -> Decision:
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.pending[call_id] = (user_id, future)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return "timeout"
        finally:
            self.pending.pop(call_id, None)

    def decide(self, user_id: str, call_id: str, decision: Literal["allow", "deny"]) -> None:
        entry = self.pending.get(call_id)
        if entry is None or entry[0] != user_id or entry[1].done():
            raise NotFound("no tool call is waiting for approval with that call_id")
        entry[1].set_result(decision)
