"""The turn runner: from a committed user message to a committed answer, streamed as events.

This module is a turn's life: queued behind the conversation's running turn, started,
cancelled, drained at shutdown, finished and committed. The model and tool rounds inside
it are `server.turns.rounds`; the turn's state is `server.turns.state`.

A turn runs as its own task, independent of any socket: a client that disconnects finds the
turn finished (or still running) when it resumes. One turn runs at a time per conversation;
later turns wait their turn (or are refused, with `turns.concurrent = "reject"`).

The stored text of a cancelled answer is exactly the deltas already published, because the
text is accumulated from what was published and nothing else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from server import protocol
from server.bus.base import Publisher, TurnDirectory
from server.bus.local import LocalTurns
from server.config.live import LiveConfig, as_live
from server.config.settings import Config
from server.errors import ChinwagError, Conflict, Internal, NotFound, Timeout
from server.models.base import ChatMessage, ModelRequest, ToolSpec
from server.models.selector import Selection, Selector
from server.observability.metrics import Metrics
from server.prompts.library import PromptLibrary
from server.store.base import Store
from server.tools.executor import ToolExecutor
from server.turns.checkpoints import Checkpointer
from server.turns.history_budget import build_context, estimate_tokens
from server.turns.locks import ConversationLocks
from server.turns.rounds import RoundRunner
from server.turns.state import RunningTurn, TurnOutcome, TurnRequest
from server.turns.transcript import INTERRUPTED_CALL, dangling_calls, expand, interrupted_result

log = structlog.get_logger("chinwag.turns")

# Messages read per page when loading a turn's history.
HISTORY_PAGE = 100


class TurnRunner:
    def __init__(
        self,
        *,
        config: Config | LiveConfig,
        store: Store,
        selector: Selector,
        prompts: PromptLibrary,
        fanout: Publisher,
        tools: ToolExecutor,
        metrics: Metrics | None = None,
        directory: TurnDirectory | None = None,
    ):
        self._live = as_live(config)
        self.store = store
        self.selector = selector
        self.prompts = prompts
        self.fanout = fanout
        self.tools = tools
        self.metrics = metrics or Metrics()
        # Where other processes learn that a turn runs here (to route a `cancel` to it).
        self.directory = directory or LocalTurns()
        self.rounds = RoundRunner(config=self._live, selector=selector, tools=tools, publish=self._publish)
        self.running: dict[str, RunningTurn] = {}
        self._locks = ConversationLocks()
        # Callbacks of HTTP requests following a turn that runs here, by turn id.
        self._listeners: dict[str, list[Callable[[protocol.Event], None]]] = {}

    @property
    def config(self) -> Config:
        """The live config, read per use: a reload takes effect from the next read."""
        return self._live.current

    # -- control ------------------------------------------------------------------------

    def check_accepts(self, user_id: str, conversation_id: str | None) -> None:
        """Under the "reject" policy, refuse a send to a conversation of this user with a
        turn running. Another user's turns are never looked at: their conversation must be
        `not_found`, busy or not (the caller checks ownership first)."""
        if self.config.turns.concurrent != "reject" or not conversation_id:
            return
        if any(
            t.request.conversation_id == conversation_id and t.request.user.id == user_id
            for t in self.running.values()
        ):
            raise Conflict("a turn is already running in this conversation")

    def start(self, request: TurnRequest, *, written: list[dict[str, Any]] | None = None) -> RunningTurn:
        """Run the turn as a task of its own; `written` is the answer so far of a turn
        being continued."""
        turn = RunningTurn(request)
        if written:
            turn.transcript.preload(written)
        self.running[request.turn_id] = turn
        # Registered before anything of the turn is published: whoever learns its id can
        # cancel it from any node.
        self.directory.running(
            request.turn_id, user_id=request.user.id,
            conversation_id=request.conversation_id, message_id=turn.message_id,
        )
        turn.task = asyncio.create_task(self._run(turn), name=f"turn {request.turn_id}")
        return turn

    def listen(self, turn_id: str, callback: Callable[[protocol.Event], None]) -> Callable[[], None]:
        """Call `callback` with each event of the turn this process publishes, in order;
        returns the function that stops it. For an HTTP request that follows a turn it
        started here (the socket's sessions hear events through the bus instead)."""
        self._listeners.setdefault(turn_id, []).append(callback)

        def stop() -> None:
            callbacks = self._listeners.get(turn_id, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._listeners.pop(turn_id, None)

        return stop

    def register_running(self, taken: set[str] | None = None) -> None:
        """Tell the directory again about every turn running here (it lost them), except
        those another node has taken over meanwhile (`taken`): they stop here at once,
        writing and sending nothing more, since that node continues them."""
        for turn in list(self.running.values()):
            request = turn.request
            if taken and request.turn_id in taken:
                if turn.task is not None and not turn.finishing:
                    turn.cancel_reason = "taken_over"
                    turn.task.cancel()
                continue
            self.directory.running(
                request.turn_id, user_id=request.user.id,
                conversation_id=request.conversation_id, message_id=turn.message_id,
            )

    async def cancel(self, user_id: str, turn_id: str) -> None:
        """Stop a running turn of this user, here or on the node that runs it. An ended
        turn is fine; an unknown one is not."""
        if self.cancel_here(user_id, turn_id):
            return
        if await self.directory.route_cancel(user_id, turn_id):
            return
        if await self.store.turn_exists(user_id, turn_id):
            return
        raise NotFound("turn not found")

    def cancel_here(self, user_id: str, turn_id: str) -> bool:
        """Stop the user's turn if it runs in this process; False if it does not."""
        turn = self.running.get(turn_id)
        if turn is None or turn.request.user.id != user_id:
            return False
        if turn.task is not None and turn.cancel_reason is None and not turn.finishing:
            turn.cancel_reason = "cancel"
            turn.task.cancel()
        return True

    async def drain(self, grace_s: float) -> None:
        """Shutdown: let running turns finish for `grace_s`, then stop and checkpoint them."""
        tasks = [t.task for t in self.running.values() if t.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace_s)
        # With "continue" the rest is handed over (continued after the restart, or on
        # another node), not cut off.
        reason = "handover" if self.config.turns.on_interrupt == "continue" else "shutdown"
        for turn in list(self.running.values()):
            # A turn already stopping (user cancel) or committing its answer ends by itself.
            if turn.task in pending and turn.cancel_reason is None and not turn.finishing:
                turn.cancel_reason = reason
                turn.task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)

    # -- one turn ------------------------------------------------------------------------

    async def _run(self, turn: RunningTurn) -> None:
        request = turn.request
        with structlog.contextvars.bound_contextvars(
            turn_id=request.turn_id,
            conversation_id=request.conversation_id,
            user_id=request.user.id,
        ):
            try:
                async with self._locks.hold(request.conversation_id):
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
                if not turn.handed_over:  # a turn handed over stays registered to be taken
                    self.directory.ended(request.turn_id)

    async def _execute(self, turn: RunningTurn) -> None:
        request = turn.request
        started = turn.started_at = time.monotonic()
        conversation = await self.store.get_conversation(request.user.id, request.conversation_id)
        template_name = (
            request.template or conversation.template or self.config.prompts.default_template
        )
        template = self.prompts.get(template_name)
        model = self.selector.choose(
            explicit=request.model,
            conversation=conversation.model,
            template_hint=template.meta.model,
            template=template_name,
            role=request.user.role,
            chars=request.chars,
        )
        self._announce(turn, model, template_name)
        selection = Selection(model=model)
        outcome = await self._stream_answer(turn, conversation, template_name, model, selection)
        if outcome.handed_over:
            turn.handed_over = True
            log.info("turn_handed_over", written_chars=len(turn.transcript.text()))
            return
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
        checkpoints = self._checkpointer(turn)
        try:
            async with asyncio.timeout(self.config.turns.deadline_s):
                request = await self._model_request(turn, conversation, template_name, model)
                await self.rounds.run(turn, request, model, selection, outcome, checkpoints)
        except asyncio.CancelledError:
            outcome.status = "cancelled"
            outcome.stored_status = "cancelled" if turn.cancel_reason == "cancel" else "incomplete"
            outcome.handed_over = turn.cancel_reason in ("handover", "taken_over")
        except TimeoutError:
            self._fail(turn, outcome, Timeout("the turn ran past its deadline"))
            # Stored as what it is: a reload shows a failed answer, not an interrupted one.
            outcome.stored_status = "failed"
        except ChinwagError as exc:
            self._fail(turn, outcome, exc)
        except Exception as exc:
            log.exception("turn_failed_unexpectedly")
            self._fail(turn, outcome, Internal(f"internal error: {type(exc).__name__}"))
        turn.finishing = True
        if turn.cancel_reason == "taken_over":
            await checkpoints.settle()
            return outcome  # another node writes this answer now: not one more word from here
        if outcome.handed_over:
            try:
                await checkpoints.save()  # saved whole, for whoever continues it
            except Exception:
                log.exception("turn_checkpoint_failed")
        await checkpoints.settle()
        # Text still held back goes out after the final commit stores it, before `turn.completed`.
        turn.release_held = checkpoints.release
        return outcome

    def _checkpointer(self, turn: RunningTurn) -> Checkpointer:
        settings = self.config.turns
        request = turn.request

        def publish_text(text: str) -> None:
            self._publish(turn, protocol.Delta(turn_id=request.turn_id, text=text))

        durable = settings.stream_checkpoint_ms / 1000 if settings.on_interrupt == "continue" else None
        return Checkpointer(self.store, turn, settings.checkpoint_s, publish_text, durable_s=durable)

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
        if request.instructions:
            system = f"{system}\n\n{request.instructions}" if system else request.instructions
        if request.context is not None:
            messages = list(request.context)  # the client keeps the context: it is sent whole
        else:
            messages = await self._stored_context(turn, system, settings.context_window, settings.max_output_tokens)
        if request.continued:
            messages = [*messages, *await self._written_so_far(turn)]
        return ModelRequest(
            system=system,
            messages=messages,
            tools=[*(ToolSpec(t.name, t.description, t.input_schema) for t in offered), *(request.client_tools or ())],
            max_tokens=settings.max_output_tokens,
        )

    async def _stored_context(
        self, turn: RunningTurn, system: str, context_window: int, max_output_tokens: int
    ) -> list[ChatMessage]:
        """The newest stored history that fits the model's budget."""
        budget = max(context_window - max_output_tokens - estimate_tokens(system), 0)
        window = build_context(await self._history_within(turn, budget), budget=budget)
        if window.dropped:
            log.info(
                "context_trimmed", dropped=window.dropped, kept=len(window.messages),
                dropped_tokens=window.dropped_tokens, budget=budget,
            )
        window.require_some()
        return window.messages

    async def _written_so_far(self, turn: RunningTurn) -> list[ChatMessage]:
        """A continued turn's answer so far, as the model sees it: calls an interruption
        cut off get their result first (run again if the tool is idempotent or the call
        was still waiting for approval, else an error saying so). Ending with the
        assistant's text, it asks the model for the rest; ending with tool results, for
        its next round."""
        cut_off = dangling_calls(turn.transcript.content())
        if cut_off:
            again = [c for c in cut_off if await self._may_run_again(turn, c)]
            if again:
                for block in await self.rounds.run_tools(turn, again):
                    turn.transcript.add_block(block)
            for call in cut_off:
                if call not in again:
                    turn.transcript.add_block(interrupted_result(call))
                    self._publish(turn, protocol.ToolOutput(
                        turn_id=turn.request.turn_id, call_id=call["id"], ok=False,
                        error=INTERRUPTED_CALL,
                    ))
            await self.store.checkpoint_message(turn.message_id, turn.transcript.content())
        turn.round_start = len(turn.transcript.content())
        return expand("assistant", turn.transcript.content())

    async def _may_run_again(self, turn: RunningTurn, call: dict[str, Any]) -> bool:
        handler = self.tools.registry.get(call.get("name", ""))
        if handler is None:
            return False
        if handler.idempotent:
            return True
        # Waiting for the user's yes or no is not running: the call can wait again.
        return await self.tools.approvals.still_waiting(turn.request.user.id, call["id"])

    async def _history_within(self, turn: RunningTurn, budget: int) -> list[protocol.Message]:
        """The messages before this turn's answer, read newest page first until they are
        more than the budget can hold: a long conversation is not read whole every turn.
        Only what came before the answer: sends queued behind this turn are not part of it."""
        request = turn.request
        history: list[protocol.Message] = []
        before: str | None = turn.message_id
        tokens = 0
        while True:
            page, has_more = await self.store.history(
                request.user.id, request.conversation_id, before=before, limit=HISTORY_PAGE
            )
            history = page + history
            tokens += sum(estimate_tokens(message.content) for message in page)
            if not has_more or not page or tokens > budget:
                return history
            before = page[0].id

    def _fail(self, turn: RunningTurn, outcome: TurnOutcome, error: ChinwagError) -> None:
        outcome.status = "failed"
        outcome.stored_status = "incomplete" if turn.transcript else "failed"
        outcome.error = error
        log.warning("turn_failed", code=error.code, error=error.message)

    async def _finish(self, turn: RunningTurn, outcome: TurnOutcome, selection: Selection) -> None:
        """Commit the answer, then tell the clients: `turn.completed` follows the commit."""
        request = turn.request
        content = turn.transcript.content()
        usage: dict[str, int] = {"input_tokens": outcome.usage.input_tokens, "output_tokens": outcome.usage.output_tokens}
        if outcome.usage.estimated:
            usage["estimated"] = True  # some count was estimated: the server did not say
        cost = outcome.cost  # each round at the prices of the model that made it
        self.metrics.turn_ended(
            selection.model, outcome.status, outcome.usage, cost=cost,
            started=turn.started_at, first_token=turn.first_token_at,
        )
        # The run goes in the same commit: the turn is over, and a crash from here on leaves
        # nothing to continue (its answer is no longer streaming).
        await self.store.finish_message(
            turn.message_id,
            content=content,
            status=outcome.stored_status,
            model=selection.model,
            usage=usage,
            cost=cost,
            ends_run=request.turn_id,
        )
        if turn.release_held is not None:
            turn.release_held()
        error = outcome.error
        self._publish(turn, protocol.TurnCompleted(
            turn_id=request.turn_id,
            conversation_id=request.conversation_id,
            message_id=turn.message_id,
            status=outcome.status,  # type: ignore[arg-type]
            stop_reason=outcome.stop_reason,
            model=selection.model,
            fallback_from=selection.fallback_from,
            usage=protocol.TurnUsage(**usage),  # type: ignore[arg-type]  # "estimated" is a bool
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
            continued=request.continued,
        ))

    def _publish(self, turn: RunningTurn, event: protocol.Event) -> None:
        request = turn.request
        self.fanout.turn_event(request.user.id, request.conversation_id, event)
        for callback in list(self._listeners.get(request.turn_id, ())):
            callback(event)


