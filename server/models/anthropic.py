"""The Anthropic Messages API, streamed through the official `anthropic` SDK.

Our canonical content blocks are the Messages API's own, so requests pass through almost
unchanged. Stream events map back to ours: `text_delta` → `TextDelta`; a `tool_use` block's
`input_json_delta` pieces are joined per block index and parsed at `content_block_stop`
into one `ToolUse`; usage from `message_start` → an early `Usage` (the input tokens are
known, and billed, before any text), `message_delta`'s → the final `Usage`; the final
`stop_reason` → `Finish`.

SDK retries are off (`max_retries=0`): the selector decides about retries and fallback.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from server.config.settings import ModelSettings
from server.models.base import (
    Finish,
    ModelEvent,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolUse,
    Usage,
    continues,
)
from server.models.common import ClientCache, TransportError, api_key, next_event
from server.models.errors import connection_failed, cut_short, from_status, timed_out


class AnthropicProvider:
    """Streams Anthropic models; one `AsyncAnthropic` per (base_url, key), reused."""

    def __init__(self) -> None:
        self._clients: ClientCache[anthropic.AsyncAnthropic] = ClientCache(_make_client)

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def stream(self, model: ModelSettings, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        client = self._clients.get(model.base_url, api_key(model, fallback_env="ANTHROPIC_API_KEY"))
        state = _StreamState(model.model_id)
        # The stored partial answer keeps the white space trimmed from the prefill.
        skip_space = prefill_ends_in_space(request)
        try:
            # `async with` closes the HTTP response however this generator ends: finished,
            # failed, cancelled, or closed by the consumer.
            async with await client.messages.create(
                stream=True, timeout=_timeout(model), **request_params(model, request)
            ) as events:
                while True:
                    try:
                        event = await next_event(events, model.idle_timeout_s, model.model_id)
                    except StopAsyncIteration:
                        break
                    for ours in state.feed(event):
                        if skip_space and isinstance(ours, TextDelta):
                            ours = TextDelta(ours.text.lstrip())
                            skip_space = not ours.text
                            if not ours.text:
                                continue
                        yield ours
        except anthropic.APIStatusError as exc:
            raise _status_error(model, exc) from exc
        except anthropic.APITimeoutError as exc:
            raise timed_out(model.model_id, str(exc.message)) from exc
        except anthropic.APIConnectionError as exc:
            raise connection_failed(model.model_id, str(exc.message)) from exc
        except TransportError as exc:
            # A body read that fails mid-stream surfaces as the transport's own exception.
            raise connection_failed(model.model_id, f"{type(exc).__name__}: {exc}") from exc
        for ours in state.finish():
            yield ours


def request_params(model: ModelSettings, request: ModelRequest) -> dict[str, Any]:
    """The Messages API body for `request` (without `stream`)."""
    messages = [
        {"role": message.role, "content": [dict(block) for block in message.content]}
        for message in request.messages
    ]
    if continues(request):
        _trim_prefill(messages[-1])
    params: dict[str, Any] = {
        "model": model.model_id,
        "max_tokens": request.max_tokens or model.max_output_tokens,
        "messages": messages,
    }
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in request.tools
        ]
    return params


def _trim_prefill(message: dict[str, Any]) -> None:
    """A partial answer to continue is a prefill, which the API refuses to end in white
    space: trim it (the continuation's first white space is dropped in its place)."""
    blocks = message["content"]
    if blocks and blocks[-1].get("type") == "text":
        blocks[-1]["text"] = blocks[-1]["text"].rstrip()
        if not blocks[-1]["text"]:
            blocks.pop()


def prefill_ends_in_space(request: ModelRequest) -> bool:
    if not continues(request):
        return False
    blocks = request.messages[-1].content
    return bool(blocks) and blocks[-1].get("type") == "text" and blocks[-1]["text"][-1:].isspace()


class _StreamState:
    """Folds raw stream events into ours; holds partial tool input and usage counts."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.tools: dict[int, tuple[str, str, list[str]]] = {}  # index → (id, name, json parts)
        self.input_tokens = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, event: Any) -> list[ModelEvent]:
        kind = event.type
        if kind == "message_start":
            self._count(event.message.usage)
            return [Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)]
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.tools[event.index] = (block.id, block.name, [])
        elif kind == "content_block_delta":
            return self._delta(event.index, event.delta)
        elif kind == "content_block_stop":
            return self._tool_done(event.index)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self._count(event.usage)
        elif kind == "message_stop":
            self.stopped = True
        return []

    def finish(self) -> list[ModelEvent]:
        if not self.stopped:
            # The body ended without `message_stop`: the answer is cut short.
            raise cut_short(self.model_id, "stream ended before message_stop")
        return [
            Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens),
            Finish(self.stop_reason or "end_turn"),
        ]

    def _delta(self, index: int, delta: Any) -> list[ModelEvent]:
        if delta.type == "text_delta":
            return [TextDelta(delta.text)] if delta.text else []
        if delta.type == "input_json_delta" and index in self.tools:
            self.tools[index][2].append(delta.partial_json)
        return []  # thinking and signature deltas are not part of the answer

    def _tool_done(self, index: int) -> list[ModelEvent]:
        if index not in self.tools:
            return []
        call_id, name, parts = self.tools.pop(index)
        raw = "".join(parts)
        try:
            arguments = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError:
            raise ProviderError(
                f"{self.model_id}: tool {name!r} input is not valid JSON", retryable=False
            ) from None
        return [ToolUse(id=call_id, name=name, input=arguments if isinstance(arguments, dict) else {})]

    def _count(self, usage: Any) -> None:
        # Counts are cumulative: message_delta repeats and supersedes message_start's.
        if usage is None:
            return
        if getattr(usage, "input_tokens", None) is not None:
            self.input_tokens = usage.input_tokens
        if getattr(usage, "output_tokens", None) is not None:
            self.output_tokens = usage.output_tokens


def _make_client(base_url: str | None, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0)


def _timeout(model: ModelSettings) -> anthropic.Timeout:
    # `read` bounds the wait for response headers and every body read; the idle timer in
    # `next_event` bounds the wait between stream events (pings do not reset it).
    return anthropic.Timeout(model.timeout_s, connect=model.connect_timeout_s)


def _status_error(model: ModelSettings, exc: anthropic.APIStatusError) -> ProviderError:
    message = exc.api_message or exc.message
    return from_status(model.model_id, exc.status_code, exc.body, exc.response.headers, message)
