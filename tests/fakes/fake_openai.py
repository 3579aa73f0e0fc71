"""A fake OpenAI-compatible chat completions API: `POST /v1/chat/completions`, streamed.

Wire format (OpenAI's chat completions streaming, also served by Ollama, vLLM and
llama.cpp): each chunk is a `data: {chat.completion.chunk}` line and a blank line. The
first chunk carries `delta.role`; text arrives as `delta.content`; a tool call arrives as
`delta.tool_calls[{index, id, type, function: {name, arguments: ""}}]` followed by chunks
with argument fragments for the same index; the last choice chunk has `finish_reason`
("stop", "tool_calls", "length"); with `stream_options.include_usage` a final chunk with
`choices: []` and `usage` follows (earlier chunks then carry `"usage": null`); the stream
ends with `data: [DONE]`. An error inside the stream is `data: {"error": {...}}`; an error
response is `{"error": {"message", "type", "param", "code"}}` with its status.

The fake refuses a wrong `Authorization: Bearer` key (401) and a body without model or
messages (400). `FakeOpenAI(api_key=None)` accepts any key, like Ollama.
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.behaviours import Fail, Reply
from tests.fakes.fake_anthropic import split_json
from tests.fakes.server import FakeServer, RecordedRequest

ERRORS = {  # status → (type, code)
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}

FINISH = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


class FakeOpenAI(FakeServer):
    """`FakeOpenAI(api_key="test-key")`; SDK `base_url` is `fake.base_url` (ends in /v1)."""

    path = "/v1/chat/completions"
    prefix = "/v1"

    def check(self, headers: dict[str, str], body: Any) -> Fail | None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return Fail(401, message="Incorrect API key provided.")
        if not isinstance(body, dict) or not {"model", "messages"} <= body.keys():
            return Fail(400, message="model and messages are required")
        return None

    def events(self, reply: Reply, rec: RecordedRequest) -> list[bytes]:
        body = rec.body if isinstance(rec.body, dict) else {}
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunk = _Chunks(f"chatcmpl-fake-{rec.index}", body.get("model", "gpt-fake"), usage)
        out = [chunk.choice({"role": "assistant", "content": ""})]
        out += [chunk.choice({"content": d}) for d in reply.deltas()]
        for number, call in enumerate(reply.tool_calls):
            call_id = call.id or f"call_fake_{rec.index}_{number}"
            out.append(chunk.choice({"tool_calls": [{
                "index": number, "id": call_id, "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }]}))
            for piece in split_json(json.dumps(call.input)):
                out.append(chunk.choice({"tool_calls": [
                    {"index": number, "function": {"arguments": piece}},
                ]}))
        reason = reply.final_stop_reason()
        out.append(chunk.choice({}, finish_reason=FINISH.get(reason, reason)))
        if usage:
            out.append(chunk.usage(reply.input_tokens, reply.final_output_tokens()))
        out.append(data("[DONE]"))
        return out

    def error_event(self, reply: Reply) -> bytes:
        kind = reply.error_type or "server_error"
        return data({"error": {"message": reply.error_message, "type": kind, "param": None, "code": None}})

    def error_response(self, fail: Fail) -> tuple[int, dict[str, str], bytes]:
        headers = {"content-type": "application/json", "x-request-id": "req_fake_error", **fail.headers}
        if fail.retry_after is not None:
            headers["retry-after"] = f"{fail.retry_after:g}"
        body = fail.body
        if body is None:
            kind, code = ERRORS.get(fail.status, ("server_error", None))
            kind = fail.error_type or kind
            body = {"error": {"message": fail.message or kind, "type": kind, "param": None, "code": code}}
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return fail.status, headers, raw


class _Chunks:
    """Builds chunks that share an id, model and creation time, as one completion's do."""

    def __init__(self, completion_id: str, model: str, usage: bool):
        self.base = {
            "id": completion_id, "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "system_fingerprint": "fp_fake",
        }
        self.with_usage = usage

    def choice(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        payload = {**self.base, "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason},
        ]}
        if self.with_usage:
            payload["usage"] = None
        return data(payload)

    def usage(self, prompt: int, completion: int) -> bytes:
        return data({**self.base, "choices": [], "usage": {
            "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }})
