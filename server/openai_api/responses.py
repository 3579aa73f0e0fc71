"""The Responses API: `POST /v1/responses`, `GET /v1/responses/{id}` (also as a resumable
stream), `POST /v1/responses/{id}/cancel` and `DELETE /v1/responses/{id}`.

A response is a chinwag turn (its id is the turn's: `resp_X` for `t_X`), stored in the
user's conversations like one sent from the page. `previous_response_id` (or chinwag's
`X-Chinwag-Conversation`, or the API's `conversation`) continues a stored conversation, whose
history is then the context; otherwise the input is the whole context. The events come from
the answer's content (`server.openai_api.response_log`), so a resume with `starting_after`
gets exactly the events after N, whichever node serves it and however the first connection
ended. A tool that asks for approval ends the response with an `mcp_approval_request`; the
next request decides it with an `mcp_approval_response`, and the call runs before its turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server import protocol
from server.auth.identity import Identity
from server.errors import BadRequest, ChinwagError, NotFound, Unavailable
from server.openai_api.errors import from_exception
from server.openai_api.messages import question_from
from server.openai_api.response_input import Approval, read_input
from server.openai_api.response_log import Final, ResponseMeta, build, created_at
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
from server.store.base import NewUserMessage, ResponseRecord, UserRecord
from server.tools.approvals import approval_author
from server.turns.state import TurnRequest, api_request
from server.turns.transcript import dangling_calls

log = structlog.get_logger("chinwag.openai_api")

POLL_S = 0.2  # how often a turn running elsewhere is read from the store
WAIT_AFTER_CANCEL_S = 5.0
# Responses being forgotten (`store: false`) once their turn ends; kept referenced.
_forgetting: set[asyncio.Task[None]] = set()


class CreateResponse(msgspec.Struct, kw_only=True):
    """What `POST /v1/responses` reads; other fields of the API are accepted and ignored."""

    model: str
    input: Any
    instructions: str | None = None
    stream: bool = False
    background: bool = False
    store: bool = True
    previous_response_id: str | None = None
    conversation: Any = None
    tools: Any = None
    metadata: dict[str, str] | None = None


def routes(parts: ApiParts) -> list[Route]:
    def handled(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(parts, request)
            except ChinwagError as exc:
                return from_exception(exc)

        return endpoint

    return [
        Route("/v1/responses", handled(_create), methods=["POST"]),
        Route("/v1/responses/{response_id}", handled(_retrieve), methods=["GET"]),
        Route("/v1/responses/{response_id}", handled(_delete), methods=["DELETE"]),
        Route("/v1/responses/{response_id}/cancel", handled(_cancel), methods=["POST"]),
    ]


def turn_id_of(response_id: str) -> str:
    if not response_id.startswith("resp_") or len(response_id) > 100:
        raise NotFound("response not found")
    return "t_" + response_id.removeprefix("resp_")


def response_id_of(turn_id: str) -> str:
    return "resp_" + turn_id.removeprefix("t_")


# -- create ----------------------------------------------------------------------------


async def _create(parts: ApiParts, request: Request) -> Response:
    identity = await turn_maker(parts, request)
    user = identity.user
    body = decode(await request.body(), CreateResponse)
    parts.selector.settings(body.model)  # an unknown model is a 400 naming it
    if body.background and not body.store:
        raise BadRequest("a background response must be stored: drop store: false", details={"path": "store"})
    given = read_input(body.input)
    previous = await _previous(parts, user, body.previous_response_id)
    conversation_id = _conversation(request, body, previous)
    offered = functions(parts, user, body.tools, nested=False)
    client_msg_id, keyed = idempotent_msg_id(request)
    await parts.guard.check(user, client_msg_id)
    retry = keyed and await parts.store.message_accepted(user.id, client_msg_id)
    approved: list[dict[str, Any]] = []
    if given.approvals and not retry:  # a retry's first request ran the calls already
        approved = await _run_approved(parts, identity, previous, given.approvals)
    messages = given.messages + [{"role": "tool", "tool_call_id": a["call_id"], "content": a["result"]} for a in approved]
    stored_context = conversation_id is not None
    earlier = await _open_calls(parts, user, conversation_id, previous) if stored_context else None
    try:
        question = question_from(messages, earlier_calls=earlier)
    except BadRequest as exc:  # name the input item the client wrote, not our message list
        details = exc.details if isinstance(exc.details, dict) else {}
        if "path" in details:
            raise BadRequest(exc.message, details={**details, "path": given.where(details["path"])}) from None
        raise
    if stored_context and len(question.context) > 1:
        raise BadRequest(
            "a response that continues a stored conversation takes only the new message and"
            " function outputs as input (the history is the conversation's)",
            details={"path": "input"},
        )
    context = None if stored_context else question.context
    instructions = body.instructions or question.instructions
    accepted = await parts.store.accept_user_message(NewUserMessage(
        user_id=user.id, client_msg_id=client_msg_id, text=question.text, content=question.blocks, model=body.model,
        conversation_id=conversation_id,  # a continued turn keeps what the run holds:
        run_request=api_request(context=context, instructions=instructions, client_tools=offered, approvals_in_next_request=True),
    ))
    if not accepted.created and not given.approvals:
        await same_request(parts.store, user, accepted, question.blocks)
    meta = ResponseMeta(
        id=response_id_of(accepted.turn_id), created_at=time.time(), model=body.model,
        instructions=body.instructions, previous_response_id=body.previous_response_id,
        background=body.background, store=body.store, metadata=body.metadata or {},
        tools=body.tools or [], functions=[f.name for f in offered],
        conversation_id=accepted.conversation_id,
        approved=[{k: v for k, v in a.items() if k != "result"} for a in approved],
    )
    record = await parts.store.save_response(ResponseRecord(
        turn_id=accepted.turn_id, user_id=user.id, conversation_id=accepted.conversation_id,
        question_id=accepted.message_id, answer_id=accepted.answer_id, created_at="",
        request=msgspec.to_builtins(meta),
    ))
    if accepted.created:
        announce(parts.fanout, user, accepted, question.blocks, question.text, client_msg_id)
        parts.turns.start(TurnRequest(
            turn_id=accepted.turn_id, answer_id=accepted.answer_id, chars=len(question.text),
            user=user, conversation_id=accepted.conversation_id, model=body.model, context=context,
            instructions=instructions, client_tools=offered, approvals_in_next_request=True,
        ))
    follower = ResponseFollower(parts, user, record)
    headers = turn_headers(accepted)
    if not body.store:
        _forget_when_done(parts, user, record)
    if body.stream:
        cancel_on_close = not body.background and not keyed
        return _sse(follower.events(after=-1, cancel_on_close=cancel_on_close), headers)
    if body.background:
        return JSONResponse(await follower.current(), headers=headers)
    return JSONResponse(await follower.finished(), headers=headers)


async def _previous(parts: ApiParts, user: UserRecord, response_id: str | None) -> ResponseRecord | None:
    if response_id is None:
        return None
    record = await parts.store.get_response(user.id, turn_id_of(response_id))
    if record is None:
        raise NotFound(f"response {response_id!r} not found", details={"path": "previous_response_id"})
    return record


async def _open_calls(
    parts: ApiParts, user: UserRecord, conversation_id: str | None, previous: ResponseRecord | None
) -> set[str]:
    """The calls a continued conversation left for the client to answer: those of the
    previous response's answer, or of the conversation's newest answer."""
    if previous is not None:
        answer = await parts.store.get_message(user.id, previous.answer_id)
        return {call["id"] for call in dangling_calls(answer.content)} if answer else set()
    if conversation_id is None:
        return set()
    newest, _ = await parts.store.history(user.id, conversation_id, before=None, limit=2)
    return {call["id"] for m in newest if m.role == "assistant" for call in dangling_calls(m.content)}


def _conversation(request: Request, body: CreateResponse, previous: ResponseRecord | None) -> str | None:
    """The stored conversation the response continues, if any (all that name one agree)."""
    named = body.conversation.get("id") if isinstance(body.conversation, dict) else body.conversation
    if named is not None and not isinstance(named, str):
        raise BadRequest("conversation must be an id or {\"id\": ...}", details={"path": "conversation"})
    candidates = {c for c in (named, request.headers.get(CONVERSATION_HEADER), previous and previous.conversation_id) if c}
    if len(candidates) > 1:
        raise BadRequest("previous_response_id, conversation and X-Chinwag-Conversation name different conversations")
    return candidates.pop() if candidates else None


async def _run_approved(
    parts: ApiParts, identity: Identity, previous: ResponseRecord | None, approvals: list[Approval]
) -> list[dict[str, Any]]:
    """Decide each call the previous response asked about, and run the allowed ones: their
    results open the new turn."""
    if previous is None:
        raise BadRequest("an mcp_approval_response needs the previous_response_id that asked", details={"path": "previous_response_id"})
    user = identity.user
    author = approval_author(
        user_id=user.id, key_id=identity.key_id, login_id=identity.login_id,
        approver=parts.turns.config.tools.approver,
    )
    tools = parts.turns.tools
    done: list[dict[str, Any]] = []
    for approval in approvals:
        record = await tools.approvals.answer(user.id, approval.call_id, "allow" if approval.approve else "deny", decided_by=author)
        if record.turn_id != previous.turn_id:
            raise BadRequest(f"{approval.call_id!r} is not an approval request of the previous response", details={"path": "input"})
        outcome = await tools.run_approved(user, approval.call_id)
        block = outcome.as_block(approval.call_id)
        done.append({
            "call_id": approval.call_id, "name": record.name, "arguments": json.dumps(record.args, ensure_ascii=False),
            "output": block["content"] if outcome.ok else None, "error": None if outcome.ok else outcome.error,
            "result": block["content"],
        })
        log.info("api_approval", call_id=approval.call_id, tool=record.name, decision=record.decision)
    return done


def _forget_when_done(parts: ApiParts, user: UserRecord, record: ResponseRecord) -> None:
    """`store: false`: the turn is deleted once it has ended (its answer delivered)."""

    async def forget() -> None:
        with contextlib.suppress(ChinwagError):
            await ResponseFollower(parts, user, record).finished()
        await parts.store.delete_response(user.id, record.turn_id)

    task = asyncio.create_task(forget())
    _forgetting.add(task)
    task.add_done_callback(_forgetting.discard)


# -- retrieve, cancel, delete ---------------------------------------------------------------


async def _record(parts: ApiParts, request: Request) -> tuple[UserRecord, ResponseRecord]:
    user = (await identify(parts.authenticator, request)).user
    record = await parts.store.get_response(user.id, turn_id_of(request.path_params["response_id"]))
    if record is None or not record.request.get("store", True):
        raise NotFound("response not found")
    return user, record


async def _retrieve(parts: ApiParts, request: Request) -> Response:
    user, record = await _record(parts, request)
    follower = ResponseFollower(parts, user, record)
    if request.query_params.get("stream") not in ("true", "1"):
        return JSONResponse(await follower.current())
    raw = request.query_params.get("starting_after", "-1")
    try:
        after = int(raw)
    except ValueError:
        raise BadRequest(f"starting_after must be an integer, not {raw!r}", details={"param": "starting_after"}) from None
    return _sse(follower.events(after=after, cancel_on_close=False), {})


async def _cancel(parts: ApiParts, request: Request) -> Response:
    """Stop the turn (from any node), keep the partial answer; cancelling an ended
    response changes nothing and returns it as it is."""
    user, record = await _record(parts, request)
    follower = ResponseFollower(parts, user, record)
    return JSONResponse(await follower.stop() or await follower.current())


async def _delete(parts: ApiParts, request: Request) -> Response:
    """Delete the response and its turn (question and answer) from the conversation; a
    response still running is cancelled first."""
    user, record = await _record(parts, request)
    answer = await stored_message(parts.store, user, record.answer_id)
    if answer.status == "streaming":
        await ResponseFollower(parts, user, record).stop()
    await parts.store.delete_response(user.id, record.turn_id)
    return JSONResponse({"id": response_id_of(record.turn_id), "object": "response.deleted", "deleted": True})


# -- following a response ------------------------------------------------------------------


def _sse(events: AsyncIterator[dict[str, Any]], headers: dict[str, str]) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        async for event in events:
            yield f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream", headers={**headers, "cache-control": "no-store"})


class ResponseFollower:
    """One response's events and state, for one request: from the running turn when it runs
    in this process, else from the store (another node's turn, or one that ended)."""

    def __init__(self, parts: ApiParts, user: UserRecord, record: ResponseRecord):
        self.parts = parts
        self.user = user
        self.record = record
        self.meta = msgspec.convert(record.request, ResponseMeta)
        self.meta.created_at = created_at(record.created_at)
        self.meta.id = response_id_of(record.turn_id)
        self._error: dict[str, str] | None = None  # a live turn's error, more precise than the store's

    async def current(self) -> dict[str, Any]:
        """The response object as it stands now."""
        content, final = await self._stored()
        return (await self._built(content, final))[1]

    async def finished(self) -> dict[str, Any]:
        """The response object once its turn has ended."""
        async for content, final in self._snapshots():
            if final is not None:
                return (await self._built(content, final))[1]
        raise Unavailable("the response ended without an answer")

    async def stop(self) -> dict[str, Any] | None:
        """Cancel the turn (wherever it runs) and wait, up to `WAIT_AFTER_CANCEL_S`, for
        it to end: the response object then, or None if it had not ended by that time."""
        await self.parts.turns.cancel(self.user.id, self.record.turn_id)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT_AFTER_CANCEL_S):
                return await self.finished()
        return None

    async def events(self, *, after: int, cancel_on_close: bool) -> AsyncIterator[dict[str, Any]]:
        """Every event numbered above `after`, exactly once, then live ones to the end."""
        sent = max(after + 1, 0)
        ended = False
        try:
            async for content, final in self._snapshots():
                events, _ = await self._built(content, final)
                for event in events[sent:]:
                    yield event
                sent = max(sent, len(events))
                if final is not None:
                    ended = True
                    return
        finally:
            if not ended and cancel_on_close:
                # The client closed a stream it did not ask to keep: stop the turn.
                with contextlib.suppress(ChinwagError):
                    await self.parts.turns.cancel(self.user.id, self.record.turn_id)

    async def _built(
        self, content: list[dict[str, Any]], final: Final | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        asked: set[str] = set()
        if final is not None:  # a call left without a result: did it ask for approval?
            for call in dangling_calls(content):
                if await self.parts.store.get_approval(self.user.id, call["id"]) is not None:
                    asked.add(call["id"])
        return build(self.meta, content, final, asked.__contains__)

    async def _snapshots(self) -> AsyncIterator[tuple[list[dict[str, Any]], Final | None]]:
        """The answer's content each time it may have grown, ending with its final state."""
        turn_id = self.record.turn_id
        heard_end = False
        while True:
            running = self.parts.turns.running.get(turn_id)
            if heard_end or running is None or running.request.user.id != self.user.id:
                content, final = await self._stored()
                yield content, final
                if final is not None:
                    return
                await asyncio.sleep(POLL_S)
                continue
            heard: asyncio.Queue[protocol.Event] = asyncio.Queue()
            stop = self.parts.turns.listen(turn_id, heard.put_nowait)
            try:
                yield running.published_content(), None
                while turn_id in self.parts.turns.running:
                    try:
                        event = await asyncio.wait_for(heard.get(), timeout=1.0)
                    except TimeoutError:
                        continue  # the turn may have ended between the look and the listen
                    if isinstance(event, protocol.TurnCompleted):
                        if event.error is not None:
                            self._error = {"code": event.error.code, "message": event.error.message}
                        break  # committed before it was told: the store has the end
                    yield running.published_content(), None
            finally:
                stop()
            heard_end = True

    async def _stored(self) -> tuple[list[dict[str, Any]], Final | None]:
        message = await self.parts.store.get_message(self.user.id, self.record.answer_id)
        if message is None:
            raise NotFound("response not found")
        if message.status == "streaming":
            return list(message.content), None
        return list(message.content), Final(
            status=message.status, usage=dict(message.usage or {}), error=self._error,
            completed_at=time.time(),
        )
