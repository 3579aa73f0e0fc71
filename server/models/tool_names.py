"""Tool names as the model APIs accept them.

Model APIs take tool names of letters, digits, `_` and `-` (up to 64). chinwag's names may
hold more: an MCP server's tools are `SERVER.tool`, and a server may use other characters.
A request's names are rewritten on the way out (`.` becomes `__`, anything else not
allowed becomes `_`, cut to 64), and the calls that come back are mapped to the names
they stand for, by the request's own table.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from server.models.base import ChatMessage, ModelRequest

NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
MAX_NAME = 64


def wire_name(name: str) -> str:
    return NOT_ALLOWED.sub("_", name.replace(".", "__"))[:MAX_NAME]


def for_the_wire(request: ModelRequest) -> tuple[ModelRequest, dict[str, str]]:
    """`request` with model-safe tool names, and the table back (wire name -> ours)."""
    names = {wire_name(tool.name): tool.name for tool in request.tools}
    if all(wire == ours for wire, ours in names.items()) and not _any_rewritten_call(request):
        return request, names
    tools = [msgspec.structs.replace(tool, name=wire_name(tool.name)) for tool in request.tools]
    messages = [ChatMessage(m.role, [_block(b) for b in m.content]) for m in request.messages]
    return msgspec.structs.replace(request, tools=tools, messages=messages), names


def _any_rewritten_call(request: ModelRequest) -> bool:
    return any(
        b.get("type") == "tool_use" and wire_name(b.get("name", "")) != b.get("name")
        for m in request.messages for b in m.content
    )


def _block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "tool_use":
        return {**block, "name": wire_name(block.get("name", ""))}
    return block
