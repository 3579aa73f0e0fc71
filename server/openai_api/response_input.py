"""A Responses-API request's `input`, read into what a Chat Completions request would hold.

`input` is a string (the user's text) or a list of items: messages (`user`, `system`,
`developer`, `assistant`, content as a string or `input_text` / `output_text` parts), the
client's `function_call` items sent back with their `function_call_output`, and
`mcp_approval_response` items deciding the calls a previous response asked about. Messages
and function items become chat messages (`server.openai_api.messages` reads those); the
approvals are returned apart: they are decided, and the calls run, before the turn starts.
Items of chinwag's own tool calls sent back (`mcp_call`, `mcp_approval_request`) are the
server's record already and are skipped.
"""

from __future__ import annotations

from typing import Any

import msgspec

from server.errors import BadRequest

MESSAGE_ROLES = {"user", "system", "developer", "assistant"}
SKIPPED = {"mcp_call", "mcp_approval_request", "mcp_list_tools", "reasoning"}


class Approval(msgspec.Struct, frozen=True):
    call_id: str
    approve: bool


class ReadInput(msgspec.Struct, kw_only=True):
    messages: list[dict[str, Any]]  # in Chat Completions' shape
    approvals: list[Approval]
    origins: list[str] = []  # the input item each message came from (`input[3]`), for errors

    def where(self, path: str) -> str:
        """An error's `messages[N]...` path as the client wrote it: `input[M]...`."""
        head, bracket, rest = path.partition("]")
        if not head.startswith("messages[") or not bracket:
            return path.replace("messages", "input", 1)
        index = int(head.removeprefix("messages["))
        return (self.origins[index] if index < len(self.origins) else f"input[{index}]") + rest


def read_input(value: Any) -> ReadInput:
    if isinstance(value, str):
        if not value.strip():
            raise BadRequest("input is empty", details={"path": "input"})
        return ReadInput(messages=[{"role": "user", "content": value}], approvals=[], origins=["input"])
    if not isinstance(value, list) or not value:
        raise BadRequest("input must be a string or a non-empty array of items", details={"path": "input"})
    messages: list[dict[str, Any]] = []
    approvals: list[Approval] = []
    origins: list[str] = []
    for index, item in enumerate(value):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise BadRequest("each input item must be an object", details={"path": where})
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            messages.append(_function_call(item, where))
        elif kind == "function_call_output":
            messages.append({"role": "tool", "tool_call_id": _string(item, "call_id", where),
                             "content": _output(item.get("output"), where)})
        elif kind == "mcp_approval_response":
            approve = item.get("approve")
            if not isinstance(approve, bool):
                raise BadRequest("approve must be true or false", details={"path": f"{where}.approve"})
            approvals.append(Approval(_string(item, "approval_request_id", where), approve))
        elif kind not in SKIPPED:
            raise BadRequest(f"input items of type {kind!r} are not supported", details={"path": f"{where}.type"})
        origins += [where] * (len(messages) - len(origins))
    return ReadInput(messages=messages, approvals=approvals, origins=origins)


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in MESSAGE_ROLES:
        raise BadRequest(f"unknown role {role!r}", details={"path": f"{where}.role"})
    return {"role": role, "content": item.get("content")}


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call = {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": _string(item, "name", where), "arguments": item.get("arguments") or "{}"}}
    return {"role": "assistant", "content": None, "tool_calls": [call]}


def _output(output: Any, where: str) -> str:
    """A function's output: a string, or parts of which only text is supported."""
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(p, dict) and p.get("type") in ("input_text", "output_text") for p in output):
        return "".join(str(p.get("text", "")) for p in output)
    raise BadRequest("a function output must be a string or text parts", details={"path": f"{where}.output"})


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{key} must be a non-empty string", details={"path": f"{where}.{key}"})
    return value
