"""A fake Anthropic Messages API: `POST /v1/messages` streaming SSE, as the real one does.

Wire format (https://docs.anthropic.com/en/api/messages-streaming): each event is

    event: <type>
    data: <json with the same "type">

in the order message_start, ping, then per content block content_block_start /
content_block_delta (text_delta or input_json_delta) / content_block_stop, then
message_delta (stop_reason, cumulative usage) and message_stop. An error inside the stream
is `event: error` with `{"type": "error", "error": {"type": ..., "message": ...}}`; an
error response has that same body with its HTTP status, a `request-id` header and, when
scripted, `retry-after`.

The fake checks what the real API would refuse: a missing or wrong key (401; the SDK
sends `Authorization: Bearer <key>`, older clients `x-api-key`),
a missing `anthropic-version` header or a body without model / max_tokens / messages (400).
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.behaviours import Fail, Reply
from tests.fakes.server import FakeServer, RecordedRequest

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def split_json(text: str, pieces: int = 3) -> list[str]:
    """Cut a JSON text into `pieces` fragments, the way input_json_delta arrives."""
    size = max(len(text) // pieces, 1)
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


class FakeAnthropic(FakeServer):
    """`FakeAnthropic(api_key="test-key")`; SDK `base_url` is `fake.base_url`."""

    path = "/v1/messages"

    def check(self, headers: dict[str, str], body: Any) -> Fail | None:
        keys = {headers.get("x-api-key"), headers.get("authorization", "").removeprefix("Bearer ")}
        if self.api_key is not None and self.api_key not in keys:
            return Fail(401, message="invalid x-api-key")
        if "anthropic-version" not in headers:
            return Fail(400, message="anthropic-version: header is required")
        if not isinstance(body, dict) or not {"model", "max_tokens", "messages"} <= body.keys():
            return Fail(400, message="model, max_tokens and messages are required")
        return None

    def stream_headers(self, rec: RecordedRequest) -> dict[str, str]:
        return {**super().stream_headers(rec), "request-id": f"req_fake_{rec.index}"}

    def events(self, reply: Reply, rec: RecordedRequest) -> list[bytes]:
        model = rec.body.get("model", "claude-fake") if isinstance(rec.body, dict) else "claude-fake"
        out = [sse("message_start", {"type": "message_start", "message": {
            "id": f"msg_fake_{rec.index}", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": reply.input_tokens, "output_tokens": 1},
        }})]
        out.append(sse("ping", {"type": "ping"}))
        index = 0
        deltas = reply.deltas()
        if deltas:
            out += _text_block(index, deltas)
            index += 1
        for number, call in enumerate(reply.tool_calls):
            call_id = call.id or f"toolu_fake_{rec.index}_{number}"
            out += _tool_block(index, call_id, call.name, call.input)
            index += 1
        out.append(sse("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": reply.final_stop_reason(), "stop_sequence": None},
            "usage": {"output_tokens": reply.final_output_tokens()},
        }))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return out

    def error_event(self, reply: Reply) -> bytes:
        kind = reply.error_type or "overloaded_error"
        return sse("error", {"type": "error", "error": {"type": kind, "message": reply.error_message}})

    def error_response(self, fail: Fail) -> tuple[int, dict[str, str], bytes]:
        headers = {"content-type": "application/json", "request-id": "req_fake_error", **fail.headers}
        if fail.retry_after is not None:
            headers["retry-after"] = f"{fail.retry_after:g}"
        body = fail.body
        if body is None:
            kind = fail.error_type or ERROR_TYPES.get(fail.status, "api_error")
            body = {"type": "error", "error": {"type": kind, "message": fail.message or kind}}
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return fail.status, headers, data


def _text_block(index: int, deltas: list[str]) -> list[bytes]:
    out = [sse("content_block_start", {
        "type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""},
    })]
    out += [
        sse("content_block_delta", {
            "type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": d},
        })
        for d in deltas
    ]
    out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def _tool_block(index: int, call_id: str, name: str, arguments: dict[str, Any]) -> list[bytes]:
    out = [sse("content_block_start", {
        "type": "content_block_start", "index": index,
        "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
    })]
    # The real API opens with an empty fragment, then sends the JSON in pieces.
    for piece in ["", *split_json(json.dumps(arguments))]:
        out.append(sse("content_block_delta", {
            "type": "content_block_delta", "index": index,
            "delta": {"type": "input_json_delta", "partial_json": piece},
        }))
    out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out
