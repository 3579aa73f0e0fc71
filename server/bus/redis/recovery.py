"""Taking up, or ending, the turns no live node runs any more, so that no answer stays
`streaming` and every client hears `turn.completed`.

Two ways a turn loses its node: the node dies (its lease runs out, and the first node to
notice takes its turns over: `node`), or the registration itself is lost (Redis restarted
without its data). The second is found by asking the store for answers still streaming
that no node holds (`sweep_orphans`). Either way the turn is continued here when the
config says so (`take_up`, see `server.turns.interruptions`); otherwise its answer keeps
the text checkpointed so far and becomes `incomplete`, and the store's conditional update
makes exactly one node win.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from server import protocol
from server.bus.redis.fanout import RedisFanout
from server.bus.redis.link import Link
from server.store.base import Store
from server.store.ids import format_time

log = structlog.get_logger("chinwag.bus")

# An orphan is ended only if it is still unheld after this long: a turn is registered
# a moment after its answer is stored (or restarted, to regenerate).
ORPHAN_RECHECK_S = 2.0
ENDED_BY_OTHERS = protocol.TurnError(
    code="internal",
    message="the server running this turn stopped; the answer is kept as far as it was written",
)


@dataclass(frozen=True)
class HeldTurn:
    turn_id: str
    node: str
    user_id: str
    conversation_id: str
    message_id: str

    @classmethod
    def parse(cls, turn_id: str, value: str) -> HeldTurn:
        node, user_id, conversation_id, message_id = value.split("\t")
        return cls(turn_id, node, user_id, conversation_id, message_id)


async def _decline(turn_id: str) -> bool:
    return False


class Recovery:
    def __init__(self, link: Link, store: Store, fanout: RedisFanout):
        self._link = link
        self._store = store
        self._fanout = fanout
        # Set by the composition root: take an interrupted turn up on this node (True), or
        # decline (False: its answer is then ended here).
        self.take_up: Callable[[str], Awaitable[bool]] = _decline

    async def end(self, turns: list[HeldTurn]) -> int:
        """Continue or end each turn whose answer is still streaming; returns how many."""
        ended = 0
        for turn in turns:
            if await self._end_one(turn.turn_id, turn.user_id, turn.conversation_id, turn.message_id):
                ended += 1
        if ended:
            log.warning("turns_taken_over", count=ended, node=turns[0].node)
        return ended

    async def sweep_orphans(self) -> int:
        """End answers left streaming, older than `bus.orphan_after_s`, that no node holds."""
        age = timedelta(seconds=self._link.config.bus.orphan_after_s)
        before = format_time(datetime.now(UTC) - age)
        streaming = await self._store.streaming_answers(created_before=before)
        held = await self._held_answers() if streaming else set()
        candidates = [a for a in streaming if a.message_id not in held]
        if not candidates:
            return 0
        await asyncio.sleep(ORPHAN_RECHECK_S)
        held = await self._held_answers()
        ended = 0
        for answer in candidates:
            if answer.message_id in held:
                continue
            if await self._end_one(
                answer.turn_id or "", answer.user_id, answer.conversation_id, answer.message_id
            ):
                ended += 1
        if ended:
            log.warning("orphaned_answers_ended", count=ended)
        return ended

    async def _held_answers(self) -> set[str]:
        values: Any = await self._link.client.hvals(self._link.keys.turns)
        return {HeldTurn.parse("", v.decode()).message_id for v in values}

    async def _end_one(self, turn_id: str, user_id: str, conversation_id: str, message_id: str) -> bool:
        if turn_id and await self.take_up(turn_id):
            return True  # continued here (`turns.on_interrupt = "continue"`)
        # With the turn: an answer regenerated since it was listed is a new, live turn.
        message = await self._store.abandon_answer(message_id, turn_id=turn_id or None)
        if message is None:
            return False  # finished after all, or another node ended it
        self._fanout.turn_event(user_id, conversation_id, protocol.TurnCompleted(
            turn_id=turn_id,
            conversation_id=conversation_id,
            message_id=message_id,
            status="failed",
            model=message.model or "",
            usage=protocol.TurnUsage(),
            error=ENDED_BY_OTHERS,
        ))
        return True
