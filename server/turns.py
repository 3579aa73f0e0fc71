"""The turn runner: from a committed user message to a committed answer, streamed as events.

A turn runs as its own task, independent of any socket: a client that disconnects finds the
turn finished (or still running) when it resumes. One turn runs at a time per conversation;
later turns wait their turn (or are refused, with `turns.concurrent = "reject"`).

The stored text of a cancelled answer is exactly the deltas already published, because the
text is accumulated from what was published and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog

from server import protocol
from server.config import Config
from server.context import build_context, estimate_tokens
from server.errors import ChinwagError, Conflict, Internal, NotFound, Timeout
from server.fanout import Fanout
from server.metrics import Metrics
from server.models.base import (
    ChatMessage,
    Finish,
    ModelRequest,
    TextDelta,
    ToolSpec,
    ToolUse,
    Usage,
)
from server.models.selector import Selection, Selector
from server.prompts import PromptLibrary
from server.store.base import Store, UserRecord
from server.tools.executor import ToolExecutor, new_call_id
from server.transcript import Transcript

log = structlog.get_logger("chinwag.turns")


class TurnRequest(msgspec.Struct, kw_only=True):
    turn_id: str
    answer_id: str  # the assistant message reserved with the user message
    user: UserRecord
    conversation_id: str
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None


class RunningTurn:
    def __init__(self, request: TurnRequest):
        self.request = request
        self.task: asyncio.Task[None] | None = None
        self.transcript = Transcript()
        self.message_id = request.answer_id
        self.announced = False  # turn.started has been published
        self.round_start = 0  # where the current model round's blocks begin
        # Why the task was cancelled: "cancel" (the user's stop) or "shutdown".
        self.cancel_reason: str | None = None
        # The stream is over and the answer is being committed: a cancel must not cut that
        # (the message would stay "streaming" and no turn.completed would follow).
        self.finishing = False
        self.started_at: float | None = None  # time.monotonic(), for metrics
        self.first_token_at: float | None = None


class TurnOutcome(msgspec.Struct, kw_only=True):
    status: str = "complete"  # wire status: complete | cancelled | failed
    stored_status: str = "complete"  # message status: also "incomplete"
    stop_reason: str | None = None
    usage: Usage = Usage()
    error: ChinwagError | None = None


class TurnRunner:
    def __init__(
        self,
        *,
        config: Config,
        store: Store,
        selector: Selector,
        prompts: PromptLibrary,
        fanout: Fanout,
        tools: ToolExecutor,
        metrics: Metrics | None = None,
    ):
        self.config = config
        self.store = store
        self.selector = selector
        self.prompts = prompts
        self.fanout = fanout
        self.tools = tools
        self.metrics = metrics or Metrics()
        self.running: dict[str, RunningTurn] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    # -- control ------------------------------------------------------------------------

    def check_accepts(self, conversation_id: str | None) -> None:
        """Under the "reject" policy, refuse a send to a conversation with a turn running."""
        if self.config.turns.concurrent != "reject" or not conversation_id:
            return
        if any(t.request.conversation_id == conversation_id for t in self.running.values()):
            raise Conflict("a turn is already running in this conversation")

    def start(self, request: TurnRequest) -> RunningTurn:
        turn = RunningTurn(request)
        self.running[request.turn_id] = turn
        turn.task = asyncio.create_task(self._run(turn), name=f"turn {request.turn_id}")
        return turn

    async def cancel(self, user_id: str, turn_id: str) -> None:
        """Stop a running turn of this user. An ended turn is fine; an unknown one is not."""
        turn = self.running.get(turn_id)
        if turn is None or turn.request.user.id != user_id:
            if await self.store.turn_exists(user_id, turn_id):
                return
            raise NotFound("turn not found")
        if turn.task is not None and turn.cancel_reason is None and not turn.finishing:
            turn.cancel_reason = "cancel"
            turn.task.cancel()

    async def drain(self, grace_s: float) -> None:
        """Shutdown: let running turns finish for `grace_s`, then stop and checkpoint them."""
        tasks = [t.task for t in self.running.values() if t.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        for turn in list(self.running.values()):
            # A turn already stopping (user cancel) or committing its answer ends by itself.
            if turn.task in pending and turn.cancel_reason is None and not turn.finishing:
                turn.cancel_reason = "shutdown"
                turn.task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    # -- one turn ------------------------------------------------------------------------

    def _lock(self, conversation_id: str) -> asyncio.Lock:
        return self._locks.setdefault(conversation_id, asyncio.Lock())

    async def _run(self, turn: RunningTurn) -> None:
        request = turn.request
        lock = self._lock(request.conversation_id)
        with structlog.contextvars.bound_contextvars(
            turn_id=request.turn_id,
            conversation_id=request.conversation_id,
            user_id=request.user.id,
        ):
            try:
                async with lock:
                    await self._execute(turn)
            except asyncio.CancelledError:
                if not turn.announced:  # cancelled while queued behind another turn
                    await self._finish_unstarted(turn, TurnOutcome(status="cancelled", stored_status="cancelled"))
            except Exception as exc:
                error = exc if isinstance(exc, ChinwagError) else Internal("internal error")
                if not isinstance(exc, ChinwagError):
                    log.exception("turn_crashed")
                if not turn.announced:  # failed before it could start: say so, and store it
                    outcome = TurnOutcome(status="failed", stored_status="failed")
                    self._fail(turn, outcome, error)
                    await self._finish_unstarted(turn, outcome)
            finally:
                self.running.pop(request.turn_id, None)
                if not lock.locked() and not lock._waiters:  # type: ignore[attr-defined]
                    self._locks.pop(request.conversation_id, None)

    async def _execute(self, turn: RunningTurn) -> None:
        request = turn.request
        started = turn.started_at = time.monotonic()
        conversation = await self.store.get_conversation(request.user.id, request.conversation_id)
        template_name = (
            request.template or conversation.template or self.config.prompts.default_template
        )
        template = self.prompts.get(template_name)
        model = self.selector.choose(
            explicit=request.model, conversation=conversation.model, template_hint=template.meta.model
        )
        self._announce(turn, model, template_name)
        selection = Selection(model=model)
        outcome = await self._stream_answer(turn, conversation, template_name, model, selection)
        await self._finish(turn, outcome, selection)
        log.info(
            "turn_completed",
            status=outcome.status,
            model=selection.model,
            fallback_from=selection.fallback_from,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
            input_tokens=outcome.usage.input_tokens,
            output_tokens=outcome.usage.output_tokens,
        )

    async def _stream_answer(
        self,
        turn: RunningTurn,
        conversation: protocol.Conversation,
        template_name: str,
        model: str,
        selection: Selection,
    ) -> TurnOutcome:
        outcome = TurnOutcome()
        checkpoints = _Checkpointer(self.store, turn, self.config.turns.checkpoint_s)
        try:
            async with asyncio.timeout(self.config.turns.deadline_s):
                request = await self._model_request(turn, conversation, template_name, model)
                await self._rounds(turn, request, model, selection, outcome, checkpoints)
        except asyncio.CancelledError:
            outcome.status = "cancelled"
            outcome.stored_status = "cancelled" if turn.cancel_reason == "cancel" else "incomplete"
        except TimeoutError:
            self._fail(turn, outcome, Timeout("the turn ran past its deadline"))
        except ChinwagError as exc:
            self._fail(turn, outcome, exc)
        except Exception as exc:
            log.exception("turn_failed_unexpectedly")
            self._fail(turn, outcome, Internal(f"internal error: {type(exc).__name__}"))
        turn.finishing = True
        await checkpoints.settle()
        return outcome

    async def _rounds(
        self,
        turn: RunningTurn,
        request: ModelRequest,
        model: str,
        selection: Selection,
        outcome: TurnOutcome,
        checkpoints: _Checkpointer,
    ) -> None:
        """Model, then the tools it asked for, then the model again with their results, up
        to `tools.max_rounds` rounds of tools."""
        deadline = time.monotonic() + self.config.turns.deadline_s
        messages = list(request.messages)
        max_rounds = self.config.tools.max_rounds
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
            results = await self._run_tools(turn, calls)
            messages += [ChatMessage("assistant", _round_blocks(turn, calls)), ChatMessage("user", results)]

    async def _stream_round(
        self,
        turn: RunningTurn,
        model: str,
        request: ModelRequest,
        selection: Selection,
        outcome: TurnOutcome,
        checkpoints: _Checkpointer,
        deadline: float,
    ) -> list[dict[str, Any]]:
        """One model call; returns the tool calls it made (with our own call ids)."""
        turn_id = turn.request.turn_id
        calls: list[dict[str, Any]] = []
        turn.round_start = len(turn.transcript.content())
        stream = self.selector.stream(model, request, selection, deadline=deadline)
        # aclosing: a cancel landing between two events still closes the upstream call.
        async with contextlib.aclosing(stream):
            async for event in stream:
                if turn.first_token_at is None and isinstance(event, TextDelta | ToolUse):
                    turn.first_token_at = time.monotonic()
                match event:
                    case TextDelta(text=text) if text:
                        turn.transcript.add_text(text)
                        self._publish(turn, protocol.Delta(turn_id=turn_id, text=text))
                        checkpoints.maybe()
                    case ToolUse(name=name, input=args):
                        call = {"type": "tool_use", "id": new_call_id(), "name": name, "input": args}
                        turn.transcript.add_block(call)
                        calls.append(call)
                    case Usage():
                        outcome.usage = Usage(
                            outcome.usage.input_tokens + event.input_tokens,
                            outcome.usage.output_tokens + event.output_tokens,
                        )
                    case Finish(stop_reason=reason):
                        outcome.stop_reason = reason
        return calls

    async def _run_tools(self, turn: RunningTurn, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run one round's calls concurrently; each result goes to the clients as it lands."""
        request = turn.request

        async def run(call: dict[str, Any]) -> dict[str, Any]:
            call_id = call["id"]

            def announce(needs_approval: bool) -> None:
                self._publish(turn, protocol.ToolCallEvent(
                    turn_id=request.turn_id, call_id=call_id, name=call["name"],
                    args=call["input"], needs_approval=needs_approval,
                ))

            outcome = await self.tools.call_for_model(
                request.user, request.conversation_id, call_id, call["name"], call["input"], announce
            )
            self._publish(turn, protocol.ToolOutput(
                turn_id=request.turn_id, call_id=call_id, ok=outcome.ok,
                result=outcome.result, error=outcome.error,
            ))
            return outcome.as_block(call_id)

        results = await asyncio.gather(*(run(call) for call in calls))
        for block in results:
            turn.transcript.add_block(block)
        return list(results)

    async def _model_request(
        self, turn: RunningTurn, conversation: protocol.Conversation, template_name: str, model: str
    ) -> ModelRequest:
        request = turn.request
        settings = self.selector.settings(model)
        template = self.prompts.get(template_name)
        offered = self.tools.available(request.user.role, only=template.meta.tools)
        # Variables: template defaults < conversation < turn; user text, titles and
        # variables are values in the render context, never template source.
        system = self.prompts.render_system(
            template_name,
            server_name=self.config.server.name,
            user=request.user,
            conversation=conversation,
            model=model,
            tools=offered,
            conversation_variables=conversation.variables,
            turn_variables=request.variables,
            now=datetime.now(UTC),
        )
        history = await self.store.context_messages(request.user.id, request.conversation_id)
        # Only what came before this turn's answer: later sends queued behind it are not
        # part of its context (their answers will see this one).
        history = list(itertools.takewhile(lambda m: m.id != turn.message_id, history))
        budget = settings.context_window - settings.max_output_tokens - estimate_tokens(system)
        window = build_context(history, budget=max(budget, 0))
        if window.dropped:
            log.info(
                "context_trimmed", dropped=window.dropped, kept=len(window.messages),
                dropped_tokens=window.dropped_tokens, budget=max(budget, 0),
            )
        window.require_some()
        return ModelRequest(
            system=system,
            messages=window.messages,
            tools=[ToolSpec(t.name, t.description, t.input_schema) for t in offered],
            max_tokens=settings.max_output_tokens,
        )

    def _fail(self, turn: RunningTurn, outcome: TurnOutcome, error: ChinwagError) -> None:
        outcome.status = "failed"
        outcome.stored_status = "incomplete" if turn.transcript else "failed"
        outcome.error = error
        log.warning("turn_failed", code=error.code, error=error.message)

    async def _finish(self, turn: RunningTurn, outcome: TurnOutcome, selection: Selection) -> None:
        """Commit the answer, then tell the clients: `turn.completed` follows the commit."""
        request = turn.request
        content = turn.transcript.content()
        usage = {"input_tokens": outcome.usage.input_tokens, "output_tokens": outcome.usage.output_tokens}
        cost = self.selector.cost(selection.model, outcome.usage)
        self.metrics.turn_ended(
            selection.model, outcome.status, outcome.usage, cost=cost,
            started=turn.started_at, first_token=turn.first_token_at,
        )
        await self.store.finish_message(
            turn.message_id,
            content=content,
            status=outcome.stored_status,
            model=selection.model,
            usage=usage,
            cost=cost,
        )
        error = outcome.error
        self._publish(turn, protocol.TurnCompleted(
            turn_id=request.turn_id,
            conversation_id=request.conversation_id,
            message_id=turn.message_id,
            status=outcome.status,  # type: ignore[arg-type]
            stop_reason=outcome.stop_reason,
            model=selection.model,
            fallback_from=selection.fallback_from,
            usage=protocol.TurnUsage(**usage),
            error=protocol.TurnError(code=error.code, message=error.message) if error else None,
        ))

    async def _finish_unstarted(self, turn: RunningTurn, outcome: TurnOutcome) -> None:
        """A turn cancelled or failed before it began still ends with a stored answer and
        `turn.completed`, so that no client waits for a turn that will never come."""
        request = turn.request
        model = request.model or self.config.routing.default
        self._announce(turn, model, request.template or self.config.prompts.default_template)
        await self._finish(turn, outcome, Selection(model=model))

    def _announce(self, turn: RunningTurn, model: str, template: str) -> None:
        request = turn.request
        turn.announced = True
        self._publish(turn, protocol.TurnStarted(
            turn_id=request.turn_id,
            conversation_id=request.conversation_id,
            message_id=turn.message_id,
            model=model,
            template=template,
        ))

    def _publish(self, turn: RunningTurn, event: protocol.Event) -> None:
        request = turn.request
        self.fanout.turn_event(request.user.id, request.conversation_id, event)


class _Checkpointer:
    """Saves the partial answer about once every `interval_s`, off the streaming path."""

    def __init__(self, store: Store, turn: RunningTurn, interval_s: float):
        self.store = store
        self.turn = turn
        self.interval_s = interval_s
        self.last = time.monotonic()
        self.pending: asyncio.Task[Any] | None = None

    def maybe(self) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s or (self.pending and not self.pending.done()):
            return
        self.last = now
        content = self.turn.transcript.content()
        self.pending = asyncio.create_task(self.store.checkpoint_message(self.turn.message_id, content))

    async def settle(self) -> None:
        """Wait for a checkpoint in flight, so that it cannot land after the final write."""
        if self.pending is not None:
            await asyncio.gather(self.pending, return_exceptions=True)


def _round_blocks(turn: RunningTurn, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the model said in the round that just ended: its text and its tool calls."""
    return [b for b in turn.transcript.content()[turn.round_start:] if b.get("type") != "tool_result"]


def _not_run(call: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call["id"], "content": f"error: not run: {reason}", "is_error": True}
