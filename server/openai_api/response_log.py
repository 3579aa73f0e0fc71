"""A response's stream events, as a function of its answer's content.

The Responses API numbers every event of a response (`sequence_number`) and lets a client
resume after the last one it saw (`starting_after`). chinwag makes that hold whoever serves
the resume (the node running the turn, another node, the same node after the turn ended)
by deriving the events from the answer's content alone, never from when deltas happened
to arrive: the same content always yields the same events, and more content only appends
events. So events are cut from the text by a rule that looks only at the text (a piece
ends where a word does), held back while the last piece may still grow, and a tool call
becomes an item only once its result is in.

The content is chinwag's block list (`server.turns.transcript`): text, `tool_use` and
`tool_result` blocks. A call to one of the client's functions becomes a `function_call`
item (the client runs it); chinwag's own tools are `mcp_call` items of the server label
`chinwag`; a call left waiting for approval at the end is an `mcp_approval_request`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

SERVER_LABEL = "chinwag"
# A text piece ends at the start of a word, or at this many characters (a long token).
MAX_PIECE = 64


class ResponseMeta(msgspec.Struct, kw_only=True):
    """What a response shows besides its output: from its request and its turn."""

    id: str
    created_at: float
    model: str
    instructions: str | None = None
    previous_response_id: str | None = None
    background: bool = False
    store: bool = True
    metadata: dict[str, str] = {}
    tools: list[dict[str, Any]] = []
    functions: list[str] = []  # names of the client's functions among `tools`
    conversation_id: str = ""
    # Calls of the previous response the request decided (`mcp_approval_response`), with
    # what running them gave: shown first, as the `mcp_call` items they became.
    approved: list[dict[str, Any]] = []


class Final(msgspec.Struct, kw_only=True):
    """How the answer ended: its stored status, stop reason, usage and error."""

    status: str  # the stored message's: complete | cancelled | incomplete | failed
    stop_reason: str | None = None
    usage: dict[str, Any] = {}
    error: dict[str, str] | None = None
    completed_at: float | None = None


# Call id -> whether it was stored as waiting for approval (asked only of calls that ended
# without a result, once the answer is final).
AskedApproval = Callable[[str], bool]


def pieces(text: str) -> list[str]:
    """`text` cut where a word starts (after whitespace) or at `MAX_PIECE` characters."""
    out: list[str] = []
    start = 0
    for index in range(1, len(text)):
        if index - start >= MAX_PIECE or (text[index - 1].isspace() and not text[index].isspace()):
            out.append(text[start:index])
            start = index
    if text:
        out.append(text[start:])
    return out


def response_status(final: Final | None) -> str:
    if final is None:
        return "in_progress"
    if final.status == "complete":
        return "incomplete" if final.stop_reason == "max_tokens" else "completed"
    return {"cancelled": "cancelled", "failed": "failed"}.get(final.status, "incomplete")


class _Log:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []  # items as they stand now

    def emit(self, kind: str, **fields: Any) -> None:
        self.events.append({"type": kind, "sequence_number": len(self.events), **fields})

    def add(self, item: dict[str, Any]) -> int:
        self.output.append(item)
        index = len(self.output) - 1
        self.emit("response.output_item.added", output_index=index, item=dict(item))
        return index

    def done(self, index: int, item: dict[str, Any]) -> None:
        self.output[index] = item
        self.emit("response.output_item.done", output_index=index, item=dict(item))


def build(
    meta: ResponseMeta,
    content: list[dict[str, Any]],
    final: Final | None,
    asked_approval: AskedApproval,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every event of the response so far, numbered from 0, and the response object as it
    stands. `final` is None while the answer is still being written."""
    log = _Log()
    log.emit("response.created", response=response_object(meta, [], None))
    log.emit("response.in_progress", response=response_object(meta, [], None))
    for approved in meta.approved:
        _mcp_call(log, approved["call_id"], approved["name"], approved["arguments"],
                  approved.get("output"), approved.get("error"), approval=True)
    results = {b.get("tool_use_id"): b for b in content if b.get("type") == "tool_result"}
    for index, block in enumerate(content):
        closed = final is not None or index < len(content) - 1
        kind = block.get("type")
        if kind == "text":
            _text(log, f"msg_{meta.id.removeprefix('resp_')}_{index}", block.get("text", ""), closed)
        elif kind == "tool_use" and not _call(log, meta, block, results.get(block.get("id")), final, asked_approval):
            break  # a call still running: nothing after it is known yet
    if final is not None:
        body = response_object(meta, log.output, final)
        terminal = {"completed": "response.completed", "failed": "response.failed"}
        log.emit(terminal.get(body["status"], "response.incomplete"), response=body)
        return log.events, body
    return log.events, response_object(meta, log.output, None)


