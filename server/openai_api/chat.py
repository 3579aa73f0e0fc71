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
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server import protocol
from server.auth.identity import (
    LOCAL_USER,
    Authenticator,
    Identity,
    StoreAuthenticator,
    bearer_token,
)
from server.auth.keys import KEY_MARK
from server.bus.base import Publisher
from server.errors import BadRequest, ChinwagError, Conflict, NotFound, Unavailable
from server.models.selector import Selector
from server.openai_api.errors import from_exception, openai_error
from server.openai_api.messages import question_from
from server.store.base import Accepted, NewUserMessage, Store, UserRecord
from server.turns.guard import TurnGuard
from server.turns.runner import TurnRunner
from server.turns.state import TurnRequest

CONVERSATION_HEADER = "x-chinwag-conversation"
MAX_IDEMPOTENCY_KEY = 200
FINISH_REASONS = {"end_turn": "stop", "stop": "stop", "max_tokens": "length", "length": "length", "tool_use": "tool_calls"}


class ApiParts(msgspec.Struct, kw_only=True, frozen=True):
    """What the OpenAI-compatible routes use, out of everything the process runs on."""

    authenticator: Authenticator
    store: Store
    turns: TurnRunner
    guard: TurnGuard
    selector: Selector
    fanout: Publisher
    draining: Callable[[], bool]


class Completion(msgspec.Struct, kw_only=True):
    """What a chat completion needs from the request body; other fields are ignored."""

    model: str
    messages: Any
    stream: bool = False
    stream_options: dict[str, Any] | None = None


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
    if parts.draining():
        raise Unavailable("the server is shutting down; retry on another node or later")
    user = (await identify(parts.authenticator, request)).user
    body = _decode(await request.body())
    question = question_from(body.messages)
    parts.selector.settings(body.model)  # an unknown model is a 400 naming it
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    client_msg_id = f"http:{key}" if key else f"http:{secrets.token_urlsafe(16)}"
    await parts.guard.check(user, client_msg_id)
    accepted = await parts.store.accept_user_message(NewUserMessage(
        user_id=user.id, client_msg_id=client_msg_id, text=question.text,
        conversation_id=request.headers.get(CONVERSATION_HEADER) or None,
    ))
    if not accepted.created:
        await _same_request(parts.store, user, accepted, question.text)
    stream = _Follower(parts, user, accepted.turn_id, cancel_on_close=key is None)
    if accepted.created:
        _announce(parts.fanout, user, accepted.conversation_id, accepted.message_id, accepted.turn_id, question.text, client_msg_id)
        parts.turns.start(TurnRequest(
            turn_id=accepted.turn_id, answer_id=accepted.answer_id, chars=len(question.text),
            user=user, conversation_id=accepted.conversation_id, model=body.model,
            context=question.context, instructions=question.instructions,
        ))
    stream.follow(accepted.conversation_id, accepted.answer_id)
    completion_id = "chatcmpl-" + accepted.turn_id.removeprefix("t_")
    headers = {"x-chinwag-conversation": accepted.conversation_id, "x-chinwag-turn": accepted.turn_id}
    include_usage = bool((body.stream_options or {}).get("include_usage"))
    if body.stream:
        chunks = stream.chunks(completion_id, body.model, include_usage)
        return StreamingResponse(chunks, media_type="text/event-stream", headers={**headers, "cache-control": "no-store"})
    return await stream.whole(completion_id, body.model, headers)


async def identify(authenticator: Authenticator, request: Request) -> Identity:
    """The caller, by `Authorization: Bearer <chinwag API key>`. An SDK always sends some
    key: in open mode (no users, no keys, loopback) one that is not a chinwag key is the
    built-in `local` user, as a request without any would be."""
    token = bearer_token(request.headers)
    open_mode = isinstance(authenticator, StoreAuthenticator) and not await authenticator.credentials_required()
    if token and not token.startswith(KEY_MARK) and open_mode:
        return Identity(user=LOCAL_USER, method="local")
    return await authenticator.identify(request.headers, None)


