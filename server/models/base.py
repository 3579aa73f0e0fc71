"""The contract every model goes through: one request in, a stream of events out.

Conversation content uses one canonical block format everywhere (store, context, providers),
modelled on the Anthropic Messages API because it is the richest of the three:

    {"type": "text", "text": "..."}
    {"type": "tool_use", "id": "call_1", "name": "search", "input": {...}}
    {"type": "tool_result", "tool_use_id": "call_1", "content": "...", "is_error": false}

A `ChatMessage` has role "user" or "assistant"; tool results travel in a "user" message as
the Anthropic API expects, and the OpenAI provider maps them to its "tool" role.

Cancellation: the turn runner cancels the task that iterates a provider's stream. A provider
must close its HTTP response when that happens (an `async with` around the SDK stream does),
so that the upstream call really stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import msgspec

from server.config.settings import ModelSettings
from server.errors import BadRequest, ModelUnavailable, TooLarge


class ChatMessage(msgspec.Struct, frozen=True):
    role: str  # "user" | "assistant"
    content: list[dict[str, Any]]


class ToolSpec(msgspec.Struct, frozen=True):
    """A tool offered to the model: its name, description and JSON Schema of its arguments."""

    name: str
    description: str
    input_schema: dict[str, Any]


class ModelRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`messages` ending with an assistant message asks the model to continue that
    partial answer (a turn continued after an interruption): each provider says so in its
    own way (prefill where the API has it, an instruction where it does not)."""

    system: str
    messages: list[ChatMessage]
    tools: list[ToolSpec] = []
    max_tokens: int | None = None  # None: the model's configured max_output_tokens


# -- events a provider yields, in this order: deltas and tool uses, then usage, then finish --
# A provider may yield `Usage` early too (Anthropic's `message_start` says the input tokens
# before any text): each `Usage` holds the call's counts so far and supersedes the one before.
# A stream that ends without `Finish` was cut short; providers raise instead of ending so.


# What a provider without prefill says after the partial answer it is asked to continue.
CONTINUE_INSTRUCTION = (
    "Your previous answer was cut off. Continue it exactly where it stops, without repeating"
    " anything already written and without any preamble."
)


def continues(request: ModelRequest) -> bool:
    """Whether the request asks to continue the assistant's partial answer."""
    return bool(request.messages) and request.messages[-1].role == "assistant"


class TextDelta(msgspec.Struct, frozen=True):
    text: str


class ToolUse(msgspec.Struct, frozen=True):
    """A complete tool call: the provider assembles partial JSON before yielding it."""

    id: str
    name: str
    input: dict[str, Any]


class Usage(msgspec.Struct, frozen=True):
    """Token counts of one call (or of a turn, summed). `estimated` is True when some count
    was estimated from the text because the server did not report it (yet)."""

    input_tokens: int = 0
    output_tokens: int = 0
    estimated: bool = False

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.estimated or other.estimated,
        )


class Finish(msgspec.Struct, frozen=True):
    # Normalised: "end_turn" | "tool_use" | "max_tokens" | "stop_sequence" | provider's own.
    stop_reason: str


ModelEvent = TextDelta | ToolUse | Usage | Finish


class Provider(Protocol):
    """A model API. `stream` raises `ProviderError` for failures it can classify."""

    def stream(self, model: ModelSettings, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        ...


class ProviderError(ModelUnavailable):
    """A failed model call, classified so the selector can decide to retry or fall back.

    `retryable` is True for 429 (except spend limits), 5xx, 529 overloaded, timeouts and
    connection errors; False for 400, 401, 403, 404, 413 and anything else a retry cannot fix.
    `misconfigured` marks a model that cannot work until an operator acts (401, 403, 404, a
    missing key variable): not retried, but the selector falls back and opens its circuit.

    `message` is for users: our own words, never the provider's text (which can echo a
    masked key or the request). `detail` is the provider's full text, for the operator's log.
    `code` is the wire code: `bad_request` (400, 422) and `too_large` (413) when the request
    itself was at fault, else `model_unavailable`.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
        misconfigured: bool = False,
        detail: str | None = None,
    ):
        super().__init__(message, retry_after=retry_after)
        self.retryable = retryable
        self.status = status
        self.misconfigured = misconfigured
        self.detail = detail if detail is not None else message
        if not retryable and not misconfigured:
            self.code = REQUEST_FAULT_CODES.get(status or 0, self.code)


# Statuses that say the request itself is wrong, and the wire code each becomes.
REQUEST_FAULT_CODES = {400: BadRequest.code, 422: BadRequest.code, 413: TooLarge.code}
