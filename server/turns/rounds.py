"""Rounds of one turn: the model streams, the tools it asked for run, their results go back
to the model, until it answers without tools or `tools.max_rounds` is reached.

Every delta is published as it arrives and kept in the turn's transcript, which is what gets
stored: so a cancelled answer stores exactly the deltas already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import msgspec

from server import protocol
from server.config.live import LiveConfig, as_live
from server.config.settings import Config
from server.models.base import ChatMessage, Finish, ModelRequest, TextDelta, ToolUse
from server.models.selector import Selection, Selector
from server.models.tool_names import for_the_wire
from server.tools.executor import ToolExecutor, new_call_id
from server.turns.checkpoints import Checkpointer
from server.turns.state import RunningTurn, TurnOutcome

Publish = Callable[[RunningTurn, protocol.Event], None]


class RoundRunner:
    def __init__(self, *, config: Config | LiveConfig, selector: Selector, tools: ToolExecutor, publish: Publish):
        self._live = as_live(config)
        self.selector = selector
        self.tools = tools
        self._publish = publish

    @property
    def config(self) -> Config:
        """The live config, read per use: a reload takes effect from the next read."""
        return self._live.current

    async def run(
        self,
        turn: RunningTurn,
        request: ModelRequest,
        model: str,
        selection: Selection,
        outcome: TurnOutcome,
        checkpoints: Checkpointer,
    ) -> None:
        """Model, then the tools it asked for, then the model again with their results, up
        to `tools.max_rounds` rounds of tools."""
        deadline = time.monotonic() + self.config.turns.deadline_s
        messages = list(request.messages)
        max_rounds = self.config.tools.max_rounds
        try:
            for round_number in range(max_rounds + 1):
                round_request = msgspec.structs.replace(request, messages=messages)
                calls = await self._stream_round(turn, model, round_request, selection, outcome, checkpoints, deadline)
                if not calls:
                    return
                if round_number == max_rounds:
                    for call in calls:
                        turn.transcript.add_block(_not_run(call, f"tools.max_rounds ({max_rounds}) reached"))
                    outcome.stop_reason = "max_tool_rounds"
                    return
                if checkpoints.durable:
                    await checkpoints.save()  # the calls are on record before they run
                results = await self._run_tools(turn, calls)
                if checkpoints.durable:
                    await checkpoints.save()  # and their results, before the model goes on
                if len(results) < len(calls):
                    # Some calls are the client's to answer (its own tools, or approvals it
                    # decides): the turn ends here, and its next request brings their results.
                    outcome.stop_reason = "tool_use"
                    return
                messages += [ChatMessage("assistant", _round_blocks(turn)), ChatMessage("user", results)]
        finally:
            # However the turn ends (done, failed, cancelled): every call of every round, on
            # the model that made it, including what a cut-off call had used so far.
            outcome.usage = selection.usage()
            outcome.cost = sum(self.selector.cost(name, usage) for name, usage in selection.charges)

    async def _stream_round(
        self,
        turn: RunningTurn,
        model: str,
        request: ModelRequest,
        selection: Selection,
        outcome: TurnOutcome,
        checkpoints: Checkpointer,
        deadline: float,
    ) -> list[dict[str, Any]]:
        """One model call; returns the tool calls it made (with our own call ids)."""
        calls: list[dict[str, Any]] = []
        turn.round_start = len(turn.transcript.content())
        request, names = for_the_wire(request)  # `SERVER.tool` is `SERVER__tool` to a model
        stream = self.selector.stream(model, request, selection, deadline=deadline)
        # aclosing: a cancel landing between two events still closes the upstream call.
        async with contextlib.aclosing(stream):
            async for event in stream:
                if turn.first_token_at is None and isinstance(event, TextDelta | ToolUse):
                    turn.first_token_at = time.monotonic()
                match event:
                    case TextDelta(text=text) if text:
                        checkpoints.text(text)
                    case ToolUse(name=name, input=args):
                        call = {"type": "tool_use", "id": new_call_id(), "name": names.get(name, name), "input": args}
                        turn.transcript.add_block(call)
                        calls.append(call)
                    case Finish(stop_reason=reason):
                        outcome.stop_reason = reason
        if calls:  # the round's text goes out before its tool calls (a last round's: after the final commit)
            await checkpoints.flush_text()
        return calls

    async def _run_tools(self, turn: RunningTurn, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run one round's calls concurrently; each result goes to the clients as it lands.
        Calls left for the client have no result here."""
        results = await self.run_tools(turn, calls)
        for block in results:
            turn.transcript.add_block(block)
        return results

    async def run_tools(self, turn: RunningTurn, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The calls' result blocks (the caller adds them to the transcript)."""
        request = turn.request

        async def run(call: dict[str, Any]) -> dict[str, Any] | None:
            call_id = call["id"]

            def announce(needs_approval: bool) -> None:
                self._publish(turn, protocol.ToolCallEvent(
                    turn_id=request.turn_id, call_id=call_id, name=call["name"],
                    args=call["input"], needs_approval=needs_approval,
                ))

            if request.is_client_tool(call["name"]):
                announce(False)
                return None  # the client runs it
            outcome = await self.tools.call_for_model(
                request.user, request.conversation_id, call_id, call["name"], call["input"], announce,
                turn_id=request.turn_id, ask_later=request.approvals_in_next_request,
            )
            if outcome.pending:
                return None  # waits for the decision the client's next request brings
            self._publish(turn, protocol.ToolOutput(
                turn_id=request.turn_id, call_id=call_id, ok=outcome.ok,
                result=outcome.result, error=outcome.error,
            ))
            return outcome.as_block(call_id)

        results = await asyncio.gather(*(run(call) for call in calls))
        return [block for block in results if block is not None]


def _round_blocks(turn: RunningTurn) -> list[dict[str, Any]]:
    """What the model said in the round that just ended: its text and its tool calls."""
    return [b for b in turn.transcript.content()[turn.round_start:] if b.get("type") != "tool_result"]


def _not_run(call: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call["id"], "content": f"error: not run: {reason}", "is_error": True}
