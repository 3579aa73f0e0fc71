"""Turns cut off by a crash, a deploy or a node's death: continued, or ended.

With `turns.on_interrupt = "continue"` (the default) an interrupted turn is taken up again
from its answer's last checkpoint: at start-up by the process that restarts (one process),
or by the node that takes a dead node's turns over (several, `server.bus.redis`). The model
is asked for the rest of the answer, and the new text appends to the same message. A turn
interrupted more than `turns.max_interruptions` times fails instead, with its answer kept
as written, so a turn that crashes the server cannot crash it on every start.

With "mark", or for an answer with no run to continue, the answer becomes `incomplete`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from server import protocol
from server.config.live import LiveConfig
from server.store.base import Store
from server.store.ids import format_time
from server.turns.runner import TurnRunner
from server.turns.state import TurnRequest, api_fields

log = structlog.get_logger("chinwag.turns")

GAVE_UP = "interrupted {n} times (turns.max_interruptions is {limit}); not continued again"


class Interruptions:
    def __init__(self, live: LiveConfig, store: Store, runner: TurnRunner):
        self._live = live
        self._store = store
        self._runner = runner

    async def recover_at_start(self) -> tuple[int, int]:
        """One process starting: continue every interrupted run ("continue"), end every
        other answer left streaming. Returns (continued, ended)."""
        if self._live.current.turns.on_interrupt != "continue":
            ended = await self._store.recover()  # one statement for all of them
            continued = 0
        else:
            continued = 0
            for run in await self._store.interrupted_runs():
                if await self.continue_here(run.turn_id):
                    continued += 1
            ended = await self._end_the_rest()
        if continued or ended:
            log.warning("interrupted_turns_recovered", continued=continued, ended=ended)
        return continued, ended

    async def _end_the_rest(self) -> int:
        """End the answers left streaming that were not taken up, a page at a time (each
        page lists what the last one left, until only turns running here remain)."""
        now = format_time(datetime.now(UTC))
        ended = 0
        while True:
            page = await self._store.streaming_answers(created_before=now)
            leftovers = [a for a in page if a.turn_id not in self._runner.running]
            before = ended
            for answer in leftovers:
                if await self._store.abandon_answer(answer.message_id, turn_id=answer.turn_id or None):
                    ended += 1
            if ended == before:  # nothing left, or nothing this page could end: no loop
                return ended

    async def continue_here(self, turn_id: str) -> bool:
        """Take the interrupted turn up in this process. False when there is nothing to
        continue (no run, its answer finished, or "mark"): the caller then ends the answer
        as `incomplete`. Who may take a turn up is decided before this: the one process
        starting, or the one node that released a dead node's turns."""
        settings = self._live.current.turns
        if settings.on_interrupt != "continue" or turn_id in self._runner.running:
            return False
        claimed = await self._store.claim_run(turn_id)
        if claimed is None:
            return False
        run, answer = claimed
        user = await self._store.get_user(run.user_id)
        if user is None:
            return False
        if run.attempts > settings.max_interruptions:
            await self._give_up(run.turn_id, run.conversation_id, answer, user.id, run.attempts)
            return True
        self._runner.start(TurnRequest(
            turn_id=run.turn_id, answer_id=run.answer_id, chars=run.chars, user=user,
            conversation_id=run.conversation_id, model=run.model, template=run.template,
            variables=run.variables, continued=True,  # type: ignore[arg-type]
            **api_fields(run.request),  # an API turn's own context, instructions and tools
        ), written=answer.content)
        log.info("turn_continued", turn_id=run.turn_id, attempt=run.attempts)
        return True

    async def _give_up(
        self, turn_id: str, conversation_id: str, answer: protocol.Message, user_id: str, attempts: int,
    ) -> None:
        limit = self._live.current.turns.max_interruptions
        message = GAVE_UP.format(n=attempts, limit=limit)
        await self._store.finish_message(
            answer.id, content=answer.content, status="failed", model=answer.model,
        )
        await self._store.end_run(turn_id)
        log.error("turn_gave_up", turn_id=turn_id, attempts=attempts)
        self._runner.fanout.turn_event(user_id, conversation_id, protocol.TurnCompleted(
            turn_id=turn_id, conversation_id=conversation_id, message_id=answer.id,
            status="failed", model=answer.model or "", usage=protocol.TurnUsage(),
            error=protocol.TurnError(code="internal", message=message),
        ))
