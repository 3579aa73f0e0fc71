"""The request's `tools`: functions the client defines and runs itself.

The model is offered them beside chinwag's own tools. A call to one is not run here: it
goes back to the client (`tool_calls` in Chat Completions, a `function_call` item in the
Responses API), and the turn ends; the client sends the result in its next request. The
two APIs spell a function differently (nested under `function`, or flat); both are read.
"""

from __future__ import annotations

import re
from typing import Any

from server.errors import BadRequest
from server.models.base import ToolSpec

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 128
EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


def client_tools(tools: Any, *, nested: bool, server_tools: set[str]) -> list[ToolSpec]:
    """`nested`: Chat Completions' `{"type": "function", "function": {...}}`; else the
    Responses API's flat `{"type": "function", "name": ...}`. A name of one of chinwag's
    own tools is refused: the model could not tell them apart."""
    if tools is None:
        return []
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise BadRequest(f"tools must be an array of at most {MAX_TOOLS} tools", details={"path": "tools"})
    specs: list[ToolSpec] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise BadRequest(
                f"tool type {kind!r} is not supported: only client functions (chinwag's own tools are offered already)",
                details={"path": f"{where}.type"},
            )
        function = tool.get("function") if nested else tool
        if not isinstance(function, dict):
            raise BadRequest("a function tool needs a function object", details={"path": f"{where}.function"})
        specs.append(_spec(function, f"{where}.function" if nested else where, server_tools))
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise BadRequest("two tools have the same name", details={"path": "tools"})
    return specs


def _spec(function: dict[str, Any], where: str, server_tools: set[str]) -> ToolSpec:
    name = function.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise BadRequest("a function name is 1 to 64 letters, digits, _ or -", details={"path": f"{where}.name"})
    if name in server_tools:
        raise BadRequest(f"{name!r} is the name of a chinwag tool; pick another", details={"path": f"{where}.name"})
    description = function.get("description") or ""
    if not isinstance(description, str):
        raise BadRequest("a function description must be a string", details={"path": f"{where}.description"})
    schema = function.get("parameters") or EMPTY_SCHEMA
    if not isinstance(schema, dict):
        raise BadRequest("function parameters must be a JSON Schema object", details={"path": f"{where}.parameters"})
    return ToolSpec(name, description, schema)