def _text(log: _Log, item_id: str, text: str, closed: bool) -> None:
    item = {"type": "message", "id": item_id, "role": "assistant", "status": "in_progress", "content": []}
    index = log.add(item)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    log.emit("response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=part)
    cut = pieces(text)
    for piece in cut if closed else cut[:-1]:  # the last piece may still grow
        log.emit("response.output_text.delta", item_id=item_id, output_index=index, content_index=0,
                 delta=piece, logprobs=[])
    if not closed:
        log.output[index] = {**item, "content": [{**part, "text": "".join(cut[:-1])}]}
        return
    whole = {**part, "text": text}
    log.emit("response.output_text.done", item_id=item_id, output_index=index, content_index=0,
             text=text, logprobs=[])
    log.emit("response.content_part.done", item_id=item_id, output_index=index, content_index=0, part=whole)
    log.done(index, {**item, "status": "completed", "content": [whole]})


def _call(
    log: _Log,
    meta: ResponseMeta,
    call: dict[str, Any],
    result: dict[str, Any] | None,
    final: Final | None,
    asked_approval: AskedApproval,
) -> bool:
    """The item of one tool call; False when it cannot be told yet (still running)."""
    call_id, name = call.get("id", ""), call.get("name", "")
    arguments = json.dumps(call.get("input") or {}, ensure_ascii=False)
    if name in meta.functions:
        item = {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name,
                "arguments": "", "status": "in_progress"}
        index = log.add(item)
        log.emit("response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=arguments)
        log.emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                 name=name, arguments=arguments)
        log.done(index, {**item, "arguments": arguments, "status": "completed"})
        return True
    if result is None and final is None:
        return False
    if result is None and asked_approval(call_id):
        item = {"type": "mcp_approval_request", "id": call_id, "server_label": SERVER_LABEL,
                "name": name, "arguments": arguments}
        log.done(log.add(item), item)
        return True
    output, error = _outcome(result)
    _mcp_call(log, call_id, name, arguments, output, error, approval=False)
    return True


def _outcome(result: dict[str, Any] | None) -> tuple[str | None, str | None]:
    if result is None:
        return None, "the call was cut off before it returned"
    content = result.get("content")
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    if result.get("is_error"):
        return None, text.removeprefix("error: ")
    return text, None


def _mcp_call(
    log: _Log, call_id: str, name: str, arguments: str, output: str | None, error: str | None, *, approval: bool
) -> None:
    item: dict[str, Any] = {
        "type": "mcp_call", "id": f"mcp_{call_id}", "server_label": SERVER_LABEL, "name": name,
        "arguments": arguments, "output": None, "error": None, "status": "in_progress",
        "approval_request_id": call_id if approval else None,
    }
    index = log.add(item)
    log.emit("response.mcp_call_arguments.done", item_id=item["id"], output_index=index, arguments=arguments)
    log.emit("response.mcp_call.in_progress", item_id=item["id"], output_index=index)
    failed = error is not None
    log.emit("response.mcp_call.failed" if failed else "response.mcp_call.completed", item_id=item["id"],
             output_index=index)
    log.done(index, {**item, "output": output, "error": error, "status": "failed" if failed else "completed"})


def response_object(meta: ResponseMeta, output: list[dict[str, Any]], final: Final | None) -> dict[str, Any]:
    status = response_status(final)
    incomplete = None
    if status == "incomplete":
        reason = "max_output_tokens" if final and final.stop_reason == "max_tokens" else "interrupted"
        incomplete = {"reason": reason}
    error = None
    if status == "failed":
        error = (final.error if final else None) or {"code": "server_error", "message": "the turn failed"}
    usage = _usage(final.usage) if final else None
    return {
        "id": meta.id, "object": "response", "created_at": meta.created_at, "status": status,
        "background": meta.background, "completed_at": final.completed_at if final and status == "completed" else None,
        "error": error, "incomplete_details": incomplete, "instructions": meta.instructions,
        "max_output_tokens": None, "metadata": meta.metadata, "model": meta.model,
        "output": [dict(item) for item in output], "parallel_tool_calls": True,
        "previous_response_id": meta.previous_response_id, "store": meta.store,
        "temperature": None, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
        "tools": meta.tools, "top_p": None, "truncation": "disabled", "usage": usage,
        "user": None, "conversation": {"id": meta.conversation_id} if meta.conversation_id else None,
    }


def _usage(usage: dict[str, Any]) -> dict[str, Any]:
    given, made = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    return {
        "input_tokens": given, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": made, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": given + made,
    }


def created_at(stored: str) -> float:
    """A stored RFC 3339 time as the Unix seconds the API reports."""
    return math.floor(datetime.fromisoformat(stored).timestamp())
