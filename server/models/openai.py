"""Any OpenAI-compatible chat completions endpoint, through the official `openai` SDK.

Works with OpenAI itself and with local servers that speak the same API (Ollama, vLLM,
llama.cpp's server): set `base_url`. Our canonical blocks map to chat messages:

- the system prompt is the first message, `role: "system"`;
- an assistant's `tool_use` blocks become its `tool_calls` (arguments as a JSON string);
- `tool_result` blocks become `role: "tool"` messages, placed before any text of the same
  user message, because the API wants them right after the assistant's `tool_calls`.

Streamed `tool_calls` deltas are joined per index and yielded as `ToolUse` events when the
choice finishes; `finish_reason` is normalised to our stop reasons.

A stream is complete when it reached `data: [DONE]` or a `finish_reason`: some servers
omit the reason but all send `[DONE]`. A body that ends with neither (cut off, or a 200
with no body at all) is a retryable failure, as a missing `message_stop` is for Anthropic.
The SDK stops at `[DONE]` without telling us, so our client's SSE decoder notes it
(`openai_sse_bridge.py`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai

from server.config.settings import ModelSettings
from server.models.base import (
    CONTINUE_INSTRUCTION,
    ChatMessage,
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
from server.models.openai_sse_bridge import DoneNotingClient, reached_done

STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
}

# Local servers ignore the key, but the SDK refuses to build a client without one.
NO_KEY = "not-needed"


class OpenAIProvider:
    """Streams chat completions; one `AsyncOpenAI` per (base_url, key), reused."""

    def __init__(self) -> None:
        self._clients: ClientCache[openai.AsyncOpenAI] = ClientCache(_make_client)

    async def aclose(self) -> None:
        await self._clients.aclose()

    async def stream(self, model: ModelSettings, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        client = self._clients.get(model.base_url, api_key(model, placeholder=NO_KEY))
        state = _StreamState(model.model_id)
        try:
            # `async with` closes the HTTP response however this generator ends.
            async with await client.chat.completions.create(
                stream=True,
                stream_options={"include_usage": True},
                timeout=openai.Timeout(model.timeout_s, connect=model.connect_timeout_s),
                **request_params(model, request),
            ) as chunks:
                while True:
                    try:
                        chunk = await next_event(chunks, model.idle_timeout_s, model.model_id)
                    except StopAsyncIteration:
                        break
                    for ours in state.feed(chunk):
                        yield ours
                state.done = reached_done(chunks)
        except openai.APIStatusError as exc:
            raise from_status(
                model.model_id, exc.status_code, exc.body, exc.response.headers, _message(exc)
            ) from exc
        except openai.APITimeoutError as exc:
            raise timed_out(model.model_id, exc.message) from exc
        except openai.APIConnectionError as exc:
            raise connection_failed(model.model_id, exc.message) from exc
        except openai.APIError as exc:
            # An error object inside the event stream (no HTTP status of its own).
            raise from_status(model.model_id, 200, {"error": exc.body}, None, _message(exc)) from exc
        except TransportError as exc:
            raise connection_failed(model.model_id, f"{type(exc).__name__}: {exc}") from exc
        for ours in state.finish():
            yield ours


def request_params(model: ModelSettings, request: ModelRequest) -> dict[str, Any]:
    """The chat completions body for `request` (without the streaming options)."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        messages.extend(to_chat_messages(message))
    if continues(request):
        # Chat completions have no prefill: ask, after the partial answer, for the rest.
        messages.append({"role": "user", "content": CONTINUE_INSTRUCTION})
    params: dict[str, Any] = {
        "model": model.model_id,
        "messages": messages,
        "max_tokens": request.max_tokens or model.max_output_tokens,
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.input_schema,
                },
            }
            for t in request.tools
        ]
    return params