def _decode(raw: bytes) -> Completion:
    try:
        return msgspec.json.decode(raw, type=Completion)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise BadRequest("the request body is not JSON") from None


async def _same_request(store: Store, user: UserRecord, accepted: Accepted, text: str) -> None:
    """A retry joins the first request's turn only if it asks the same question."""
    question = await _message(store, user, accepted.conversation_id, accepted.message_id)
    if question.text != text:
        raise Conflict("this Idempotency-Key was used for a different request")


async def _message(store: Store, user: UserRecord, conversation_id: str, message_id: str) -> protocol.Message:
    for message in await store.context_messages(user.id, conversation_id):
        if message.id == message_id:
            return message
    raise NotFound("message not found")


def _announce(fanout: Publisher, user: UserRecord, conversation_id: str, message_id: str, turn_id: str, text: str, client_msg_id: str) -> None:
    """The user's tabs and bots see the question, as they do for a `send` from the socket."""
    fanout.message_stored(user.id, protocol.Message(
        id=message_id, conversation_id=conversation_id, role="user",
        content=[{"type": "text", "text": text}], text=text, status="complete",
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        client_msg_id=client_msg_id, turn_id=turn_id,
    ), origin=None)


class _Follower:
    """The events of one turn, for one request: live when the turn runs here, else the
    stored answer (a retry that joined a turn already over, or running on another node)."""

    def __init__(self, parts: ApiParts, user: UserRecord, turn_id: str, *, cancel_on_close: bool):
        self.parts = parts
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
            message = await _message(self.parts.store, self.user, self.conversation_id, self.answer_id)
            if message.status != "streaming":
                break
            await asyncio.sleep(0.1)
        if message.text:
            yield protocol.Delta(turn_id=self.turn_id, text=message.text)
        usage = message.usage or {}
        status = {"complete": "complete", "cancelled": "cancelled"}.get(message.status, "failed")
        yield protocol.TurnCompleted(
            turn_id=self.turn_id, conversation_id=message.conversation_id, message_id=message.id,
            status=status, model=message.model or "",  # type: ignore[arg-type]
            usage=protocol.TurnUsage(input_tokens=usage.get("input_tokens", 0), output_tokens=usage.get("output_tokens", 0)),
        )

    async def whole(self, completion_id: str, model: str, headers: dict[str, str]) -> Response:
        text: list[str] = []
        async for event in self._events():
            if isinstance(event, protocol.Delta):
                text.append(event.text)
            elif isinstance(event, protocol.TurnCompleted):
                if event.status == "failed" and event.error is not None and not text:
                    return openai_error(event.error.code, event.error.message)
                return JSONResponse({
                    "id": completion_id, "object": "chat.completion", "created": int(time.time()),
                    "model": event.model or model,
                    "choices": [{
                        "index": 0, "message": {"role": "assistant", "content": "".join(text)},
                        "finish_reason": _finish_reason(event), "logprobs": None,
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
        try:
            yield chunk({"role": "assistant", "content": ""})
            async for event in self._events():
                if isinstance(event, protocol.Delta):
                    yield chunk({"content": event.text})
                elif isinstance(event, protocol.TurnCompleted):
                    ended = True
                    if event.status == "failed" and event.error is not None:
                        error = {"message": event.error.message, "type": "server_error", "code": event.error.code}
                        yield f"data: {json.dumps({'error': error})}\n\n"
                    yield chunk({}, _finish_reason(event))
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


def _finish_reason(event: protocol.TurnCompleted) -> str:
    if event.status != "complete":
        return "stop" if event.status == "cancelled" else "length" if event.stop_reason == "max_tokens" else "stop"
    return FINISH_REASONS.get(event.stop_reason or "end_turn", "stop")


def _usage(event: protocol.TurnCompleted) -> dict[str, int]:
    usage = event.usage or protocol.TurnUsage()
    prompt, completion = usage.input_tokens or 0, usage.output_tokens or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
