"""An MCP server's tool as a chinwag tool: named `SERVER.tool`, its arguments checked
against the server's own JSON Schema, its policy the server's default (`ask` unless the
config says otherwise) under the usual `tools.policy` and `tools.role_policy` rules.

Running it calls the server through its connection; a connection that is down makes the
call fail with an error naming the server, and `available` tells the executor not to offer
the tool meanwhile.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import mcp_types
import msgspec

from server.errors import BadRequest
from server.mcp.connection import McpConnection
from server.mcp.results import from_call
from server.store.base import ROLES
from server.tools.decorator import ToolHandler


class McpArguments(msgspec.Struct):
    """Arguments checked against the tool's JSON Schema, passed on as they are."""

    values: dict[str, Any]


class McpTool(ToolHandler):
    def __init__(self, connection: McpConnection, tool: mcp_types.Tool):
        # Not ToolHandler.__init__: there is no Python function to read a signature from.
        settings = connection.settings
        self.connection = connection
        self.remote_name = tool.name
        self.name = f"{connection.name}.{tool.name}"
        self.description = tool.description or (tool.annotations.title if tool.annotations else None) or tool.name
        self.policy = settings.policy
        self.roles = ROLES
        self.timeout_s = settings.timeout_s
        hints = tool.annotations
        # A read-only or idempotent tool may run again when a crash cut its call off.
        self.idempotent = bool(hints and (hints.idempotent_hint or hints.read_only_hint))
        self.source = f"MCP server {connection.name}"
        self.arguments = McpArguments
        self.input_schema = tool.input_schema or {"type": "object", "properties": {}}
        validator = jsonschema.validators.validator_for(self.input_schema, default=jsonschema.Draft202012Validator)
        self._validator = validator(self.input_schema)

    @property
    def available(self) -> bool:
        return self.connection.state == "ready"

    def validate(self, args: dict[str, Any]) -> msgspec.Struct:
        error = jsonschema.exceptions.best_match(self._validator.iter_errors(args))
        if error is not None:
            path = "$.args" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise BadRequest(error.message, details={"path": path})
        return McpArguments(values=args)

    async def __call__(self, ctx: Any, arguments: msgspec.Struct) -> Any:
        assert isinstance(arguments, McpArguments)
        # The executor bounds the call (`timeout_s`, else `tools.timeout_s`) and cancels it
        # on a turn's cancel: either way the server hears `notifications/cancelled`.
        return from_call(await self.connection.call(self.remote_name, arguments.values))

    def __repr__(self) -> str:
        return f"<tool {self.name} from {self.source}>"
