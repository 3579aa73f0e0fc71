"""`GET /v1/models` and `POST /v1/chat/completions`, streaming (SSE) and not.

A completion is a chinwag turn like one sent over the socket: the user's message is
stored (in a new conversation, or the one `X-Chinwag-Conversation` names), the turn guard
counts it, chinwag's own tools run inside it, the answer is stored, and the user's other
tabs see it live. Only the context differs: the request's messages are the context.

`Idempotency-Key` makes a retried POST join the turn the first one started (the same
guarantee as `client_msg_id`); such a request's turn also outlives its connection, so the
retry finds it. Without the key, a client that closes the connection (a stop button)
cancels the turn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server import protocol
from server.errors import ChinwagError, Unavailable
from server.openai_api.errors import from_exception, openai_error
from server.openai_api.messages import question_from
from server.openai_api.turns import (
    CONVERSATION_HEADER,
    ApiParts,
    announce,
    decode,
    functions,
    idempotent_msg_id,
    identify,
    same_request,
    stored_message,
    turn_headers,
    turn_maker,
)
from server.store.base import NewUserMessage, UserRecord
from server.turns.state import TurnRequest, api_request
from server.turns.transcript import dangling_calls

FINISH_REASONS = {"end_turn": "stop", "stop": "stop", "max_tokens": "length", "length": "length", "tool_use": "tool_calls"}


class Completion(msgspec.Struct, kw_only=True):
    """What a chat completion needs from the request body; other fields are ignored."""

    model: str
    messages: Any
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    tools: Any = None


def routes(parts: ApiParts) -> list[Route]:
    async def models(request: Request) -> Response:
        try:
            await identify(parts.authenticator, request)
        except ChinwagError as exc:
            return from_exception(exc)
        created = int(time.time())
        data = [{"id": name, "object": "model", "created": created, "owned_by": "chinwag"} for name in parts.selector.model_names()]
        return JSONResponse({"object": "list", "data": data})

    async def chat_completions(request: Request) -> Response:
        try:
            return await _complete(parts, request)
        except ChinwagError as exc:
            return from_exception(exc)

    return [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    ]


async def _complete(parts: ApiParts, request: Request) -> Response:
    user = (await turn_maker(parts, request)).user
    body = decode(await request.body(), Completion)
    question = question_from(body.messages)
    parts.selector.settings(body.model)  # an unknown model is a 400 naming it
    offered = functions(parts, user, body.tools, nested=True)
    client_msg_id, keyed = idempotent_msg_id(request)
    await parts.guard.check(user, client_msg_id)
    accepted = await parts.store.accept_user_message(NewUserMessage(
        user_id=user.id, client_msg_id=client_msg_id, text=question.text, content=question.blocks, model=body.model,
        # A turn interrupted by a crash continues with the client's context, not the store's.
        run_request=api_request(context=question.context, instructions=question.instructions, client_tools=offered),
        conversation_id=request.headers.get(CONVERSATION_HEADER) or None,
    ))
    if not accepted.created:
        await same_request(parts.store, user, accepted, question.blocks)
    stream = _Follower(parts, user, accepted.turn_id, cancel_on_close=not keyed, functions={f.name for f in offered})
    if accepted.created:
        announce(parts.fanout, user, accepted, question.blocks, question.text, client_msg_id)
        parts.turns.start(TurnRequest(
            turn_id=accepted.turn_id, answer_id=accepted.answer_id, chars=len(question.text),
            user=user, conversation_id=accepted.conversation_id, model=body.model,
            context=question.context, instructions=question.instructions, client_tools=offered,
        ))
    stream.follow(accepted.conversation_id, accepted.answer_id)
    completion_id = "chatcmpl-" + accepted.turn_id.removeprefix("t_")
    headers = turn_headers(accepted)
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    if body.stream:
        chunks = stream.chunks(completion_id, body.model, include_usage)
        return StreamingResponse(chunks, media_type="text/event-stream", headers={**headers, "cache-control": "no-store"})
    return await stream.whole(completion_id, body.model, headers)


class _Follower:
    """The events of one turn, for one request: live when the turn runs here, else the
    stored answer (a retry that joined a turn already over, or running on another node)."""

    def __init__(
        self, parts: ApiParts, user: UserRecord, turn_id: str, *, cancel_on_close: bool, functions: set[str]
    ):
        self.parts = parts
        self.functions = functions  # the client's own tools: their calls go back to it
        self.user = user
        self.turn_id = turn_id
        self.cancel_on_close = cancel_on_close
        self.events: asyncio.Queue[protocol.Event] = asyncio.Queue()
        self._stop: Callable[[], None] | None = None
        self.answer_id = self.conversation_id = ""

    def follow(self, conversation_id: str, answer_id: str) -> None:
        self.conversation_id = conversation_id
        self.answer_id = answer_id
        if self.turn_id in self.parts.turns.running:
            self._stop = self.parts.turns.listen(self.turn_id, self.events.put_nowait)

    async def _events(self) -> AsyncIterator[protocol.Event]:
        """Deltas and tool calls, then one `turn.completed`."""
        if self._stop is None:
            async for event in self._stored():
                yield event
            return
        try:
            while True:
                event = await self.events.get()
                yield event
                if isinstance(event, protocol.TurnCompleted):
                    return
        finally:
            self._stop()

    async def _stored(self) -> AsyncIterator[protocol.Event]:
        """A turn not running here: its stored answer, once it is no longer streaming."""
        while True:
            message = await stored_message(self.parts.store, self.user, self.answer_id)
            if message.status != "streaming":
                break
            await asyncio.sleep(0.1)
        if message.text:
            yield protocol.Delta(turn_id=self.turn_id, text=message.text)
        for call in dangling_calls(message.content):
            if call.get("name") in self.functions:
                yield protocol.ToolCallEvent(
                    turn_id=self.turn_id, call_id=call["id"], name=call["name"], args=call.get("input") or {},
                    needs_approval=False,
                )
        usage = message.usage or {}
        status = {"complete": "complete", "cancelled": "cancelled"}.get(message.status, "failed")
        yield protocol.TurnCompleted(
            turn_id=self.turn_id, conversation_id=message.conversation_id, message_id=message.id,
            status=status, model=message.model or "",  # type: ignore[arg-type]
            usage=protocol.TurnUsage(input_tokens=usage.get("input_tokens", 0), output_tokens=usage.get("output_tokens", 0)),
        )

    async def whole(self, completion_id: str, model: str, headers: dict[str, str]) -> Response:
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        async for event in self._events():
            if isinstance(event, protocol.Delta):
                text.append(event.text)
            elif isinstance(event, protocol.ToolCallEvent) and event.name in self.functions:
                calls.append(_tool_call(event))
            elif isinstance(event, protocol.TurnCompleted):
                if event.status == "failed" and event.error is not None and not text:
                    return openai_error(event.error.code, event.error.message)
                message: dict[str, Any] = {"role": "assistant", "content": "".join(text) or (None if calls else "")}
                if calls:
                    message["tool_calls"] = calls
                return JSONResponse({
                    "id": completion_id, "object": "chat.completion", "created": int(time.time()),
                    "model": event.model or model,
                    "choices": [{
                        "index": 0, "message": message,
                        "finish_reason": _finish_reason(event, bool(calls)), "logprobs": None,
                    }],
                    "usage": _usage(event),
                }, headers=headers)
        raise Unavailable("the turn ended without an answer")

    async def chunks(self, completion_id: str, model: str, include_usage: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            body = {
                "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra,
            }
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        ended = False
        calls = 0
        try:
            yield chunk({"role": "assistant", "content": ""})
            async for event in self._events():
                if isinstance(event, protocol.Delta):
                    yield chunk({"content": event.text})
                elif isinstance(event, protocol.ToolCallEvent) and event.name in self.functions:
                    yield chunk({"tool_calls": [{"index": calls, **_tool_call(event)}]})
                    calls += 1
                elif isinstance(event, protocol.TurnCompleted):
                    ended = True
                    if event.status == "failed" and event.error is not None:
                        error = {"message": event.error.message, "type": "server_error", "code": event.error.code}
                        yield f"data: {json.dumps({'error': error})}\n\n"
                    yield chunk({}, _finish_reason(event, calls > 0))
                    if include_usage:
                        body = {
                            "id": completion_id, "object": "chat.completion.chunk", "created": created,
                            "model": model, "choices": [], "usage": _usage(event),
                        }
                        yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            if not ended and self.cancel_on_close:
                # The client went away (a stop button closes the request): stop the turn.
                await self.parts.turns.cancel(self.user.id, self.turn_id)


def _tool_call(event: protocol.ToolCallEvent) -> dict[str, Any]:
    arguments = json.dumps(event.args, ensure_ascii=False)
    return {"id": event.call_id, "type": "function", "function": {"name": event.name, "arguments": arguments}}


def _finish_reason(event: protocol.TurnCompleted, called: bool = False) -> str:
    if called and event.status == "complete":
        return "tool_calls"
    if event.status != "complete":
        return "stop" if event.status == "cancelled" else "length" if event.stop_reason == "max_tokens" else "stop"
    return FINISH_REASONS.get(event.stop_reason or "end_turn", "stop")


def _usage(event: protocol.TurnCompleted) -> dict[str, int]:
    usage = event.usage or protocol.TurnUsage()
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
