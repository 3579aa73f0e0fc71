"""Calls waiting for the user's yes or no, kept in the store.

An approval names one `call_id`, and a call id names one exact call (tool and arguments):
approving it approves nothing else. Only the user the call belongs to can decide it; for
anyone else the id is `not_found`.

The store holds each waiting call with its arguments and expiry, and decides it at most
once (`Store.decide_approval`), whichever tab or process answers: that is what makes a
decision count once. Waking the waiting turn comes after, and may take any of three ways:
a local future (the decision was made in this process), the bus (`CallDirectory` hands it
to the process that waits), or, as a safety net, the waiter reading the store every
`poll_s`. A decision made while nothing waited (the process restarted) is found by the
next `wait` on that call id, and a waiting call keeps its first expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

import structlog

from server.errors import Conflict, Forbidden, NotFound
from server.store import ids
from server.store.base import ApprovalRecord, NewApproval, Store

if TYPE_CHECKING:
    from collections.abc import Callable

    from server.bus.base import CallDirectory

Decision = Literal["allow", "deny", "timeout"]
# How often a waiting call reads its decision from the store, in case no wake-up reaches it.
POLL_S = 2.0

log = structlog.get_logger("chinwag.tools")


def decided_by(*, user_id: str, key_id: str | None, login_id: str | None) -> str:
    """What a decision records as its author: the credential of the deciding socket."""
    if key_id is not None:
        return f"key:{key_id}"
    if login_id is not None:
        return f"login:{login_id}"
    return "local" if user_id == ids.LOCAL_USER_ID else f"user:{user_id}"


def approval_author(*, user_id: str, key_id: str | None, login_id: str | None, approver: str) -> str:
    """Who decides, as `decided_by` records it; Forbidden for an API key when
    `tools.approver = "person"` (a bot may not approve its own calls)."""
    if key_id is not None and approver == "person":
        raise Forbidden("approvals need a person: this connection uses an API key")
    return decided_by(user_id=user_id, key_id=key_id, login_id=login_id)


class Approvals:
    def __init__(
        self, store: Store, directory: CallDirectory | None = None, *, poll_s: float = POLL_S
    ) -> None:
        self.store = store
        self.pending: dict[str, tuple[str, asyncio.Future[Decision]]] = {}
        self._directory = directory
        self._poll_s = poll_s

    async def wait(
        self,
        user_id: str,
        call_id: str,
        timeout_s: float,
        *,
        turn_id: str,
        conversation_id: str,
        name: str,
        args: dict[str, Any],
        announce: Callable[[], None] | None = None,
    ) -> Decision:
        """Store the call as waiting (or find it stored), then wait for its decision until
        it expires. `announce` (publishing `tool.call`) runs once the call can be decided,
        so that no decision can arrive before the call is there to take it. An `allow` is
        taken in the store before it is returned (`still_waiting` then says False): the
        call runs now, and a continued turn must not run it again (Conflict if one did)."""
        record = await self.request(
            user_id, call_id, timeout_s, turn_id=turn_id, conversation_id=conversation_id, name=name, args=args,
        )
        decision = cast("Decision | None", record.decision)
        if decision is None:
            decision = await self._wait_here(record, announce)
        elif announce is not None:  # decided while nothing waited for it (a restart)
            announce()
        if decision == "allow" and not await self.store.take_approval(user_id, call_id):
            raise Conflict("this call was approved and has run already")
        return decision

    async def request(
        self,
        user_id: str,
        call_id: str,
        timeout_s: float,
        *,
        turn_id: str,
        conversation_id: str,
        name: str,
        args: dict[str, Any],
    ) -> ApprovalRecord:
        """Store the call as waiting (or find it stored) without waiting for it here: for
        the Responses API its decision comes with the client's next request, which runs the
        call then."""
        return await self.store.create_approval(NewApproval(
            call_id=call_id, user_id=user_id, turn_id=turn_id, conversation_id=conversation_id,
            name=name, args=args, timeout_s=timeout_s,
        ))

    async def answer(
        self, user_id: str, call_id: str, decision: Literal["allow", "deny"], *, decided_by: str
    ) -> ApprovalRecord:
        """Decide a call stored by `request` and return its record: a call decided already
        (from a tab, or by its timeout) keeps that first decision. NotFound when this user
        has no such call."""
        with contextlib.suppress(NotFound):
            await self.decide_anywhere(user_id, call_id, decision, decided_by=decided_by)
        record = await self.store.get_approval(user_id, call_id)
        if record is not None and record.decision is None:  # expired, not yet marked
            await self.store.expire_approvals(ids.utc_now())
            record = await self.store.get_approval(user_id, call_id)
        if record is None:
            raise NotFound(f"no tool call {call_id!r} waits for approval")
        return record

    async def still_waiting(self, user_id: str, call_id: str) -> bool:
        """Whether an interrupted call may wait again: it was stored as waiting and has not
        run (undecided, denied or timed out, or allowed while nothing waited to run it)."""
        record = await self.store.get_approval(user_id, call_id)
        return record is not None and record.taken_at is None

    async def _wait_here(
        self, record: ApprovalRecord, announce: Callable[[], None] | None
    ) -> Decision:
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        call_id, user_id = record.call_id, record.user_id
        self.pending[call_id] = (user_id, future)
        if self._directory is not None:
            self._directory.waiting(call_id, user_id)
        try:
            if announce is not None:
                announce()
            return await self._decision(record, future)
        finally:
            self.pending.pop(call_id, None)
            if self._directory is not None:
                self._directory.settled(call_id)

    async def _decision(self, record: ApprovalRecord, future: asyncio.Future[Decision]) -> Decision:
        while (left := _seconds_until(record.expires_at)) > 0:
            done, _ = await asyncio.wait({future}, timeout=min(self._poll_s, left))
            if done:
                return future.result()
            if (decision := await self._stored_decision(record)) is not None:
                return decision
        if future.done():
            return future.result()
        # Expired here: unless a decision got in first, the store says `timeout` from now.
        with contextlib.suppress(Exception):
            await self.store.expire_approvals(max(ids.utc_now(), record.expires_at))
        return await self._stored_decision(record) or "timeout"

    async def _stored_decision(self, record: ApprovalRecord) -> Decision | None:
        """The decision in the store, if any; None also while the store cannot answer (the
        next look may succeed)."""
        try:
            stored = await self.store.get_approval(record.user_id, record.call_id)
        except Exception as exc:  # noqa: BLE001 - a store away now is not the call's end
            log.warning("approval_poll_failed", call_id=record.call_id, error=str(exc))
            return None
        return None if stored is None else cast("Decision | None", stored.decision)

    async def decide_anywhere(
        self,
        user_id: str,
        call_id: str,
        decision: Literal["allow", "deny"],
        *,
        decided_by: str = "local",
    ) -> None:
        """Decide in the store (at most once, from anywhere), then wake the waiting turn:
        here, or in the process the bus says waits for it. NotFound when the store refuses
        (decided already, expired, unknown, another user's)."""
        if await self.store.decide_approval(user_id, call_id, decision, decided_by) is None:
            raise NotFound("no tool call is waiting for approval with that call_id")
        if self._wake(user_id, call_id, decision) or self._directory is None:
            return
        try:
            await self._directory.route_decision(user_id, call_id, decision)
        except Exception as exc:  # noqa: BLE001 - stored already: the waiter's poll finds it
            log.warning("approval_route_failed", call_id=call_id, error=str(exc))

    def decide(self, user_id: str, call_id: str, decision: Literal["allow", "deny"]) -> None:
        """Wake the call waiting here for a decision already stored (one routed from another
        process); NotFound when none of this user's waits here."""
        if not self._wake(user_id, call_id, decision):
            raise NotFound("no tool call is waiting for approval with that call_id")

    def _wake(self, user_id: str, call_id: str, decision: Decision) -> bool:
        entry = self.pending.get(call_id)
        if entry is None or entry[0] != user_id or entry[1].done():
            return False
        entry[1].set_result(decision)
        return True


def _seconds_until(moment: str) -> float:
    return (datetime.fromisoformat(moment) - datetime.now(UTC)).total_seconds()