def to_chat_messages(message: ChatMessage) -> list[dict[str, Any]]:
    """One canonical message as chat messages (a user message may become several)."""
    text = "".join(b.get("text", "") for b in message.content if b.get("type") == "text")
    if message.role == "assistant":
        calls = [_tool_call(b) for b in message.content if b.get("type") == "tool_use"]
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    results = [_tool_message(b) for b in message.content if b.get("type") == "tool_result"]
    return results + ([{"role": message.role, "content": text}] if text or not results else [])


def _tool_call(block: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": block["id"],
        "type": "function",
        "function": {"name": block["name"], "arguments": json.dumps(block.get("input") or {})},
    }


def _tool_message(block: dict[str, Any]) -> dict[str, Any]:
    content = block.get("content", "")
    if isinstance(content, list):  # Anthropic allows a list of text blocks here
        content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
    elif not isinstance(content, str):
        content = json.dumps(content)
    if block.get("is_error"):
        # The chat API has no error flag on tool messages; say it in the text instead.
        content = f"Error: {content}"
    return {"role": "tool", "tool_call_id": block["tool_use_id"], "content": content}


class _StreamState:
    """Folds chunks into our events; holds partial tool calls, the finish reason, usage."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()
        self.flushed_any = False  # tool calls already yielded
        self.done = False  # the stream reached `data: [DONE]`

    def feed(self, chunk: Any) -> list[ModelEvent]:
        if chunk.usage is not None:
            self.usage = Usage(
                input_tokens=chunk.usage.prompt_tokens or 0,
                output_tokens=chunk.usage.completion_tokens or 0,
            )
        events: list[ModelEvent] = []
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue  # we never ask for n > 1
            delta = choice.delta
            if delta is not None and delta.content:
                events.append(TextDelta(delta.content))
            for call in (delta.tool_calls if delta is not None else None) or []:
                self._add_call(call)
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
                events.extend(self._flush_calls())
        return events

    def finish(self) -> list[ModelEvent]:
        if self.finish_reason is None and not self.done:
            raise cut_short(self.model_id, "stream ended before finish_reason or [DONE]")
        if self.finish_reason is None:
            # Some servers end the stream without a finish_reason; the calls are complete.
            tool_uses = self._flush_calls()
            reason = "tool_use" if tool_uses else "end_turn"
        else:
            tool_uses, reason = [], STOP_REASONS.get(self.finish_reason, self.finish_reason)
        if reason == "end_turn" and self.flushed_any:
            reason = "tool_use"  # Ollama reports "stop" after tool calls
        return [*tool_uses, self.usage, Finish(reason)]

    def _add_call(self, call: Any) -> None:
        index = call.index if call.index is not None else len(self.calls)
        entry = self.calls.setdefault(index, {"id": None, "name": "", "arguments": []})
        if call.id:
            entry["id"] = call.id
        function = call.function
        if function is not None:
            if function.name:
                entry["name"] += function.name
            if function.arguments:
                entry["arguments"].append(function.arguments)

    def _flush_calls(self) -> list[ModelEvent]:
        events: list[ModelEvent] = []
        for index in sorted(self.calls):
            entry = self.calls[index]
            raw = "".join(entry["arguments"])
            try:
                arguments = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError:
                raise ProviderError(
                    f"{self.model_id}: tool {entry['name']!r} arguments are not valid JSON",
                    retryable=False,
                ) from None
            call_id = entry["id"] or f"call_{index}"  # llama.cpp may leave ids out
            events.append(ToolUse(id=call_id, name=entry["name"],
                                  input=arguments if isinstance(arguments, dict) else {}))
        self.calls.clear()
        self.flushed_any = self.flushed_any or bool(events)
        return events


def _make_client(base_url: str | None, key: str) -> openai.AsyncOpenAI:
    return DoneNotingClient(api_key=key, base_url=base_url, max_retries=0)


def _message(exc: openai.APIError) -> str:
    """The API's own words (`error.message`), not the SDK's "Error code: ..." wrapper."""
    # The SDK keeps the inner `error` object as the body of a status error.
    body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else exc.message
