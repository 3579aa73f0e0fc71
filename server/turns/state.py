"""The state of one turn, shared by the turn runner and its rounds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec

from server.errors import ChinwagError
from server.models.base import ChatMessage, ToolSpec, Usage
from server.store.base import UserRecord
from server.turns.transcript import Transcript


class TurnRequest(msgspec.Struct, kw_only=True):
    turn_id: str
    answer_id: str  # the assistant message reserved with the user message
    chars: int = 0  # length of the user's text, for routing rules
    user: UserRecord
    conversation_id: str
    model: str | None = None
    template: str | None = None
    variables: dict[str, str] | None = None
    # An interrupted turn taken up again: its answer so far is in the store.
    continued: bool = False
    # The client's own context (the OpenAI-compatible API: the request's messages are the
    # context), used instead of the stored history; `instructions` follow the template's
    # system prompt.
    context: list[ChatMessage] | None = None
    instructions: str | None = None
    # Tools the client runs itself (the API's `tools`): a call to one ends the turn, and
    # the client sends its result in its next request.
    client_tools: list[ToolSpec] | None = None
    # A tool that asks for approval does not wait inside the turn: the turn ends with the
    # call stored as waiting, and the client's next request decides it (Responses API).
    approvals_in_next_request: bool = False

    def is_client_tool(self, name: str) -> bool:
        return any(tool.name == name for tool in self.client_tools or ())

    def run_request(self) -> dict[str, Any] | None:
        """What the turn's run keeps of it beyond a socket turn (`RunRecord.request`), so
        that a continued turn gets it back (`api_fields`); None for a socket turn."""
        return api_request(
            context=self.context, instructions=self.instructions,
            client_tools=self.client_tools,
            approvals_in_next_request=self.approvals_in_next_request,
        )


class _ApiFields(msgspec.Struct, kw_only=True):
    """A run's `request`: the `TurnRequest` fields an OpenAI-compatible API turn sets."""

    context: list[ChatMessage] | None = None
    instructions: str | None = None
    client_tools: list[ToolSpec] = []
    approvals_in_next_request: bool = False


def api_request(
    *,
    context: list[ChatMessage] | None = None,
    instructions: str | None = None,
    client_tools: list[ToolSpec] | None = None,
    approvals_in_next_request: bool = False,
) -> dict[str, Any] | None:
    """These `TurnRequest` fields as a run's `request` (a JSON object), or None when none
    is set (a socket turn). For the accept, which commits the run before the turn exists."""
    if context is None and not instructions and not client_tools and not approvals_in_next_request:
        return None
    fields = _ApiFields(
        context=context, instructions=instructions or None, client_tools=client_tools or [],
        approvals_in_next_request=approvals_in_next_request,
    )
    encoded: dict[str, Any] = msgspec.to_builtins(fields)
    return encoded


def api_fields(request: dict[str, Any] | None) -> dict[str, Any]:
    """The `TurnRequest` keyword arguments kept in a run's `request` (empty for None)."""
    if request is None:
        return {}
    return msgspec.structs.asdict(msgspec.convert(request, _ApiFields))


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
        self.handed_over = False  # stopped by a shutdown, to be continued elsewhere or later
        self.started_at: float | None = None  # time.monotonic(), for metrics
        self.first_token_at: float | None = None
        # Characters of text in the transcript not yet published (held until saved, with
        # `turns.on_interrupt = "continue"`): they are the transcript's last characters.
        self.held_chars = 0
        # Sends that held text once the final commit has stored it (set by the runner).
        self.release_held: Callable[[], None] | None = None

    def published_content(self) -> list[dict[str, Any]]:
        """The answer as published so far: the transcript without the text held back,
        nor anything after where that text begins (it was not sent either)."""
        content = self.transcript.content()
        held = self.held_chars
        for index in range(len(content) - 1, -1, -1):
            if held <= 0:
                return content[: index + 1]
            block = content[index]
            if block.get("type") == "text":
                text = block["text"]
                if len(text) > held:
                    return [*content[:index], {"type": "text", "text": text[: len(text) - held]}]
                held -= len(text)
        return []


class TurnOutcome(msgspec.Struct, kw_only=True):
    status: str = "complete"  # wire status: complete | cancelled | failed
    stored_status: str = "complete"  # message status: also "incomplete"
    stop_reason: str | None = None
    usage: Usage = Usage()  # summed over the turn's calls (see `Selection.charges`)
    cost: float = 0.0  # each call's usage at its own model's prices
    error: ChinwagError | None = None
    # Stopped by a shutdown that hands it over: its answer stays `streaming`, to be
    # continued after the restart or on another node (`turns.on_interrupt = "continue"`).
    handed_over: bool = False
